"""Where the control socket lives.

The service binds it in systemd's RuntimeDirectory (/run/pibuddy, mode 0750, group pibuddy) when systemd
gives one, else in the state dir; `control.socket` in the config overrides both. The socket is mode 0660:
the service user and members of its group may use it, nobody else. File permissions are the guard, so there
is no token to generate, store or pass around, and nothing listens on the network.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from pibuddy.config import Config

SOCKET_NAME: Final = "control.sock"
SYSTEM_RUNTIME_DIR: Final = Path("/run/pibuddy")


def service_socket_path(config: Config, environ: Mapping[str, str] | None = None) -> Path:
    """Where `pibuddy run` binds the control socket."""
    if config.control.socket is not None:
        return config.control.socket.expanduser()
    runtime = (os.environ if environ is None else environ).get("RUNTIME_DIRECTORY")
    if runtime:
        return Path(runtime.split(":")[0]) / SOCKET_NAME
    return config.device.resolved_state_dir / SOCKET_NAME


def client_socket_paths(config: Config) -> list[Path]:
    """Where the CLI looks for the socket, in order: the configured one, else systemd's runtime dir, then
    the state dir (a `pibuddy run` in a terminal)."""
    if config.control.socket is not None:
        return [config.control.socket.expanduser()]
    return [SYSTEM_RUNTIME_DIR / SOCKET_NAME, config.device.resolved_state_dir / SOCKET_NAME]
