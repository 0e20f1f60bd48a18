"""Fetching the speech models that no package ships: vosk models and piper voices, once, at install time.

PiBuddy never downloads at run time: `pibuddy models fetch` (or `setup.sh --vosk-model` / `--piper-voice`)
puts a model in the models dir, and the config points at that local path. Downloads stream into a temp
file beside the target with a size cap, then move into place, so an interrupted fetch leaves nothing
half-written; vosk zips are unpacked with every member checked to stay inside the target.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    import httpx

VOSK_BASE_URL: Final = "https://alphacephei.com/vosk/models/"
PIPER_BASE_URL: Final = "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0/"
_TIMEOUT_SECONDS: Final = 30.0
_READ_TIMEOUT_SECONDS: Final = 60.0
# The small (≈40-50 MB, Raspberry Pi sized) vosk model per language, from alphacephei.com/vosk/models.
VOSK_SMALL_MODELS: Final = {
    "zh-CN": "vosk-model-small-cn-0.22",
    "en-US": "vosk-model-small-en-us-0.15",
    "de-DE": "vosk-model-small-de-0.15",
    "fr-FR": "vosk-model-small-fr-0.22",
    "es-ES": "vosk-model-small-es-0.42",
    "ru-RU": "vosk-model-small-ru-0.22",
    "ja-JP": "vosk-model-small-ja-0.22",
}
MAX_DOWNLOAD_BYTES: Final = 2 * 1024**3  # the largest vosk models are ~1.8 GB; anything bigger is not a model
_CHUNK: Final = 1 << 16

Progress = Callable[[int, int | None], None]
"""Called with (bytes received so far, total bytes or None when the server does not say)."""


class FetchError(Exception):
    """A model could not be fetched; the message says why and what to try."""


class Fetched(NamedTuple):
    path: Path
    downloaded: bool
    """False when the model was already there and nothing was fetched."""


def vosk_model_name(language_or_name: str) -> str:
    """A language code (`zh-CN`, `zh`) maps to its small model; anything else is taken as a model name."""
    for code, name in VOSK_SMALL_MODELS.items():
        if language_or_name.lower() in (code.lower(), code.split("-")[0].lower()):
            return name
    if not language_or_name.startswith("vosk-model-") or "/" in language_or_name:
        known = ", ".join(VOSK_SMALL_MODELS)
        raise FetchError(f"unknown vosk model {language_or_name!r}: give a language ({known}) "
                         "or a model name from https://alphacephei.com/vosk/models (vosk-model-...)")
    return language_or_name


def piper_voice_path(voice: str) -> str:
    """`en_US-lessac-medium` -> `en/en_US/lessac/medium/en_US-lessac-medium` (the voices repository layout)."""
    parts = voice.split("-")
    locale = parts[0]
    if len(parts) != 3 or "_" not in locale or not all(parts) or "/" in voice:
        raise FetchError(f"not a piper voice name: {voice!r} (like en_US-lessac-medium or zh_CN-huayan-medium; "
                         "see https://huggingface.co/rhasspy/piper-voices)")
    return f"{locale.split('_')[0]}/{locale}/{parts[1]}/{parts[2]}/{voice}"


def fetch_vosk(language_or_name: str, models_dir: Path, *, base_url: str = VOSK_BASE_URL,
               progress: Progress | None = None) -> Fetched:
    """The unpacked model directory in `models_dir` (downloaded and unpacked unless already there)."""
    name = vosk_model_name(language_or_name)
    target = models_dir / name
    if _is_vosk_model(target):
        return Fetched(target, downloaded=False)
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=f".{name}.") as scratch:
        archive = Path(scratch) / f"{name}.zip"
        download(_join(base_url, f"{name}.zip"), archive, progress=progress)
        unpacked = _unzip_inside(archive, Path(scratch) / "unpacked")
        if not _is_vosk_model(unpacked):
            raise FetchError(f"{name}.zip does not hold a vosk model (no am/ and conf/ directories)")
        shutil.rmtree(target, ignore_errors=True)
        unpacked.rename(target)
    return Fetched(target, downloaded=True)


def fetch_piper(voice: str, models_dir: Path, *, base_url: str = PIPER_BASE_URL,
                progress: Progress | None = None) -> Fetched:
    """The voice's .onnx in `models_dir`, with its .onnx.json beside it (downloaded unless already there)."""
    remote = piper_voice_path(voice)
    model = models_dir / f"{voice}.onnx"
    settings = models_dir / f"{voice}.onnx.json"
    if model.is_file() and _piper_sample_rate(settings) is not None:
        return Fetched(model, downloaded=False)
    models_dir.mkdir(parents=True, exist_ok=True)
    download(_join(base_url, f"{remote}.onnx.json"), settings)
    if _piper_sample_rate(settings) is None:
        settings.unlink()
        raise FetchError(f"{voice}.onnx.json is not a piper voice description (no audio.sample_rate)")
    download(_join(base_url, f"{remote}.onnx"), model, progress=progress)
    return Fetched(model, downloaded=True)


def _timeout() -> httpx.Timeout:
    import httpx  # noqa: PLC0415 (see download)

    return httpx.Timeout(_TIMEOUT_SECONDS, read=_READ_TIMEOUT_SECONDS)


def download(url: str, target: Path, *, progress: Progress | None = None,
             max_bytes: int = MAX_DOWNLOAD_BYTES) -> None:
    """Stream `url` into `target` (replaced only once complete); FetchError on any failure."""
    # httpx is imported here: `pibuddy models` names VOSK_SMALL_MODELS in its --help, so every command (`pibuddy
    # run` too) imports this module, and httpx brings its CLI's rich, click and pygments with it (5 MB of RSS).
    import httpx  # noqa: PLC0415

    partial = target.with_name(f".{target.name}.part")
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=_timeout()) as response:
            if response.status_code != httpx.codes.OK:
                raise FetchError(f"{url}: HTTP {response.status_code} (check the name, or the mirror with --base-url)")
            total = _content_length(response)
            if total is not None and total > max_bytes:
                raise FetchError(f"{url}: {total} bytes is more than the {max_bytes}-byte limit")
            received = 0
            with partial.open("wb") as sink:
                for chunk in response.iter_bytes(_CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise FetchError(f"{url}: more than the {max_bytes}-byte limit")
                    sink.write(chunk)
                    if progress is not None:
                        progress(received, total)
            if total is not None and received != total:
                raise FetchError(f"{url}: the connection ended after {received} of {total} bytes; run it again")
        partial.replace(target)
    except httpx.HTTPError as exc:
        raise FetchError(f"{url}: {exc or type(exc).__name__} (no network? a mirror can be given with --base-url)"
                         ) from None
    finally:
        partial.unlink(missing_ok=True)


def _unzip_inside(archive: Path, destination: Path) -> Path:
    """Unpack `archive` into `destination`, refusing members that would land outside it; returns the
    model's own top directory when the zip has exactly one, else `destination`."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                path = PurePosixPath(member)
                if path.is_absolute() or ".." in path.parts or "\\" in member:
                    raise FetchError(f"{archive.name}: refusing the member {member!r} (it points outside the model)")
            bundle.extractall(destination)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{archive.name} is not a valid zip ({exc}); run it again") from None
    entries = list(destination.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else destination


def _is_vosk_model(path: Path) -> bool:
    return (path / "am").is_dir() and (path / "conf").is_dir()


def _piper_sample_rate(settings: Path) -> int | None:
    try:
        rate = json.loads(settings.read_text(encoding="utf-8"))["audio"]["sample_rate"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rate if isinstance(rate, int) and rate > 0 else None


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _join(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + "/" + path
