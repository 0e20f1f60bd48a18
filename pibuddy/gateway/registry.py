"""Which gateway holds which device, kept in Redis so that several shared-nothing gateways answer as one
(docs/scaling.md).

Each gateway writes one key per connected device, `pibuddy:device:<client id>` = its own management API URL,
with a time to live: the gateway refreshes its keys every `_REFRESH_SECONDS`, so a gateway that dies takes its
devices out of the registry within `_TTL_SECONDS` (and a Redis restart is healed by the next refresh). A
device that leaves is deleted only if the key still names this gateway: if it has already reconnected to
another gateway, that one's entry stays. Writes never block the MQTT path: they are queued and flushed by one
task, and while Redis is away the gateway serves its own devices as before and logs one warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Final

from pibuddy.errors import PiBuddyError

if TYPE_CHECKING:
    from redis.asyncio import Redis

_LOGGER = logging.getLogger(__name__)
KEY_PREFIX: Final = "pibuddy:device:"
_TTL_SECONDS: Final = 30
_REFRESH_SECONDS: Final = 10.0
_RETRY_SECONDS: Final = 5.0
_TIMEOUT_SECONDS: Final = 2.0
# Delete the key only while it still names us (another gateway may hold the device by now).
_DELETE_IF_OURS: Final = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class RegistryUnavailable(PiBuddyError):
    """The Redis registry cannot be reached or answered with an error."""


class DeviceRegistry:
    """This gateway's devices in Redis, and where any other gateway's devices are.

    Args:
        url: redis://[:password@]host:port/db (secret: it may hold a password).
        api_url: this gateway's management API, the value written for its devices.
    """

    def __init__(self, url: str, *, api_url: str) -> None:
        self.api_url = api_url
        self._url = url
        self._redis: Redis | None = None
        self._held: set[str] = set()
        self._changed: dict[str, bool] = {}
        """client id -> True (write it) / False (delete it if ours), waiting for the flusher."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        try:
            from redis.asyncio import Redis  # noqa: PLC0415 (the optional `registry` extra)
        except ImportError:
            raise RegistryUnavailable("gateway.registry_url needs redis-py: pip install 'pibuddy[registry]'"
                                      ) from None
        self._redis = Redis.from_url(self._url, socket_timeout=_TIMEOUT_SECONDS,
                                     socket_connect_timeout=_TIMEOUT_SECONDS, decode_responses=True)
        self._task = asyncio.create_task(self._flush_forever(), name="gateway-registry")

    async def stop(self) -> None:
        """Take this gateway's devices out of the registry (best effort) and close the connection."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._redis is not None:
            self._changed = dict.fromkeys(self._held, False)
            with contextlib.suppress(RegistryUnavailable):
                await self._flush()
            await self._redis.aclose()
            self._redis = None

    def connected(self, client_id: str) -> None:
        self._held.add(client_id)
        self._changed[client_id] = True
        self._wake.set()

    def disconnected(self, client_id: str) -> None:
        self._held.discard(client_id)
        self._changed[client_id] = False
        self._wake.set()

    async def locate(self, client_id: str) -> str | None:
        """The management API URL of the gateway holding `client_id`, None if none does.

        Raises RegistryUnavailable.
        """
        if self._redis is None:
            raise RegistryUnavailable("the registry is not started")
        from redis.exceptions import RedisError  # noqa: PLC0415

        try:
            found = await self._redis.get(KEY_PREFIX + client_id)
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"Redis registry: {exc}") from exc
        return found if isinstance(found, str) else None

    async def _flush_forever(self) -> None:
        loop = asyncio.get_running_loop()
        refresh_at = loop.time()
        while True:
            if loop.time() >= refresh_at:  # rewrite every key: the TTL, and a Redis that lost them
                self._changed.update(dict.fromkeys(self._held, True))
                refresh_at = loop.time() + _REFRESH_SECONDS
            try:
                await self._flush()
            except RegistryUnavailable as exc:
                if not self._failing:
                    _LOGGER.warning("gateway registry: %s; devices are served, other gateways cannot find them "
                                    "here until Redis answers", exc)
                self._failing = True
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            if self._failing:
                _LOGGER.info("gateway registry: Redis answers again")
                self._failing = False
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, refresh_at - loop.time()))

    async def _flush(self) -> None:
        """Write the queued changes in one round trip; on failure they stay queued."""
        if not self._changed or self._redis is None:
            return
        from redis.exceptions import RedisError  # noqa: PLC0415

        changes, self._changed = self._changed, {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for client_id, present in changes.items():
                    if present:
                        pipe.set(KEY_PREFIX + client_id, self.api_url, ex=_TTL_SECONDS)
                    else:
                        pipe.eval(_DELETE_IF_OURS, 1, KEY_PREFIX + client_id, self.api_url)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._changed = {**changes, **self._changed}
            raise RegistryUnavailable(f"Redis at {_safe(self._url)}: {exc}") from exc


def _safe(url: str) -> str:
    """The URL without its password, for log lines."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
