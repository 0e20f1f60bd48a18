"""What every subcommand shares: finding and loading the config, setting up logging."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from pibuddy.config import Config, default_config_path, load_config
from pibuddy.errors import ConfigError
from pibuddy.logsetup import setup_logging

EXIT_CONFIG_ERROR = 2


def config_path(args: argparse.Namespace) -> Path:
    explicit = args.config or os.environ.get("PIBUDDY_CONFIG")
    return Path(explicit) if explicit else default_config_path()


def load_or_exit(args: argparse.Namespace, *, running_bridge: bool = False) -> Config:
    """Load the config and set up logging, or print every problem and exit with code 2 (`running_bridge`: see
    `load_config`)."""
    path = config_path(args)
    try:
        config = load_config(path, running_bridge=running_bridge)
    except ConfigError as exc:
        print(f"pibuddy: invalid configuration in {path}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG_ERROR) from None
    setup_logging(args.log_level or config.logging.level.value, config.secrets())
    return config


def json_object_arg(text: str, what: str, *, example: str = "") -> dict[str, Any] | None:
    """The command-line argument `text` as a JSON object, or None after printing why it is not one.

    `what` names it in the message ("the params"); `example` follows "must be a JSON object" (", e.g. ...").
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        print(f"pibuddy: {what} are not valid JSON ({exc})", file=sys.stderr)
        return None
    if not isinstance(value, dict):
        print(f"pibuddy: {what} must be a JSON object{example}", file=sys.stderr)
        return None
    return value
