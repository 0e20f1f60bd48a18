"""The import-direction contract covers all of pibuddy/, and the README's Architecture diagram draws it.

`lint-imports` (scripts/test.sh) checks only the modules a layer names: a module left out of every layer may
import anything. These tests fail when a new module is not placed, or when the diagram stops matching."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
_PACKAGE = _REPO / "pibuddy"


def _layers() -> list[list[str]]:
    config = tomllib.loads((_REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    assert contract["containers"] == ["pibuddy"]
    return [[name.strip() for name in layer.split("|")] for layer in contract["layers"]]


def _top_level_modules() -> set[str]:
    packages = {p.parent.name for p in _PACKAGE.glob("*/__init__.py")}
    modules = {p.stem for p in _PACKAGE.glob("*.py") if p.name != "__init__.py"}
    return packages | modules


def _diagram() -> list[str]:
    readme = (_REPO / "README.md").read_text()
    section = readme.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```")[1].splitlines()


def test_every_module_of_pibuddy_is_in_exactly_one_layer() -> None:
    placed = [name for layer in _layers() for name in layer]
    assert sorted(placed) == sorted(set(placed)), "a module is in two layers"
    assert set(placed) == _top_level_modules()


def test_the_readme_diagram_names_every_layer_top_down_in_the_contracts_order() -> None:
    lines = _diagram()

    def rows(name: str) -> list[int]:
        written = f"{name}/" if (_PACKAGE / name).is_dir() else f"{name}.py"
        found = [i for i, line in enumerate(lines) if re.search(rf"(^|\s){re.escape(written)}(\s|$)", line)]
        assert found, f"README's Architecture diagram does not show {written}"
        return found

    previous_last = -1
    for layer in _layers():
        first = min(min(rows(name)) for name in layer)
        assert first > previous_last, f"{layer} is drawn above a layer the contract puts over it"
        previous_last = max(max(rows(name)) for name in layer)
