"""The device client's I/O side: identity on disk, OTA/activation over HTTP, the MQTT/UDP/WebSocket links,
and the conversation service that drives the sans-I/O session in pibuddy.xiaozhi."""
