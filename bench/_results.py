"""Where the benchmarks record their figures: a dated section, with the machine, appended to bench/RESULTS.md.

The bench scripts import it as a sibling (`from _results import publish`): they run as
`.venv/bin/python bench/<script>.py`, which puts this folder first on sys.path.
"""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path
from typing import Final

RESULTS: Final = Path(__file__).resolve().parent / "RESULTS.md"
_RESULTS_HEADER: Final = "# Benchmark results\n\nEach section: date, machine (`uname -m`, CPU model), command.\n"


def machine() -> str:
    """`x86_64, AMD EPYC, 2 CPUs, Python 3.11.7`: architecture, CPU model, CPU count, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("model name", "Model"):
                cpu = value.strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def append_section(title: str, script: str, lines: list[str]) -> None:
    """Append `## <UTC date>: <title> (bench/<script's file name>)`, the machine line and `lines`.

    `script` is the bench script's path (its `__file__`); RESULTS.md gets its header when it is new.
    """
    header = "" if RESULTS.exists() else _RESULTS_HEADER
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    section = [f"\n## {today}: {title} (bench/{Path(script).name})", "", f"Machine: {machine()}.", "", *lines, ""]
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(header + "\n".join(section))


def publish(title: str, script: str, lines: list[str], *, record: bool) -> None:
    """Print the machine line and `lines`; with `record`, also append them to RESULTS.md (see `append_section`)."""
    print(f"Machine: {machine()}\n")
    print("\n".join(lines))
    if record:
        append_section(title, script, lines)
        print(f"\nrecorded in {RESULTS}")
