"""PiBuddy as an OpenClaw node: the gateway protocol, the node and operator sessions, and the MQTT bridge.

`frames`, `handshake` and `identity` are pure protocol (no sockets); `transport` owns the WebSocket and
MQTT links; `connection` runs one authenticated session over either; `node`, `brain` and `bridge` are the
supervised services. The protocol they implement is written up in docs/openclaw.md.
"""
