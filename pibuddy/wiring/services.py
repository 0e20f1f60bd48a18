"""Which services `pibuddy run` starts for a given config (start here: the other wiring modules are its helpers)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from pibuddy import netinfo
from pibuddy.audio.contract import AudioPort
from pibuddy.config import Config, is_loopback
from pibuddy.control import Control, History
from pibuddy.control.paths import service_socket_path
from pibuddy.control.server import ControlService
from pibuddy.events import ActionTaken, EventBus, VolumeChanged
from pibuddy.statedir import StateDir
from pibuddy.supervisor import Service
from pibuddy.timers.service import TimerService
from pibuddy.timers.tools import timer_tools
from pibuddy.tools.volume import SystemVolume
from pibuddy.wiring.tools import Toolbox, build_toolbox

if TYPE_CHECKING:
    from pibuddy.audio.pipeline import AudioPipeline

_LOGGER = logging.getLogger(__name__)
_OPENCLAW_SEND_SECONDS: Final = 30.0  # chat.send's own request time, on top of waiting for the agent's reply


def build_services(config: Config, bus: EventBus) -> list[Service]:
    """The services this config enables, in start order."""
    pipeline = _audio_pipeline(config, bus)
    # One registry for every MCP surface (the device channel too); the speaker's gain is its volume fallback.
    volume = SystemVolume(speaker=pipeline.speaker if pipeline is not None else None,
                          on_change=lambda percent: bus.publish(VolumeChanged(percent)))
    toolbox = build_toolbox(config, volume=volume)
    timers = TimerService(bus, StateDir(config.device.resolved_state_dir))
    if config.tools.builtin:
        for timer_tool in timer_tools(timers):
            toolbox.registry.register(timer_tool)
    toolbox.registry.observe(lambda call: bus.publish(ActionTaken(
        call.source, call.name, call.arguments, call.result.text, call.result.is_error, call.seconds)))
    services = tool_services(config, toolbox)
    if pipeline is not None:
        from pibuddy.audio.service import AudioService  # noqa: PLC0415

        services.append(AudioService(pipeline))
    if config.gpio.enabled:
        from pibuddy.drivers.gpio import GpioService  # noqa: PLC0415 (gpiozero: only when on)

        services.append(GpioService(config.gpio, bus))
    if config.upstream.enabled:
        from pibuddy.device_client.service import DeviceClientService  # noqa: PLC0415

        services.append(DeviceClientService(config, bus=bus, registry=toolbox.registry, audio=_audio_port(pipeline)))
    gateway = None
    if config.gateway.enabled:
        from pibuddy.gateway.service import GatewayService  # noqa: PLC0415 (aiohttp, zeroconf: only when on)

        gateway = GatewayService.from_config(config, toolbox.registry, bus)
        services.append(gateway)
    if config.openclaw.enabled or config.openclaw.bridge_enabled:
        from pibuddy.wiring.openclaw import openclaw_services  # noqa: PLC0415

        services += openclaw_services(config, bus, toolbox.registry)
    if not services:
        _LOGGER.warning("nothing is enabled in the config: PiBuddy only answers `pibuddy say` (see config.yaml)")
    from pibuddy.wiring.brain import brain_services  # noqa: PLC0415 (hassil, pocketsphinx: only when run)

    services += [timers, *brain_services(config, bus, toolbox, pipeline)]
    control = Control(bus, history=History(StateDir(config.device.resolved_state_dir),
                                           capacity=config.control.history_entries),
                      volume=volume, gateway=gateway, timers=timers, tools=toolbox.registry,
                      speaker=pipeline is not None,
                      hand_off_seconds=config.openclaw.operator_reply_timeout + _OPENCLAW_SEND_SECONDS)
    services.append(ControlService(control, service_socket_path(config)))
    if config.homeassistant.mqtt.enabled:
        services += _homeassistant_mqtt(config, control, bus)
    if config.web.enabled:
        from pibuddy.web.service import WebService  # noqa: PLC0415 (aiohttp: only when on)

        services.append(WebService(control, config.web))
    return services


def _homeassistant_mqtt(config: Config, control: Control, bus: EventBus) -> list[Service]:
    """PiBuddy's entities in Home Assistant; the device is named by the same id the xiaozhi server knows."""
    from pibuddy import __version__  # noqa: PLC0415
    from pibuddy.device_client.identity import IdentityError, load_identity  # noqa: PLC0415
    from pibuddy.ha_mqtt.entities import DeviceInfo  # noqa: PLC0415 (aiomqtt: only when configured)
    from pibuddy.ha_mqtt.service import HomeAssistantMqttService  # noqa: PLC0415

    state = StateDir(config.device.resolved_state_dir)
    try:
        identity = load_identity(state, configured_device_id=config.device.device_id)
    except IdentityError as exc:
        _LOGGER.error("Home Assistant MQTT is off: %s", exc)
        return []
    device = DeviceInfo.for_buddy(identity.device_id, config.device.name, __version__,
                                  configuration_url=household_page_url(config))
    return [HomeAssistantMqttService(config.homeassistant.mqtt, control=control, bus=bus, device=device)]


def household_page_url(config: Config) -> str | None:
    """The household page as another machine reaches it (Home Assistant links the device to it); None when it
    is off or only on loopback."""
    web = config.web
    if not web.enabled or is_loopback(web.host):
        return None
    host = web.host
    if host in ("", "0.0.0.0", "::"):
        interface = netinfo.primary_interface()
        host = (netinfo.ipv4_address(interface.name) if interface else None) or ""
    if not host:
        return None
    return f"http://{f'[{host}]' if ':' in host else host}:{web.port}/"


def _audio_pipeline(config: Config, bus: EventBus) -> AudioPipeline | None:
    """The one microphone-and-speaker pipeline, shared by the device client and the local brain."""
    if not config.audio.enabled:
        return None
    from pibuddy.audio.pipeline import AudioPipeline  # noqa: PLC0415 (wake word and VAD models load here)

    return AudioPipeline(config.audio, bus, state_dir=StateDir(config.device.resolved_state_dir))


def _audio_port(pipeline: AudioPipeline | None) -> AudioPort:
    """The pipeline as the device client sees it; a headless hub has none."""
    if pipeline is None:
        from pibuddy.audio.contract import NoAudio  # noqa: PLC0415

        return NoAudio()
    from pibuddy.audio.port import PipelineAudioPort  # noqa: PLC0415

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
