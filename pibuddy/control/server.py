"""The control socket: `pibuddy status/volume/mute/announce/history`, `pibuddy tools call` and `pibuddy mcp` reach
the running service here.

A Unix stream socket, mode 0660 (see `paths`). One JSON request per connection (`protocol`); at most
`_MAX_CONNECTIONS` at once, each with `_READ_TIMEOUT_SECONDS` to send its line of at most
`protocol.MAX_LINE_BYTES`. A bad request gets an error answer and a log line; nothing a client sends ends
the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from pibuddy.control import protocol
from pibuddy.control.center import Control
from pibuddy.control.history import entry_to_json
from pibuddy.control.model import ControlError
from pibuddy.errors import PiBuddyError
from pibuddy.statedir import StatePermissionError, StateStorageError
from pibuddy.supervisor import Health, Service

_LOGGER = logging.getLogger(__name__)
_MAX_CONNECTIONS: Final = 8
_READ_TIMEOUT_SECONDS: Final = 5.0
_SOURCE: Final = "cli"
_TOOL_SOURCES: Final = frozenset({_SOURCE, "mcp-stdio"})  # the local processes that call tools through here
_STATUS_HISTORY: Final = 5
_SETTING: Final = "control.socket"

Params = dict[str, Any]


class ControlSocketInUse(PiBuddyError):
    """Another PiBuddy already answers on the control socket."""


def _int_param(params: Params, key: str, default: int | None = None) -> int:
    value = params.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ControlError(f"{key} must be a whole number")
    return value


class ControlService(Service):
    """Runs `control` (its history recorder) and answers the control socket at `path`."""

    name = "control"

    def __init__(self, control: Control, path: Path) -> None:
        self.control = control
        self.path = path
        self._server: asyncio.Server | None = None
        self._connections = 0
        self._ops: dict[str, Callable[[Params], Awaitable[Any]]] = {
            "status": self._status, "volume": self._volume, "mute": self._mute, "announce": self._announce,
            "history": self._history, "restart": self._restart, "list_tools": self._list_tools,
            "call_tool": self._call_tool,
        }

    async def start(self) -> None:
        try:
            await self._take_over_stale_socket()
            self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            self._server = await asyncio.start_unix_server(self._handle, path=str(self.path),
                                                           limit=protocol.MAX_LINE_BYTES)
            os.chmod(self.path, 0o660)  # the unit's UMask=0077 would leave it 0600: the group may use it too
        except PermissionError:  # a dir owned by root after a run with sudo: one line with the fix
            raise StatePermissionError(self.path, self.path.parent, "create", setting=_SETTING) from None
        except OSError as exc:  # a full or read-only filesystem: one line with the fix, not a traceback per retry
            raise StateStorageError.of(exc, self.path, self.path.parent, setting=_SETTING) from None
        _LOGGER.info("control socket at %s", self.path)

    async def serve(self) -> None:
        await self.control.serve()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def health(self) -> Health:
        return Health(True, f"socket {self.path}")

    async def _take_over_stale_socket(self) -> None:
        """A socket file left by a PiBuddy that died is removed; one that still answers is not ours to take."""
        if not self.path.exists():
            return
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(probe, str(self.path))
        except OSError:
            self.path.unlink(missing_ok=True)
            return
        finally:
            probe.close()
        raise ControlSocketInUse(f"another PiBuddy already runs with the control socket {self.path}; "
                                 "stop it first (or set control.socket)")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        try:
            if self._connections > _MAX_CONNECTIONS:
                writer.write(protocol.error("too many control connections at once; try again"))
                return
            writer.write(await self._answer(reader))
            await writer.drain()
        except (ConnectionError, TimeoutError) as exc:
            _LOGGER.debug("control client went away: %r", exc)
        finally:
            self._connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> bytes:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_SECONDS):
                line = await reader.readline()
            request = json.loads(line)
        except TimeoutError:
            return protocol.error(f"no request within {_READ_TIMEOUT_SECONDS:g} s")
        except ValueError as exc:  # LimitOverrunError is a ValueError too
            _LOGGER.warning("control socket: bad request dropped (%s)", exc)
            return protocol.error(f"not a JSON request line: {exc}")
        op = request.get("op") if isinstance(request, dict) else None
        handler = self._ops.get(op) if isinstance(op, str) else None
        if handler is None:
            return protocol.error(f"unknown op {op!r}; known: {', '.join(self._ops)}")
        try:
            return protocol.ok(await handler(request))
        except ControlError as exc:
            return protocol.error(str(exc))
        except PiBuddyError as exc:
            _LOGGER.warning("control %s failed: %s", op, exc)
            return protocol.error(str(exc))

    async def _status(self, params: Params) -> Any:
        del params
        history = self.control.history(_STATUS_HISTORY)
        return self.control.snapshot().to_json() | {"history": [entry_to_json(e) for e in history]}

    async def _volume(self, params: Params) -> Any:
        if params.get("percent") is None:
            return {"volume": await self.control.volume()}
        return {"volume": await self.control.set_volume(_int_param(params, "percent"), source=_SOURCE)}

    async def _mute(self, params: Params) -> Any:
        muted = params.get("muted")
        if muted is None:
            return {"muted": self.control.snapshot().muted}
        if not isinstance(muted, bool):
            raise ControlError("muted must be true or false")
        return {"muted": await self.control.set_muted(muted, source=_SOURCE)}

    async def _announce(self, params: Params) -> Any:
        text, device = params.get("text"), params.get("device")
        if not isinstance(text, str) or not (device is None or isinstance(device, str)):
            raise ControlError("announce needs a text (and optionally a device MAC or 'all')")
        return {"announced_on": await self.control.announce(text, device=device, source=_SOURCE)}

    async def _history(self, params: Params) -> Any:
        count = _int_param(params, "count", 20)
        return {"entries": [entry_to_json(e) for e in self.control.history(max(count, 0))]}

    async def _list_tools(self, params: Params) -> Any:
        del params
        return {"tools": self.control.list_tools()}

    async def _call_tool(self, params: Params) -> Any:
        name, arguments, source = params.get("name"), params.get("arguments", {}), params.get("source", _SOURCE)
        if not isinstance(name, str) or not isinstance(arguments, dict):
            raise ControlError("call_tool needs a tool name and an arguments object")
        if source not in _TOOL_SOURCES:
            raise ControlError(f"call_tool's source is one of {', '.join(sorted(_TOOL_SOURCES))}")
        result = await self.control.call_tool(name, arguments, source=source)
        return {"text": result.text, "is_error": result.is_error}

    async def _restart(self, params: Params) -> Any:
        service = params.get("service")
        if not isinstance(service, str):
            raise ControlError("restart needs a service name")
        await self.control.restart(service, source=_SOURCE)
        return {"restarting": service}

