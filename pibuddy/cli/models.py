"""`pibuddy models`: fetch a vosk model or a piper voice once, and say which config key to point at it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pibuddy.cli.common import load_or_exit

NAME = "models"
HELP = "fetch a vosk model (other languages) or a piper voice into the models dir, and list what is there"
MODELS_SUBDIR = "models"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pibuddy.modelfetch import VOSK_SMALL_MODELS  # noqa: PLC0415

    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--dir", type=Path, metavar="DIR",
                       help="models directory (default: 'models' in the state dir, device.state_dir)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[where],
                       help="the models in the models dir, and the vosk languages known by name")
    fetch = actions.add_parser("fetch", parents=[where],
                               help="download a model (once) and print the config lines that use it")
    fetch.add_argument("kind", choices=["vosk", "piper"])
    fetch.add_argument("name", help=f"vosk: a language ({', '.join(VOSK_SMALL_MODELS)}) or a model name "
                                    "(vosk-model-...); piper: a voice (en_US-lessac-medium, zh_CN-huayan-medium)")
    fetch.add_argument("--base-url", metavar="URL",
                       help="download from this mirror instead (same layout as the official site)")


def run(args: argparse.Namespace) -> int:
    models_dir = args.dir or load_or_exit(args).device.resolved_state_dir / MODELS_SUBDIR
    if args.action == "list":
        return _list(models_dir)
    return _fetch(args.kind, args.name, models_dir, args.base_url)


def _list(models_dir: Path) -> int:
    from pibuddy.modelfetch import VOSK_SMALL_MODELS  # noqa: PLC0415

    present = sorted(p.name for p in models_dir.iterdir() if not p.name.startswith(".")) if models_dir.is_dir() else []
    print(f"in {models_dir}:" if present else f"no models in {models_dir} yet")
    for name in present:
        print(f"  {name}")
    print("vosk languages (pibuddy models fetch vosk LANGUAGE):")
    for language, model in VOSK_SMALL_MODELS.items():
        print(f"  {language:<6} {model}")
    return 0


def _fetch(kind: str, name: str, models_dir: Path, base_url: str | None) -> int:
    from pibuddy import modelfetch  # noqa: PLC0415

    progress = _ProgressLine(sys.stderr.isatty())
    try:
        if kind == "vosk":
            fetched = modelfetch.fetch_vosk(name, models_dir, base_url=base_url or modelfetch.VOSK_BASE_URL,
                                         progress=progress)
            keys = ["brain.vosk_model_path", "audio.wakeword.vosk.model_path"]
        else:
            fetched = modelfetch.fetch_piper(name, models_dir, base_url=base_url or modelfetch.PIPER_BASE_URL,
                                          progress=progress)
            keys = ["brain.piper_voice_path"]
    except modelfetch.FetchError as exc:
        progress.finish()
        print(f"pibuddy: {exc}", file=sys.stderr)
        return 1
    progress.finish()
    print(f"{'downloaded' if fetched.downloaded else 'already there'}: {fetched.path}")
    print("to use it, set in config.yaml: " + " and/or ".join(f"{key}: {fetched.path}" for key in keys))
    return 0


class _ProgressLine:
    """Download progress on stderr: one line redrawn on a terminal, a line per tenth in a log."""

    def __init__(self, interactive: bool) -> None:
        self._interactive = interactive
        self._reported = -1
        self._drawn = False

    def __call__(self, received: int, total: int | None) -> None:
        mb = received / 1e6
        if self._interactive:
            share = f" of {total / 1e6:.1f} MB ({100 * received // total} %)" if total else " MB"
            print(f"\r  {mb:.1f}{share}   ", end="", file=sys.stderr, flush=True)
            self._drawn = True
            return
        step = 10 * received // total if total else int(mb // 10)  # tenths, or every 10 MB when unknown
        if step > self._reported:
            self._reported = step
            print(f"  {mb:.1f} MB" + (f" ({10 * step} %)" if total else ""), file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self._drawn:
            print(file=sys.stderr)
            self._drawn = False
