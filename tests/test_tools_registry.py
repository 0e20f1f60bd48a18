"""The tool registry: declaration, order, the firmware's argument rules and messages, failures as text."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from pibuddy.errors import Cause, DeviceUnreachable, DriverError, Failure
from pibuddy.tools import Tool, ToolRegistry, ToolResult, boolean, integer, string, tool
from pibuddy.tools.registry import compact_json


def _echo(name: str = "self.test.echo", **params: dict[str, Any]) -> Tool:
    @tool(name, f"Echoes its arguments ({name}).", params=params)
    async def echo(arguments: dict[str, Any]) -> dict[str, Any]:
        return arguments

    return echo


def _returning(value: Any, name: str = "self.test.value") -> Tool:
    @tool(name, "Returns a fixed value.")
    async def fixed(arguments: dict[str, Any]) -> Any:
        return value

    return fixed


async def _call(t: Tool, arguments: Any = None) -> ToolResult:
    registry = ToolRegistry()
    registry.register(t)
    return await registry.call(t.name, arguments)


# --- declaration and order ---------------------------------------------------------------------------


def test_decorator_builds_the_firmware_schema() -> None:
    t = _echo(volume=integer(0, 100), loud=boolean(default=False), theme=string(enum=["light", "dark"]))
    assert t.to_mcp() == {
        "name": "self.test.echo",
        "description": "Echoes its arguments (self.test.echo).",
        "inputSchema": {
            "type": "object",
            "properties": {
                "volume": {"type": "integer", "minimum": 0, "maximum": 100},
                "loud": {"type": "boolean", "default": False},
                "theme": {"type": "string", "enum": ["light", "dark"]},
            },
            "required": ["volume", "theme"],
        },
    }
    assert "required" not in _echo().input_schema
    assert list(_echo().to_mcp()) == ["name", "description", "inputSchema"]


def test_user_only_tools_carry_the_audience_annotation_and_are_hidden_by_default() -> None:
    registry = ToolRegistry()
    registry.register(_echo("self.a"))
    registry.register(Tool("self.secret", "d", {"type": "object", "properties": {}}, _echo().handler,
                           user_only=True))
    registry.register(_echo("self.b"))
    assert [t.name for t in registry.list()] == ["self.a", "self.b"]
    assert [t.name for t in registry.list(with_user_tools=True)] == ["self.a", "self.secret", "self.b"]
    assert registry.list(with_user_tools=True)[1].to_mcp()["annotations"] == {"audience": ["user"]}


def test_duplicate_names_are_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    registry = ToolRegistry()
    first, second = _returning(1, "self.same"), _returning(2, "self.same")
    assert registry.register(first) is True
    assert registry.register(second) is False
    assert registry.get("self.same") is first
    assert len(registry.list()) == 1
    assert "self.same is already registered" in caplog.text


@pytest.mark.parametrize("schema", [
    {"type": "object"},
    {"type": "array", "properties": {}},
    {"type": "object", "properties": {"x": {"type": "no-such-type"}}},
])
def test_invalid_schemas_are_refused_at_declaration(schema: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="inputSchema"):
        Tool("self.bad", "d", schema, _echo().handler)


def test_invalid_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        integer(0, 100, default=101)
    with pytest.raises(ValueError, match="non-empty name"):
        _echo("")


def test_the_tool_keeps_its_own_copy_of_the_schema() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"x": {"type": "integer"}}}
    t = Tool("self.copy", "d", schema, _echo().handler)
    schema["properties"]["x"]["type"] = "string"
    assert t.input_schema["properties"]["x"]["type"] == "integer"


# --- arguments: the firmware's rules and messages -----------------------------------------------------


@pytest.mark.parametrize(("arguments", "message"), [
    ({}, "Missing valid argument: volume"),
    ({"volume": "50"}, "Missing valid argument: volume"),
    ({"volume": True}, "Missing valid argument: volume"),
    ({"volume": 37.5}, "Missing valid argument: volume"),
    ({"volume": None}, "Missing valid argument: volume"),
    ({"volume": -1}, "Value is below minimum allowed: 0"),
    ({"volume": 101}, "Value exceeds maximum allowed: 100"),
    ({"volume": 5, "mute": 1}, "Missing valid argument: mute"),
    ({"volume": 5, "label": 7}, "Missing valid argument: label"),
    ([1, 2], "Invalid arguments"),
    ("volume=5", "Invalid arguments"),
])
async def test_firmware_argument_errors(arguments: Any, message: str) -> None:
    t = _echo(volume=integer(0, 100), mute=boolean(default=False), label=string(default="x"))
    result = await _call(t, arguments)
    assert result == ToolResult(message, is_error=True)


async def test_defaults_are_applied_and_never_shared_between_calls() -> None:
    t = _echo(volume=integer(0, 100, default=80), mute=boolean(default=False),
              tags={"type": "array", "default": []})
    first = await _call(t, {})
    assert first == ToolResult('{"volume":80,"mute":false,"tags":[]}')
    assert (await _call(t, {"volume": 5})).text == '{"volume":5,"mute":false,"tags":[]}'
    assert t.input_schema["properties"]["tags"]["default"] == []


async def test_whole_floats_become_integers() -> None:
    received: list[Any] = []

    @tool("self.test.int", "d", params={"n": integer(0, 100)})
    async def record(arguments: dict[str, Any]) -> bool:
        received.append(arguments["n"])
        return True

    assert (await _call(record, {"n": 37.0})).text == "true"
    assert received == [37]
    assert type(received[0]) is int


async def test_undeclared_arguments_are_dropped_unless_the_schema_allows_them() -> None:
    assert (await _call(_echo(n=integer()), {"n": 1, "extra": 2})).text == '{"n":1}'
    open_schema = {"type": "object", "properties": {}, "additionalProperties": True}
    closed_schema = {"type": "object", "properties": {}, "additionalProperties": False}
    handler = _echo().handler
    assert (await _call(Tool("self.open", "d", open_schema, handler), {"extra": 2})).text == '{"extra":2}'
    closed = await _call(Tool("self.closed", "d", closed_schema, handler), {"extra": 2})
    assert closed.is_error
    assert closed.text.startswith("Invalid arguments: Additional properties are not allowed")


async def test_json_schema_rules_beyond_the_firmware_are_enforced() -> None:
    result = await _call(_echo(theme=string(enum=["light", "dark"])), {"theme": "blue"})
    assert result == ToolResult("Invalid argument theme: 'blue' is not one of ['light', 'dark']", True)
    nested = {"type": "object", "properties": {"rgb": {"type": "array", "items": {"type": "integer"},
                                                       "minItems": 3, "maxItems": 3}}}
    bad = await _call(Tool("self.rgb", "d", nested, _echo().handler), {"rgb": [1, "x", 3]})
    assert bad == ToolResult("Invalid argument rgb.1: 'x' is not of type 'integer'", True)
    huge = await _call(_echo(theme=string(enum=["light", "dark"])), {"theme": "x" * 10_000})
    assert huge.text.startswith("Invalid argument theme: 'xxx")
    assert len(huge.text) < 250


# --- results ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    (True, "true"),
    (False, "false"),
    (37, "37"),
    ("plain text, not JSON", "plain text, not JSON"),
    ({"温度": 21.5, "ok": True}, '{"温度":21.5,"ok":true}'),
    ([1, "二"], '[1,"二"]'),
    (ToolResult("kept as is", is_error=True), "kept as is"),
])
async def test_results_become_text_like_the_firmware(value: Any, text: str) -> None:
    result = await _call(_returning(value))
    assert result.text == text
    assert result.is_error is isinstance(value, ToolResult)


def test_compact_json_is_raw_utf8_without_spaces() -> None:
    assert compact_json({"a": [1, 2], "名": "值"}) == '{"a":[1,2],"名":"值"}'


# --- failures -----------------------------------------------------------------------------------------


async def test_unknown_tool() -> None:
    assert await ToolRegistry().call("self.nope", {}) == ToolResult("Unknown tool: self.nope", True)


async def test_driver_errors_become_their_message(caplog: pytest.LogCaptureFixture) -> None:
    @tool("self.lamp.on", "d")
    async def lamp_on(arguments: dict[str, Any]) -> bool:
        raise DeviceUnreachable("The living room lamp does not answer.", device="living room lamp")

    @tool("self.lamp.off", "d")
    async def lamp_off(arguments: dict[str, Any]) -> bool:
        raise DriverError("The lamp refused.", code="refused")

    assert await _call(lamp_on) == ToolResult("The living room lamp does not answer.", True,
                                              Cause(Failure.UNREACHABLE, device="living room lamp"))
    assert await _call(lamp_off) == ToolResult("The lamp refused.", True)  # no cause: its text says why
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["tool self.lamp.on failed (device_unreachable): The living room lamp does not answer.",
                        "tool self.lamp.off failed (refused): The lamp refused."]
    assert not any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize("failure", [ZeroDivisionError("boom"), TimeoutError("socket")])
async def test_unexpected_exceptions_are_logged_once_and_answered_generically(
    caplog: pytest.LogCaptureFixture, failure: Exception
) -> None:
    @tool("self.buggy", "d")
    async def buggy(arguments: dict[str, Any]) -> bool:
        raise failure

    result = await _call(buggy)
    assert result == ToolResult("self.buggy failed because of an internal error", True)
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert logged[0].exc_info[1] is failure


async def test_unserialisable_results_are_a_handler_bug(caplog: pytest.LogCaptureFixture) -> None:
    result = await _call(_returning({1, 2}))
    assert result == ToolResult("self.test.value failed because of an internal error", True)
    assert any(r.exc_info for r in caplog.records)


async def test_a_slow_handler_is_cancelled_at_its_timeout() -> None:
    cancelled = asyncio.Event()

    @tool("self.slow", "d", timeout=0.05)
    async def slow(arguments: dict[str, Any]) -> bool:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return True

    async with asyncio.timeout(2):
        result = await _call(slow)
    assert result == ToolResult("self.slow did not finish within 0.05 seconds", True, Cause(Failure.NO_RESPONSE))
    assert cancelled.is_set()


async def test_the_registry_timeout_applies_when_the_tool_sets_none() -> None:
    @tool("self.slow", "d")
    async def slow(arguments: dict[str, Any]) -> bool:
        await asyncio.sleep(10)
        return True

    registry = ToolRegistry(timeout=0.05)
    registry.register(slow)
    async with asyncio.timeout(2):
        assert (await registry.call("self.slow")).text == "self.slow did not finish within 0.05 seconds"


async def test_cancelling_a_call_is_not_swallowed() -> None:
    started = asyncio.Event()

    @tool("self.slow", "d")
    async def slow(arguments: dict[str, Any]) -> bool:
        started.set()
        await asyncio.sleep(10)
        return True

    registry = ToolRegistry()
    registry.register(slow)
    task = asyncio.create_task(registry.call("self.slow"))
    await asyncio.wait_for(started.wait(), 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
