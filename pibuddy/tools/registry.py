"""The tool registry: named tools with a JSON schema and an async handler, called with checked arguments.

`ToolRegistry.call()` never raises for a tool's failure: unknown tools, invalid arguments, a driver's
`DriverError`, a timeout or an unexpected exception all become a short error `ToolResult` whose text is
what the LLM hears. The registry knows nothing of MCP or transports; `tools.mcp` and the CLI sit on top.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from pibuddy.errors import Cause, DriverError, Failure, InvalidArguments
from pibuddy.tools.arguments import check_arguments, compile_schema, object_schema

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

_LOGGER = logging.getLogger(__name__)

# xiaozhi-server gives a device tool call 30 s; answer (with an error) before it gives up.
DEFAULT_TIMEOUT_SECONDS: Final = 25.0


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool call produced: the text the LLM gets, and whether it reports a failure."""

    text: str
    is_error: bool = False
    cause: Cause | None = None
    """For an error: what it means to the person who asked (unreachable, refused, ...), when known."""


# A handler may return a ToolResult or any JSON value: str is the text itself; bool, int, dict, list ...
# become their compact JSON text ("true", "37", {"a":1}), as the firmware's ReturnValue does.
ToolOutput = ToolResult | str | bool | int | float | dict[str, Any] | list[Any]
Handler = Callable[[dict[str, Any]], Awaitable[ToolOutput]]


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One finished tool call, for the history: who asked, what, the result, and how long it took."""

    source: str
    name: str
    arguments: Mapping[str, Any]
    result: ToolResult
    seconds: float


CallObserver = Callable[[CallRecord], None]


def compact_json(value: Any) -> str:
    """JSON without spaces and with raw UTF-8, the encoding the firmware (cJSON unformatted) sends."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool. `user_only` tools (firmware `annotations.audience:["user"]`) are hidden from the LLM's
    list unless asked for; `timeout` overrides the registry's default, in seconds."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    handler: Handler = field(repr=False)
    user_only: bool = False
    timeout: float | None = None
    _validator: Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a tool needs a non-empty name")
        schema = copy.deepcopy(dict(self.input_schema))  # the caller keeps no handle on our copy
        object.__setattr__(self, "input_schema", schema)
        object.__setattr__(self, "_validator", compile_schema(schema))

    def check(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Arguments with defaults applied; raises `InvalidArguments` with the firmware's message."""
        return check_arguments(self.input_schema, self._validator, arguments)

    def to_mcp(self) -> dict[str, Any]:
        """The tool as `tools/list` lists it, keys in the firmware's order."""
        described: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
        }
        if self.user_only:
            described["annotations"] = {"audience": ["user"]}
        return described


def tool(
    name: str,
    description: str,
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    user_only: bool = False,
    timeout: float | None = None,
) -> Callable[[Handler], Tool]:
    """Declare a tool from a handler; `params` maps names to `arguments.integer(...)`-style properties.

        @tool("self.audio_speaker.set_volume", "Set the speaker volume.", params={"volume": integer(0, 100)})
        async def set_volume(arguments: dict[str, Any]) -> bool: ...
    """

    def declare(handler: Handler) -> Tool:
        return Tool(name, description, object_schema(params or {}), handler, user_only=user_only,
                    timeout=timeout)

    return declare


class ToolRegistry:
    """Tools in registration order (register the common ones first: the list is part of the LLM's prompt,
    and a stable prefix keeps the prompt cache warm)."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        """Args:
        timeout: seconds a handler may run unless its tool sets its own.
        """
        self._tools: dict[str, Tool] = {}
        self._timeout = timeout
        self._observers: builtins.list[CallObserver] = []

    def observe(self, observer: CallObserver) -> None:
        """Have `observer` told of every finished call (the history records them); it must not raise."""
        self._observers.append(observer)

    def register(self, new: Tool) -> bool:
        """Add a tool; a second tool with a taken name is logged and ignored, as the firmware does, so one
        misbehaving driver cannot replace another's tool. Returns whether it was added."""
        if new.name in self._tools:
            _LOGGER.warning("tool %s is already registered; the duplicate is ignored", new.name)
            return False
        self._tools[new.name] = new
        return True

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def list(self, *, with_user_tools: bool = False) -> builtins.list[Tool]:
        return [t for t in self._tools.values() if with_user_tools or not t.user_only]

    async def call(self, name: str, arguments: Mapping[str, Any] | None = None, *,
                   source: str = "unnamed") -> ToolResult:
        """Check the arguments, run the handler with a timeout, and turn any failure into error text.

        `source` names the surface that asks ("xiaozhi", "mcp-http", "local-brain", "cli" ...; every surface
        in pibuddy/ passes its own): every call is one INFO line with it, and goes to the observers.
        """
        started = time.monotonic()
        result = await self._call(name, arguments)
        seconds = time.monotonic() - started
        recorded = dict(arguments) if isinstance(arguments, Mapping) else {}  # bad input: its error says why
        _LOGGER.info("tool %s called by %s %s -> %s%s (%.0f ms)", name, source, _preview(repr(recorded)),
                     "error: " if result.is_error else "", _preview(result.text), seconds * 1000)
        record = CallRecord(source, name, recorded, result, seconds)
        for observer in self._observers:
            observer(record)
        return result

    async def _call(self, name: str, arguments: Mapping[str, Any] | None) -> ToolResult:
        found = self._tools.get(name)
        if found is None:
            return ToolResult(f"Unknown tool: {name}", is_error=True)
        timeout = found.timeout if found.timeout is not None else self._timeout
        deadline = asyncio.timeout(timeout)
        try:
            checked = found.check({} if arguments is None else arguments)
            async with deadline:
                output = await found.handler(checked)
            return output if isinstance(output, ToolResult) else ToolResult(_output_text(output))
        except DriverError as exc:
            # Bad arguments are the caller's (the LLM's) slip, not a fault here: no warning for them.
            level = logging.INFO if isinstance(exc, InvalidArguments) else logging.WARNING
            _LOGGER.log(level, "tool %s failed (%s): %s", name, exc.code, exc.message)
            return ToolResult(exc.message, is_error=True, cause=exc.cause)
        except TimeoutError:
            if not deadline.expired():  # the handler's own TimeoutError: a bug, not our deadline
                return _unexpected(name)
            _LOGGER.warning("tool %s did not finish within %g s", name, timeout)
            return ToolResult(f"{name} did not finish within {timeout:g} seconds", is_error=True,
                              cause=Cause(Failure.NO_RESPONSE))
        except Exception:
            return _unexpected(name)


def _preview(text: str, limit: int = 120) -> str:
    """A tool's answer on one log line: newlines flattened, long answers cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def _output_text(output: Any) -> str:
    return output if isinstance(output, str) else compact_json(output)


def _unexpected(name: str) -> ToolResult:
    """A handler bug: the traceback goes to the log once, the LLM gets a generic sentence."""
    _LOGGER.exception("tool %s raised an unexpected error", name)
    return ToolResult(f"{name} failed because of an internal error", is_error=True)
