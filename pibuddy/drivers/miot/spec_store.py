"""Where device specs come from: a disk cache keyed by URN, filled from miot-spec.org when online.

Each cached spec is one JSON file `{"sha256", "document"}`; the SHA-256 is over the document's canonical
JSON, so a truncated or hand-mangled file counts as a miss instead of feeding the tools a wrong spec.
Cached specs have no expiry: `get(urn, refresh=True)` (`pibuddy miot setup --refresh-specs`) replaces them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Final

import httpx

from pibuddy.drivers.miot.errors import BadReply
from pibuddy.drivers.miot.spec import DeviceSpec, SpecError, parse_spec
from pibuddy.errors import DeviceUnreachable, NotFound, Party
from pibuddy.statedir import StateDir

_LOGGER = logging.getLogger(__name__)
DEFAULT_SPEC_URL: Final = "https://miot-spec.org"
_INSTANCE_PATH: Final = "/miot-spec-v2/instance"
# The model -> URN release list python-miio uses. UNCONFIRMED: the exact query string.
_RELEASES_PATH: Final = "/miot-spec-v2/instances?status=released"
_RELEASES_FILE: Final = "releases.json"
_MAX_SPEC_BYTES: Final = 4 * 1024 * 1024


class SpecStore:
    """Specs by URN, from the cache or the spec server.

    Args:
        cache_dir: directory of cached specs (created on first write).
        base_url: the spec server (miot-spec.org, or a mirror).
        fetch: whether to ask the spec server at all; False keeps PiBuddy offline.
        timeout: seconds for one request to the spec server.
    """

    def __init__(self, cache_dir: Path, *, base_url: str = DEFAULT_SPEC_URL, fetch: bool = True,
                 timeout: float = 10.0) -> None:
        self._dir = StateDir(cache_dir)
        self._base_url = base_url.rstrip("/")
        self._fetch = fetch
        self._timeout = timeout
        self._memory: dict[str, DeviceSpec] = {}

    def cached(self, urn: str) -> DeviceSpec | None:
        """The spec from memory or disk, or None (missing, corrupt or failing its checksum)."""
        if urn in self._memory:
            return self._memory[urn]
        document = self._read_checked(_file_name(urn))
        if document is None:
            return None
        try:
            spec = parse_spec(document)
        except SpecError as exc:
            _LOGGER.warning("ignoring the cached spec of %s: %s", urn, exc)
            return None
        self._memory[urn] = spec
        return spec

    def save(self, urn: str, document: Any) -> DeviceSpec:
        """Check `document` is a spec and cache it under `urn`."""
        spec = parse_spec(document)
        self._write_checked(_file_name(urn), document)
        self._memory[urn] = spec
        return spec

    async def get(self, urn: str, *, refresh: bool = False) -> DeviceSpec:
        """The spec of `urn`: cached unless `refresh`, else fetched and cached."""
        if not refresh and (spec := self.cached(urn)) is not None:
            return spec
        document = await self._get_json(_INSTANCE_PATH, params={"type": urn}, what=f"the spec {urn}")
        spec = self.save(urn, document)
        _LOGGER.info("cached the MIoT spec %s", urn)
        return spec

    async def urn_for_model(self, model: str, *, refresh: bool = False) -> str | None:
        """The newest released spec URN of a device model (`yeelink.light.color1`), or None if unknown."""
        releases = None if refresh else self._read_checked(_RELEASES_FILE)
        if releases is None:
            releases = await self._get_json(_RELEASES_PATH, params=None, what="the spec release list")
            self._write_checked(_RELEASES_FILE, releases)
        instances = releases.get("instances") if isinstance(releases, dict) else None
        best: tuple[int, str] | None = None
        for entry in instances if isinstance(instances, list) else []:
            if not isinstance(entry, dict) or entry.get("model") != model or not isinstance(entry.get("type"), str):
                continue
            raw_version = entry.get("version")
            version = raw_version if isinstance(raw_version, int) else 0
            if best is None or version > best[0]:
                best = (version, entry["type"])
        return best[1] if best else None

    async def _get_json(self, path: str, *, params: dict[str, str] | None, what: str) -> Any:
        if not self._fetch:
            raise NotFound(f"{what} is not cached and fetching specs is off (miot.spec_fetch)")
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(self._base_url + path, params=params)
        except httpx.HTTPError as exc:
            raise DeviceUnreachable(f"cannot reach the spec server for {what} ({type(exc).__name__})",
                                    party=Party.MI_CLOUD) from None
        if response.status_code == 404:
            raise NotFound(f"the spec server does not know {what}")
        if response.status_code != 200:
            raise BadReply(f"the spec server answered {response.status_code} for {what}")
        if len(response.content) > _MAX_SPEC_BYTES:
            raise BadReply(f"the spec server sent {len(response.content)} bytes for {what}")
        try:
            return response.json()
        except ValueError:
            raise BadReply(f"the spec server sent something other than JSON for {what}") from None

    def _read_checked(self, name: str) -> Any:
        wrapper = self._dir.read_json(name)
        if wrapper is None:
            return None
        document = wrapper.get("document")
        if wrapper.get("sha256") != _digest(document):
            _LOGGER.warning("the cached %s fails its checksum; it will be fetched again", name)
            return None
        return document

    def _write_checked(self, name: str, document: Any) -> None:
        self._dir.write_json(name, {"sha256": _digest(document), "document": document})


def _digest(document: Any) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _file_name(urn: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", urn) + ".json"
