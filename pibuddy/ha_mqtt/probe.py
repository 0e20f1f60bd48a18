"""`pibuddy check`'s MQTT broker row: does the broker of homeassistant.mqtt accept PiBuddy's login?"""

from __future__ import annotations

import logging
from typing import Final

import aiomqtt

from pibuddy.config import HomeAssistantMqttConfig
from pibuddy.ha_mqtt.broker import broker_client, broker_name
from pibuddy.probe import ProbeResult

_LOGGER = logging.getLogger(__name__)
_TIMEOUT_SECONDS: Final = 5.0


async def probe_broker(settings: HomeAssistantMqttConfig) -> ProbeResult:
    where = broker_name(settings)
    who = f"user {settings.username}" if settings.username else "anonymous"
    try:
        async with broker_client(settings, identifier=None, timeout=_TIMEOUT_SECONDS, logger=_LOGGER):
            pass
    except aiomqtt.MqttCodeError as exc:
        return ProbeResult(False, f"{where} refused the login ({who}): {exc}; check homeassistant.mqtt.username "
                                  "and password (a user of the broker Home Assistant uses)")
    except aiomqtt.MqttError as exc:
        return ProbeResult(False, f"cannot reach the MQTT broker at {where}: {exc}; check homeassistant.mqtt.broker")
    return ProbeResult(True, f"{where} accepts PiBuddy ({who})")
