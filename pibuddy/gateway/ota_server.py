"""Local OTA for devices (docs/protocol.md §2): point a stock ESP32's OTA URL at the Pi and it just works.

`POST /xiaozhi/ota/` answers with `server_time`, a `firmware` entry that never asks for an upgrade, and an
`mqtt` object whose credentials are signed with the gateway's key and point at this gateway, so the
firmware picks MQTT+UDP (§2.2). `POST /xiaozhi/ota/activate` answers 200: the Pi does not bind devices.
The OTA URL is advertised on the LAN over mDNS as `_xiaozhi-ota._tcp` (with `path`, MQTT and UDP ports).
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from pibuddy.drops import DropCounter
from pibuddy.errors import PiBuddyError
from pibuddy.gateway.credentials import issue_mqtt_credentials, normalize_mac
from pibuddy.jsonlimits import JsonTooDeep, loads_limited

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncZeroconf

_LOGGER = logging.getLogger(__name__)
OTA_PATH: Final = "/xiaozhi/ota/"
NOT_PAIRED_TEXT: Final = ("this device is not paired with the gateway: run `pibuddy gateway pair` on the Pi, "
                          "then restart the device")
MDNS_SERVICE_TYPE: Final = "_xiaozhi-ota._tcp.local."


class LocalOta:
    """Args:
    key: the signature key device passwords are signed with.
    mqtt_endpoint: `host:port` of this gateway's MQTT endpoint, as devices must dial it.
    admit: whether a device (by MAC) may get credentials (`Admission.admit`); None admits every device.
    clock: wall-clock seconds (tests freeze it).
    """

    def __init__(self, *, key: str, mqtt_endpoint: str, admit: Callable[[str], bool] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._endpoint = mqtt_endpoint
        self._admit = admit
        self._clock = clock
        self._refused = DropCounter("OTA requests of devices not paired", _LOGGER)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        for path in (OTA_PATH, OTA_PATH.rstrip("/")):
            app.router.add_post(path, self._check_version)
            app.router.add_get(path, self._describe)
        app.router.add_post(OTA_PATH + "activate", self._activate)
        return app

    async def _check_version(self, request: web.Request) -> web.Response:
        try:
            mac = normalize_mac(request.headers.get("Device-Id", ""))
        except ValueError:
            return web.json_response({"error": "Device-Id header must be the device's MAC address"}, status=400)
        if self._admit is not None and not self._admit(mac):
            self._refused.count("pairing closed")
            return web.json_response({"error": NOT_PAIRED_TEXT}, status=403)
        try:
            body = loads_limited(await request.read())
        except JsonTooDeep:
            raise  # answered 400 by the web app's malformed-input middleware
        except ValueError:  # an empty or non-JSON body still gets a configuration
            body = None
        body = body if isinstance(body, dict) else {}
        now = self._clock()
        offset = dt.datetime.fromtimestamp(now).astimezone().utcoffset() or dt.timedelta()
        answer: dict[str, Any] = {
            "server_time": {"timestamp": int(now * 1000), "timezone_offset": int(offset.total_seconds() // 60)},
            "firmware": {"version": _application_version(body), "url": ""},
            "mqtt": issue_mqtt_credentials(
                self._key, mac=mac, client_uuid=request.headers.get("Client-Id") or None,
                board_type=_board_type(body), endpoint=self._endpoint, ip=request.remote or "",
            ),
        }
        _LOGGER.info("OTA: issued MQTT credentials to %s (%s)", mac, request.remote)
        return web.json_response(answer)

    async def _describe(self, request: web.Request) -> web.Response:
        del request
        return web.Response(text="PiBuddy local OTA: POST here with Device-Id and Client-Id headers.\n")

    async def _activate(self, request: web.Request) -> web.Response:
        del request
        return web.Response(text="success")


def _application_version(body: dict[str, Any]) -> str:
    """Echo the device's version back, so the firmware sees nothing newer and never upgrades."""
    application = body.get("application")
    version = application.get("version") if isinstance(application, dict) else None
    return version if isinstance(version, str) else "0.0.0"


def _board_type(body: dict[str, Any]) -> str:
    board = body.get("board")
    kind = board.get("type") if isinstance(board, dict) else None
    return kind if isinstance(kind, str) and kind else "default"


class MdnsFailed(PiBuddyError):
    """The mDNS advertisement could not be set up; the gateway serves on without it."""


class MdnsAdvertiser:
    """Registers the OTA URL on the LAN; `interfaces` limits it (tests use ["127.0.0.1"]).

    Raises `MdnsFailed` if `address` is not an IPv4 address (a `public_ip` host name cannot be advertised).
    zeroconf (7 MB of RSS) is imported only here, so a gateway with `mdns: false` never loads it.
    """

    def __init__(self, *, address: str, ota_port: int, mqtt_port: int, udp_port: int,
                 interfaces: list[str] | None = None) -> None:
        from zeroconf.asyncio import AsyncServiceInfo  # noqa: PLC0415

        hostname = socket.gethostname().split(".")[0]
        self.instance = f"PiBuddy gateway on {hostname}.{MDNS_SERVICE_TYPE}"
        try:
            packed = socket.inet_aton(address)
        except OSError:
            raise MdnsFailed(f"{address!r} is not an IPv4 address") from None
        self._info = AsyncServiceInfo(
            MDNS_SERVICE_TYPE, self.instance, addresses=[packed], port=ota_port,
            properties={"path": OTA_PATH, "mqtt_port": str(mqtt_port), "udp_port": str(udp_port)},
            server=f"{hostname}.local.",
        )
        self._interfaces = interfaces
        self._zeroconf: AsyncZeroconf | None = None

    async def start(self) -> None:
        """Register the service; raises `MdnsFailed` (no multicast interface, a zeroconf error)."""
        from zeroconf import Error as ZeroconfError  # noqa: PLC0415
        from zeroconf import InterfaceChoice, IPVersion  # noqa: PLC0415
        from zeroconf.asyncio import AsyncZeroconf  # noqa: PLC0415

        try:
            zeroconf = AsyncZeroconf(interfaces=self._interfaces or InterfaceChoice.All,
                                     ip_version=IPVersion.V4Only)
        except (OSError, ZeroconfError) as exc:
            raise MdnsFailed(str(exc) or type(exc).__name__) from exc
        try:
            await zeroconf.async_register_service(self._info, allow_name_change=True)
        except (OSError, ZeroconfError) as exc:
            await zeroconf.async_close()
            raise MdnsFailed(str(exc) or type(exc).__name__) from exc
        self._zeroconf = zeroconf

    async def stop(self) -> None:
        zeroconf, self._zeroconf = self._zeroconf, None
        if zeroconf is not None:
            await zeroconf.async_unregister_service(self._info)
            await zeroconf.async_close()
