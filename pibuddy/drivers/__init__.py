"""Drivers: PiBuddy's hands (Home Assistant, Xiaomi MIoT, BLE, GPIO).

Drivers know nothing of xiaozhi or MCP. Each converts its foreign exceptions into `pibuddy.errors.DriverError`
leaves exactly once, at its boundary, and offers its tools to `pibuddy.wiring.tools`.
"""
