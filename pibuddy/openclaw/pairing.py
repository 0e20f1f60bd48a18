"""What PiBuddy tells the user while a gateway waits for approval, and when to say it.

Pure bookkeeping: each pending request is announced once (log and speech), retries stay quiet, and the
approval is announced only if a wait was announced first. The gateway gives the node no id for its command
approval, so that instruction names the command to list them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Announcement:
    log: str
    say: str


@dataclass
class PairingGuide:
    """Per role. `name` is how PiBuddy calls itself in speech."""

    role: str
    name: str = "PiBuddy"
    _announced: set[str] = field(default_factory=set)
    _waiting: bool = False

    def device_pending(self, request_id: str, reason: str) -> Announcement | None:
        """The gateway refused with PAIRING_REQUIRED (`reason`: not-paired, role-upgrade, metadata-upgrade ...)."""
        key = f"device:{request_id}"
        self._waiting = True
        if key in self._announced:
            return None
        self._announced.add(key)
        command = f"openclaw devices approve {request_id}" if request_id else "openclaw devices list"
        what = "this device" if reason == "not-paired" else f"this device's {self.role} session ({reason})"
        return Announcement(
            log=f"OpenClaw {self.role}: the gateway waits for approval of {what}; on the gateway host run: "
                f"{command} (PiBuddy keeps retrying)",
            say=f"OpenClaw needs approval for {self.name}. On the gateway, run openclaw devices approve "
                f"with request {_spoken_id(request_id)}; the full id is in PiBuddy's log.")

    def commands_pending(self, node_id: str) -> Announcement | None:
        """Connected, but the gateway hides the node's commands until `openclaw nodes approve`."""
        self._waiting = True
        key = "commands"
        if key in self._announced:
            return None
        self._announced.add(key)
        return Announcement(
            log=f"OpenClaw node {node_id[:12]}: connected; its commands wait for approval: on the gateway host "
                "run `openclaw nodes pending`, then `openclaw nodes approve <requestId>`",
            say=f"{self.name} is connected to OpenClaw. To let OpenClaw use it, approve its commands "
                "on the gateway with openclaw nodes approve.")

    def approved(self, what: str) -> Announcement | None:
        """Say so only if the user was told to approve something."""
        if not self._waiting:
            return None
        self._waiting = False
        self._announced.clear()
        return Announcement(log=f"OpenClaw {self.role}: {what} approved", say=f"OpenClaw approved {self.name}.")


def _spoken_id(request_id: str) -> str:
    """The first characters of an id, spaced so a speech engine spells them ("1 f 9 9 ...")."""
    return " ".join(request_id[:6]) or "from openclaw devices list"
