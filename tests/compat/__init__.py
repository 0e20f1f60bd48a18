"""The compatibility matrix: the gateway and the device client against dialects of servers and devices."""
