"""Tests of the local gateway for ESP32 xiaozhi devices (pibuddy.gateway)."""
