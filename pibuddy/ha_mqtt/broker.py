"""The MQTT client for Home Assistant's broker, as the homeassistant.mqtt section describes it (the service and
`pibuddy check` connect the same way)."""

from __future__ import annotations

import logging
import ssl

import aiomqtt

from pibuddy.config import HomeAssistantMqttConfig


def broker_client(settings: HomeAssistantMqttConfig, *, identifier: str | None, timeout: float,
                  logger: logging.Logger, will: aiomqtt.Will | None = None,
                  max_queued_incoming_messages: int | None = None) -> aiomqtt.Client:
    """A not yet connected client (`async with` connects); TLS for mqtts://, with the system's CAs or ca_file."""
    password = settings.password.get_secret_value() if settings.password is not None else None
    return aiomqtt.Client(settings.host, settings.port, username=settings.username, password=password,
                          identifier=identifier, timeout=timeout, logger=logger, will=will,
                          tls_context=ssl.create_default_context(cafile=settings.ca_file) if settings.tls else None,
                          max_queued_incoming_messages=max_queued_incoming_messages)


def broker_name(settings: HomeAssistantMqttConfig) -> str:
    return f"{'mqtts' if settings.tls else 'mqtt'}://{settings.host}:{settings.port}"
