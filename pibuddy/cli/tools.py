"""`pibuddy tools list` and `pibuddy tools call NAME '{"arg": …}'`: the tools the LLM gets, by hand."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pibuddy.cli.common import json_object_arg, load_or_exit

if TYPE_CHECKING:
    from pibuddy.tools.registry import Tool

NAME = "tools"
HELP = "list the tools offered to the LLM, or call one with JSON arguments"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "call"], help="list the tools, or call one")
    parser.add_argument("name", nargs="?", help="call: the tool's name, e.g. self.get_device_status")
    parser.add_argument("arguments", nargs="?", default="{}",
                        help='call: a JSON object of arguments, e.g. \'{"volume": 40}\' (default {})')
    parser.add_argument("--all", action="store_true", help="list: include user-only tools")


def run(args: argparse.Namespace) -> int:
    if args.action == "call" and not args.name:
        print("pibuddy: tools call needs a tool name (see `pibuddy tools list`)", file=sys.stderr)
        return 2
    config = load_or_exit(args)
    from pibuddy.wiring.tools import build_registry  # noqa: PLC0415 - keep `pibuddy --help` light

    registry = build_registry(config)
    if args.action == "list":
        print(format_table(registry.list(with_user_tools=args.all)))
        return 0
    arguments = json_object_arg(args.arguments, "the arguments", example=", e.g. '{\"volume\": 40}'")
    if arguments is None:
        return 1
    from pibuddy.cli.service_tools import ServiceFirst  # noqa: PLC0415
    from pibuddy.control.paths import client_socket_paths  # noqa: PLC0415

    result = asyncio.run(ServiceFirst(client_socket_paths(config), registry, source="cli").call_tool(
        args.name, arguments))
    if result.is_error:
        print(f"pibuddy: {result.text}", file=sys.stderr)
        return 1
    print(result.text)
    return 0


def format_table(tools: list[Tool]) -> str:
    rows = [("NAME", "DESCRIPTION", "ARGUMENTS")]
    rows += [(t.name, t.description.splitlines()[0] if t.description else "", _arguments_text(t))
             for t in tools]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{n:<{widths[0]}}  {d:<{widths[1]}}  {a}".rstrip() for n, d, a in rows)


def _arguments_text(t: Tool) -> str:
    """`volume: integer 0..100`; optional arguments in brackets with their default."""
    properties: Mapping[str, Mapping[str, Any]] = t.input_schema["properties"]
    required = set(t.input_schema.get("required", ()))
    parts = []
    for name, prop in properties.items():
        text = f"{name}: {_type_text(prop)}"
        if "default" in prop:
            text += f" = {json.dumps(prop['default'], ensure_ascii=False)}"
        parts.append(text if name in required else f"[{text}]")
    return ", ".join(parts) or "-"


def _type_text(prop: Mapping[str, Any]) -> str:
    if "enum" in prop:
        return "|".join(str(v) for v in prop["enum"])
    text = str(prop.get("type", "any"))
    if "minimum" in prop or "maximum" in prop:
        text += f" {prop.get('minimum', '')}..{prop.get('maximum', '')}"
    return text
