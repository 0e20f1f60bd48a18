"""The Home Assistant driver as a supervised service: one WebSocket that keeps the index fresh.

`start()` connects, subscribes to `state_changed` and the `*_registry_updated` events, then loads the
registries and states; `serve()` raises `ConnectionLost` when the link drops, and the supervisor reconnects
with backoff. Tools never depend on the service being up: `index()` falls back to a one-shot load, so
`pibuddy tools call` works on its own and a tool called during a reconnect still gets an answer (or the
"not reachable" text). A missing or unreachable Home Assistant never stops PiBuddy from starting.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from pibuddy.config import HomeAssistantConfig
from pibuddy.drivers.homeassistant.client import (
    UNREACHABLE_TEXT,
    EventHandler,
    RestClient,
    WebSocketLink,
    websocket_url,
)
from pibuddy.drivers.homeassistant.index import REGISTRY_EVENTS, Index
from pibuddy.errors import ConnectionLost, DeviceUnreachable, DriverError, NotSetUp, Party
from pibuddy.supervisor import Health, Service

_LOGGER = logging.getLogger(__name__)
# Registry events come in bursts (an area rename touches every entity): reload once per burst.
_RELOAD_DELAY_SECONDS: Final = 0.3


class HomeAssistantService(Service):
    """Keeps a live `Index` of one Home Assistant and hands tools a REST client.

    Args:
        config: the `homeassistant` config section.
    """

    name = "homeassistant"

    def __init__(self, config: HomeAssistantConfig) -> None:
        self._url = str(config.url).rstrip("/")
        self._token = config.token.get_secret_value() if config.token else ""
        self._timeout = config.timeout
        self.assist_language = config.assist_language
        self._link: WebSocketLink | None = None
        self._index: Index | None = None
        self._reloads: dict[str, asyncio.Task[None]] = {}

    @property
    def url(self) -> str:
        return self._url

    async def start(self) -> None:
        index = Index()
        link = await self._open(on_event=lambda event: self._on_event(link, index, event))
        try:
            for event_type in ("state_changed", *REGISTRY_EVENTS):
                await link.subscribe(event_type)
            await load_index(link, index)
        except BaseException:
            await link.close()
            raise
        self._link, self._index = link, index
        _LOGGER.info("connected to Home Assistant at %s: %d areas, %d entities", self._url, len(index.areas),
                     len(index.entities))

    async def serve(self) -> None:
        link = self._link
        if link is None:
            raise ConnectionLost("not connected to Home Assistant")
        await link.wait_closed()
        raise ConnectionLost("Home Assistant closed the connection")

    async def stop(self) -> None:
        link, self._link, self._index = self._link, None, None
        for task in self._reloads.values():
            task.cancel()
        self._reloads.clear()
        if link is not None:
            await link.close()

    def health(self) -> Health:
        if self._link is None or self._link.closed or self._index is None:
            return Health(False, "not connected")
        return Health(True, f"{len(self._index.entities)} entities")

    # --- what the tools use ---

    def rest(self) -> RestClient:
        """A REST client for one tool call (`async with service.rest() as ha:`)."""
        self._require_token()
        return RestClient(self._url, token=self._token, timeout=self._timeout)

    async def index(self) -> Index:
        """The live index, or (while disconnected) a fresh one-shot load. Raises DriverError leaves."""
        if self._link is not None and not self._link.closed and self._index is not None:
            return self._index
        link = await self._open(on_event=None)
        try:
            index = Index()
            await load_index(link, index)
            return index
        except ConnectionLost:
            raise DeviceUnreachable(UNREACHABLE_TEXT, party=Party.HOME_ASSISTANT) from None
        finally:
            await link.close()

    # --- internals ---

    def _require_token(self) -> None:
        if not self._token:
            raise NotSetUp("no Home Assistant token: set homeassistant.token or PIBUDDY_HOMEASSISTANT_TOKEN",
                           party=Party.HOME_ASSISTANT)

    async def _open(self, *, on_event: EventHandler | None) -> WebSocketLink:
        self._require_token()
        return await WebSocketLink.open(websocket_url(self._url), token=self._token,
                                        request_timeout=self._timeout, on_event=on_event)

    def _on_event(self, link: WebSocketLink, index: Index, event: dict[str, Any]) -> None:
        registry = index.apply_event(event)
        if registry is not None and registry not in self._reloads:
            self._reloads[registry] = asyncio.create_task(self._reload(link, index, registry))

    async def _reload(self, link: WebSocketLink, index: Index, registry: str) -> None:
        try:
            await asyncio.sleep(_RELOAD_DELAY_SECONDS)
            self._reloads.pop(registry, None)  # a change from now on schedules another reload
            await _LOADERS[registry](link, index)
            _LOGGER.debug("reloaded the %s registry", registry)
        except (DriverError, ConnectionLost) as exc:
            # A dropped link ends serve() and the supervisor reconnects with a full load.
            _LOGGER.warning("could not reload the Home Assistant %s registry: %s", registry, exc)
        finally:
            if self._reloads.get(registry) is asyncio.current_task():
                self._reloads.pop(registry, None)


async def _load_areas(link: WebSocketLink, index: Index) -> None:
    index.set_areas(await link.command("config/area_registry/list"))


async def _load_floors(link: WebSocketLink, index: Index) -> None:
    try:
        index.set_floors(await link.command("config/floor_registry/list"))
    except DriverError:  # Home Assistant before floors existed
        index.set_floors([])


async def _load_devices(link: WebSocketLink, index: Index) -> None:
    index.set_devices(await link.command("config/device_registry/list"))


async def _load_entities(link: WebSocketLink, index: Index) -> None:
    """`list` leaves out aliases (HA 2024.x); `get_entries` has them, for the entries PiBuddy shows."""
    entries: list[dict[str, Any]] = await link.command("config/entity_registry/list")
    shown = [e["entity_id"] for e in entries if not (e.get("disabled_by") or e.get("hidden_by"))
             and "aliases" not in e]
    if shown:
        extended = await link.command("config/entity_registry/get_entries", entity_ids=shown)
        for entry in entries:
            full = extended.get(entry["entity_id"]) if isinstance(extended, dict) else None
            if isinstance(full, dict):
                entry["aliases"] = full.get("aliases", [])
    index.set_entries(entries)


async def _load_states(link: WebSocketLink, index: Index) -> None:
    index.set_states(await link.command("get_states"))


_LOADERS: Final = {"area": _load_areas, "floor": _load_floors, "device": _load_devices, "entity": _load_entities}


async def load_index(link: WebSocketLink, index: Index) -> None:
    """Fill `index` from the registries and states."""
    for loader in (*_LOADERS.values(), _load_states):
        await loader(link, index)
