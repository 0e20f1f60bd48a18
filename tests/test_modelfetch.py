"""Fetching vosk models and piper voices from a mirror on 127.0.0.1 (the real sites are not reachable here)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from aiohttp import web

from pibuddy.cli import main
from pibuddy.modelfetch import FetchError, download, fetch_piper, fetch_vosk, piper_voice_path, vosk_model_name
from tests.peers.model_mirror import CN_MODEL, Mirror, vosk_zip

VOICE = "zh_CN-huayan-medium"
VOICE_PATH = "zh/zh_CN/huayan/medium/zh_CN-huayan-medium"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


async def test_vosk_model_by_language_is_downloaded_unpacked_and_kept(mirror: Mirror, tmp_path: Path) -> None:
    mirror.files[f"mirror/{CN_MODEL}.zip"] = vosk_zip()
    seen: list[tuple[int, int | None]] = []
    path, downloaded = await asyncio.to_thread(fetch_vosk, "zh-CN", tmp_path, base_url=mirror.url,
                                               progress=lambda got, total: seen.append((got, total)))
    assert downloaded
    assert path == tmp_path / CN_MODEL
    assert (path / "am" / "final.mdl").stat().st_size == 4096
    assert (path / "conf" / "mfcc.conf").read_text() == "--use-energy=false\n"
    assert leftovers(tmp_path) == [CN_MODEL]  # no zip, no scratch dir
    assert seen[-1][0] == seen[-1][1] == len(mirror.files[f"mirror/{CN_MODEL}.zip"])  # type: ignore[arg-type]
    again = await asyncio.to_thread(fetch_vosk, "zh", tmp_path, base_url=mirror.url)
    assert again == (path, False)
    assert mirror.requests == [f"mirror/{CN_MODEL}.zip"]  # the second call found it and asked nothing


async def test_a_zip_member_pointing_outside_is_refused_and_nothing_is_left(mirror: Mirror, tmp_path: Path) -> None:
    mirror.files[f"mirror/{CN_MODEL}.zip"] = vosk_zip(extra={"../../evil.sh": b"rm -rf /"})
    with pytest.raises(FetchError, match=re.escape("refusing the member '../../evil.sh'")):
        await asyncio.to_thread(fetch_vosk, CN_MODEL, tmp_path / "models", base_url=mirror.url)
    assert leftovers(tmp_path / "models") == []
    assert not (tmp_path / "evil.sh").exists()


@pytest.mark.parametrize(("body", "reason"), [
    (b"this is not a zip", "is not a valid zip"),
    (vosk_zip(extra={}).replace(b"/am/", b"/xx/"), "does not hold a vosk model"),
])
async def test_a_download_that_is_no_vosk_model_is_refused(mirror: Mirror, tmp_path: Path, body: bytes,
                                                           reason: str) -> None:
    mirror.files[f"mirror/{CN_MODEL}.zip"] = body
    with pytest.raises(FetchError, match=reason):
        await asyncio.to_thread(fetch_vosk, "zh-CN", tmp_path, base_url=mirror.url)
    assert leftovers(tmp_path) == []


async def test_http_errors_truncation_and_the_size_cap_leave_no_partial_file(mirror: Mirror, tmp_path: Path) -> None:
    target = tmp_path / "model.zip"
    with pytest.raises(FetchError, match="HTTP 404"):
        await asyncio.to_thread(download, mirror.url + "missing.zip", target)

    async def truncated(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100000"})
        await response.prepare(request)
        await response.write(b"x" * 1000)
        request.transport.close()  # type: ignore[union-attr]
        return response

    mirror.files["mirror/cut.zip"] = truncated
    with pytest.raises(FetchError, match=r"cut\.zip: .*(ended after 1000 of 100000 bytes|incomplete|closed)"):
        await asyncio.to_thread(download, mirror.url + "cut.zip", target)
    mirror.files["mirror/big.zip"] = b"y" * 5000
    with pytest.raises(FetchError, match="4096-byte limit"):
        await asyncio.to_thread(download, mirror.url + "big.zip", target, max_bytes=4096)
    with pytest.raises(FetchError, match="no network"):
        await asyncio.to_thread(download, "http://127.0.0.1:9/none.zip", target)  # nothing listens on port 9
    assert leftovers(tmp_path) == []


async def test_piper_voice_comes_with_its_description(mirror: Mirror, tmp_path: Path) -> None:
    mirror.files[f"mirror/{VOICE_PATH}.onnx.json"] = json.dumps({"audio": {"sample_rate": 22050}}).encode()
    mirror.files[f"mirror/{VOICE_PATH}.onnx"] = b"onnx" * 1000
    model, _ = await asyncio.to_thread(fetch_piper, VOICE, tmp_path, base_url=mirror.url)
    assert model == tmp_path / f"{VOICE}.onnx"
    assert model.read_bytes() == b"onnx" * 1000
    assert json.loads((tmp_path / f"{VOICE}.onnx.json").read_text())["audio"]["sample_rate"] == 22050
    assert not (await asyncio.to_thread(fetch_piper, VOICE, tmp_path, base_url=mirror.url)).downloaded
    assert len(mirror.requests) == 2  # already there: nothing fetched again


async def test_a_piper_description_that_is_not_one_is_refused(mirror: Mirror, tmp_path: Path) -> None:
    mirror.files[f"mirror/{VOICE_PATH}.onnx.json"] = b"<html>login required</html>"
    with pytest.raises(FetchError, match="not a piper voice description"):
        await asyncio.to_thread(fetch_piper, VOICE, tmp_path, base_url=mirror.url)
    assert leftovers(tmp_path) == []


def test_names_map_to_the_official_layouts() -> None:
    assert vosk_model_name("zh-CN") == vosk_model_name("ZH") == CN_MODEL
    assert vosk_model_name("vosk-model-cn-0.22") == "vosk-model-cn-0.22"
    assert piper_voice_path("en_US-lessac-medium") == "en/en_US/lessac/medium/en_US-lessac-medium"
    for bad in ("klingon", "vosk-model-x/../../etc"):
        with pytest.raises(FetchError, match="unknown vosk model"):
            vosk_model_name(bad)
    for bad in ("lessac", "en_US-lessac", "en-US-lessac-medium", "en_US-../x-medium/.."):
        with pytest.raises(FetchError, match="not a piper voice name"):
            piper_voice_path(bad)


async def test_cli_fetch_prints_the_path_and_the_config_keys(mirror: Mirror, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    mirror.files[f"mirror/{CN_MODEL}.zip"] = vosk_zip()
    code = await asyncio.to_thread(main, ["models", "fetch", "vosk", "zh-CN", "--dir", str(tmp_path),
                                          "--base-url", mirror.url])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith(f"downloaded: {tmp_path / CN_MODEL}\n")
    assert f"brain.vosk_model_path: {tmp_path / CN_MODEL}" in out
    assert f"audio.wakeword.vosk.model_path: {tmp_path / CN_MODEL}" in out
    assert "(100 %)" in err  # progress, one line per tenth when stderr is not a terminal
    assert await asyncio.to_thread(main, ["models", "list", "--dir", str(tmp_path)]) == 0
    assert f"  {CN_MODEL}\n" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["models", "fetch", "piper", "nobody", "--dir", str(tmp_path)]) == 1
    assert "not a piper voice name" in capsys.readouterr().err
