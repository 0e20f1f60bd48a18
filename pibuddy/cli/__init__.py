"""The `pibuddy` command line: one module per subcommand, each with NAME, HELP, add_arguments, run."""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType
from typing import Final

from pibuddy import __version__

# Subcommand modules under pibuddy.cli; each keeps heavy imports inside its run().
_COMMAND_MODULES: Final = (
    "run",
    "status",
    "volume",
    "mute",
    "announce",
    "history",
    "activate",
    "check",
    "audio_devices",
    "tools",
    "say",
    "mcp",
    "gateway",
    "miot",
    "ble",
    "openclaw",
    "openclaw_bridge",
    "models",
    "version",
)


def _commands() -> list[ModuleType]:
    return [importlib.import_module(f"pibuddy.cli.{name}") for name in _COMMAND_MODULES]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pibuddy",
        description="PiBuddy: a Raspberry Pi voice buddy and local hub for xiaozhi devices.",
        epilog="Configuration: --config, else $PIBUDDY_CONFIG, else /etc/pibuddy/config.yaml if it exists, "
        "else ./config.yaml. Any key can be overridden as PIBUDDY_<SECTION>_<KEY>.",
    )
    parser.add_argument("--version", action="version", version=f"pibuddy {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _commands():
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        sub.add_argument("--config", "-c", metavar="PATH", help="configuration file (YAML)")
        sub.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                         help="override logging.level from the config")
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
