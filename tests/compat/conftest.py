"""The gateway's fixtures (a gateway in front of the xiaozhi test server) and a mosquitto broker."""

from tests.gateway.conftest import gateway, start_gateway, upstream  # noqa: F401
from tests.peers.mosquitto import mosquitto_fixture  # noqa: F401
