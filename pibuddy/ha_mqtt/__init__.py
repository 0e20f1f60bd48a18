"""PiBuddy as a device in Home Assistant, through HA's MQTT integration and MQTT discovery.

`entities` says which entities there are and what their discovery configs and states look like (pure),
`commands` parses what Home Assistant sends back (pure), `service` owns the broker connection and acts
through the control layer exactly as the CLI does; `broker` makes the client, `probe` is `pibuddy check`'s row.
"""
