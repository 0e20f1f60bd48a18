"""Home Assistant as tools: REST + WebSocket client, a live index of areas/devices/entities, name
resolution in English and Chinese, and the `ha_*` tools. `HomeAssistantService` is the supervised part."""

from pibuddy.drivers.homeassistant.service import HomeAssistantService
from pibuddy.drivers.homeassistant.tools import homeassistant_tools

__all__ = ["HomeAssistantService", "homeassistant_tools"]
