"""PiBuddy as a device in Home Assistant, through HA's MQTT integration and MQTT discovery.

`broker` makes the client for the broker of the homeassistant.mqtt section; `probe` is `pibuddy check`'s row.
"""
