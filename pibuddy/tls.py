"""The verifying TLS context of PiBuddy's HTTP clients, built once and off the event loop."""

from __future__ import annotations

import asyncio
import functools
import ssl

import httpx


@functools.cache
def _build() -> ssl.SSLContext:
    return httpx.create_ssl_context()


async def client_tls_context() -> ssl.SSLContext:
    """httpx's default context (certifi's CA bundle). Loading the bundle takes 0.2 s of CPU here and over 1 s on a
    loaded two-core machine; an `httpx.AsyncClient` built without a context loads it on the event loop, stalling
    the audio frames and every other service at each connection attempt. Here it is loaded once, in a thread."""
    return await asyncio.to_thread(_build)
