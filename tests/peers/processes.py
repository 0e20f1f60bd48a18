"""Stopping the peers' child processes: politely first, then for sure, every wait bounded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess


def stop_group(proc: subprocess.Popen[bytes], grace_seconds: float) -> None:
    """SIGTERM the process group `proc` leads (started with `start_new_session=True`), SIGKILL it after
    `grace_seconds`, then SIGKILL what is left of the group (helpers the leader started)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


async def stop_process(process: asyncio.subprocess.Process, grace_seconds: float) -> None:
    """SIGTERM `process`, SIGKILL it after `grace_seconds`; return once it has exited."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), grace_seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
