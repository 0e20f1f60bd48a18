"""Wiring: which services `pibuddy run` starts for a given config."""

from __future__ import annotations

import logging

from pibuddy.config import Config
from pibuddy.events import EventBus
from pibuddy.supervisor import Service
from pibuddy.tools.catalog import Toolbox, build_toolbox
from pibuddy.upstream.audio_port import AudioPort

_LOGGER = logging.getLogger(__name__)


def build_services(config: Config, bus: EventBus) -> list[Service]:
    """The services this config enables, in start order."""
    services: list[Service] = []
    toolbox = build_toolbox(config)  # one registry for every MCP surface (the device channel too)
    services += tool_services(config, toolbox)
    if config.gpio.enabled:
        from pibuddy.drivers.gpio import GpioService  # noqa: PLC0415 (gpiozero: only when on)

        services.append(GpioService(config.gpio, bus))
    audio = audio_port(config, bus, services)
    if config.upstream.enabled:
        from pibuddy.upstream.service import UpstreamService  # noqa: PLC0415

        services.append(UpstreamService(config, bus=bus, registry=toolbox.registry, audio=audio))
    if config.gateway.enabled:
        from pibuddy.gateway.service import GatewayService  # noqa: PLC0415 (aiohttp, zeroconf: only when on)

        services.append(GatewayService.from_config(config, toolbox.registry))
    if config.openclaw.enabled or config.openclaw.bridge_enabled:
        from pibuddy.openclaw.services import openclaw_services  # noqa: PLC0415

        services += openclaw_services(config, bus, toolbox.registry)
    if not services:
        _LOGGER.warning("nothing is enabled in the config: PiBuddy will idle (see config.yaml)")
    return services


def audio_port(config: Config, bus: EventBus, services: list[Service]) -> AudioPort:
    """The microphone and speaker as conversations see them; adds the audio service when audio is on."""
    if not config.audio.enabled:
        from pibuddy.upstream.audio_port import NoAudio  # noqa: PLC0415

        return NoAudio()
    from pibuddy.audio.pipeline import AudioPipeline  # noqa: PLC0415 (wake word and VAD models load here)
    from pibuddy.audio.port import PipelineAudioPort  # noqa: PLC0415
    from pibuddy.audio.service import AudioService  # noqa: PLC0415

    pipeline = AudioPipeline(config.audio, bus)
    services.append(AudioService(pipeline))
    return PipelineAudioPort(pipeline)


def tool_services(config: Config, toolbox: Toolbox) -> list[Service]:
    """The drivers behind the tools, then the MCP endpoint bridge and MCP HTTP server that offer them."""
    services = list(toolbox.services)
    tools = config.tools
    if tools.mcp_endpoint_url is not None:
        from pibuddy.tools.mcp_endpoint import McpEndpointBridge  # noqa: PLC0415 (only when configured)

        services.append(McpEndpointBridge(tools.mcp_endpoint_url.get_secret_value(), toolbox.registry,
                                          server_name=config.device.name))
    if tools.mcp_http_enabled:
        from pibuddy.tools.mcp_standard import McpHttpServer  # noqa: PLC0415 (the SDK is slow to import)

        token = tools.mcp_http_token.get_secret_value() if tools.mcp_http_token else None
        services.append(McpHttpServer(toolbox.registry, host=tools.mcp_http_host, port=tools.mcp_http_port,
                                      token=token))
    return services
