"""A model mirror on 127.0.0.1: what alphacephei.com and huggingface.co/rhasspy/piper-voices serve, laid
out the same way: `<model>.zip` holding one top directory with am/ conf/ graph/, and
`<lang>/<locale>/<name>/<quality>/<voice>.onnx` plus `.onnx.json`.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

CN_MODEL = "vosk-model-small-cn-0.22"


def vosk_zip(top: str = CN_MODEL, *, extra: dict[str, bytes] | None = None) -> bytes:
    """A zip shaped like a vosk model (not a loadable one): `top`/am, conf and graph, plus `extra` members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for member, data in {f"{top}/am/final.mdl": b"\x00" * 4096, f"{top}/conf/mfcc.conf": b"--use-energy=false\n",
                             f"{top}/graph/HCLr.fst": b"fst", **(extra or {})}.items():
            bundle.writestr(member, data)
    return buffer.getvalue()


class Mirror:
    """An aiohttp server on 127.0.0.1 serving `files` by path; records each path asked for."""

    def __init__(self) -> None:
        self.files: dict[str, bytes | Callable[[web.Request], Awaitable[web.StreamResponse]]] = {}
        self.requests: list[str] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.lstrip("/")
        self.requests.append(path)
        served = self.files.get(path)
        if served is None:
            return web.Response(status=404)
        if callable(served):
            return await served(request)
        return web.Response(body=served)


@pytest.fixture
async def mirror() -> AsyncIterator[Mirror]:
    served = Mirror()
    app = web.Application()
    app.router.add_get("/{tail:.*}", served.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    served.url = f"http://127.0.0.1:{port}/mirror/"
    try:
        yield served
    finally:
        await runner.cleanup()
