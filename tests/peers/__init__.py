"""Test peers: stand-ins and real-peer launchers used by the integration tests."""
