"""The control, web and timers sections: how the household reaches the running service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from pibuddy.config.base import Port, Section, require_token_off_loopback


class ControlConfig(Section):
    socket: Path | None = None
    """The control socket `pibuddy status/volume/mute/announce/history` talk to. Empty: $RUNTIME_DIRECTORY
    (systemd's /run/pibuddy) for the service, else control.sock in the state dir."""
    history_entries: int = Field(default=200, ge=10, le=10_000)
    """Turns and actions kept in memory and in history.jsonl in the state dir (the file is capped too)."""


class WebConfig(Section):
    enabled: bool = False
    """Serve the household page (status, history, volume, mute, announce, restart)."""
    host: str = "127.0.0.1"
    """Address the page binds to; anything but loopback needs web.token."""
    port: Port = 8088
    """TCP port of the page."""
    token: SecretStr | None = Field(default=None, validate_default=True)
    """Password for the page (asked once, then kept in a cookie); required unless bound to loopback. Secret."""

    @field_validator("token")
    @classmethod
    def _token_off_loopback(cls, token: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return require_token_off_loopback(token, info, enabled="enabled", host="host")
