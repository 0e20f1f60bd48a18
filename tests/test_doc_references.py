"""Every document the code cites is in the repository, and every "§N.M" it cites is a section of it.

The convention (pibuddy/__init__.py): a bare "§N.M" is a section of docs/protocol.md; a line naming
docs/drivers.md or docs/openclaw.md cites that document instead; RFC sections are the RFC's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
_CITING_DIRS = ("pibuddy", "tests", "bench", "scripts")
_SOURCE_SUFFIXES = frozenset({".py", ".sh", ".c", ".html"})
_SECTION = re.compile(r"§\s?(\d+(?:\.\d+)*)")
_DOCUMENT = re.compile(r"[\w./-]*\w\.md\b")
_HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)[.\s]", re.MULTILINE)
_OTHER_DOCUMENTS = {"drivers.md": "docs/drivers.md", "openclaw.md": "docs/openclaw.md"}


def _source_lines() -> Iterator[tuple[str, str]]:
    for top in _CITING_DIRS:
        for path in sorted((_REPO / top).rglob("*")):
            if path.suffix in _SOURCE_SUFFIXES and "__pycache__" not in path.parts:
                for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                    yield f"{path.relative_to(_REPO)}:{number}", line


@cache
def _sections(document: str) -> frozenset[str]:
    return frozenset(_HEADING.findall((_REPO / document).read_text()))


def _cited_document(line: str) -> str | None:
    if "RFC" in line:
        return None
    return next((doc for name, doc in _OTHER_DOCUMENTS.items() if name in line), "docs/protocol.md")


def test_every_cited_section_is_a_section_of_the_document_it_cites() -> None:
    missing = []
    for where, line in _source_lines():
        document = _cited_document(line)
        if document is None:
            continue
        missing += [f"{where}: {document} §{number}" for number in _SECTION.findall(line)
                    if number not in _sections(document)]
    assert missing == []


def test_every_document_the_code_names_is_in_the_repository() -> None:
    top_level_names = {path.name for folder in ("", "docs", "bench") for path in (_REPO / folder).glob("*.md")}
    outside = []
    for where, line in _source_lines():
        for name in _DOCUMENT.findall(line):
            found = (_REPO / name).is_file() if "/" in name else name in top_level_names
            if not found:
                outside.append(f"{where}: {name}")
    assert outside == []
