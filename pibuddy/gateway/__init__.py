"""The local gateway for stock ESP32 xiaozhi devices (docs/protocol.md §3-§5, §8-§10, §14).

Devices speak MQTT (control) and AES-CTR UDP (audio) to the Pi; each conversation is bridged over one
WebSocket to a xiaozhi chat server. Modules, one job each:

- `mqtt_codec`, `mqtt_server`: the MQTT 3.1.1 endpoint for the firmware's dialect.
- `credentials`: device passwords, the API's daily token, the chat-server token.
- `udp_relay`: one UDP socket, routed by connection id.
- `ws_client`, `bridge`: the WebSocket leg and the choice of chat server.
- `device`: one device's MQTT connection, its sessions and its MCP (`mcp_cache`).
- `api`, `ota_server`, `webapp`: management API, local OTA with mDNS.
- `service`: all of it as a supervised service of `pibuddy run`.
"""
