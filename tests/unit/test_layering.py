"""Imports only point left in the pipeline: capture -> decode -> flow -> tls -> findings -> engine
-> report -> cli. A stage importing a stage to its right is a design bug this test catches."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tcpdiag"

# Rank of each stage; a module may import modules of its own or a lower rank only.
RANKS = {
    "capture": 1,
    "decode": 2,
    "flow": 3,
    "tls": 4,
    "findings": 5,
    "engine": 6,
    "report": 7,
    "checkconfig": 7,
    "lab": 8,
    "distributed": 6,
    "split": 6,
    "shards": 6,
    "cli": 9,
    "__main__": 10,
}
# Shared leaf modules: importable from anywhere, and they import no stage (`_native`: the
# compiled-or-pure switch every package installs before importing its compiled modules).
LEAVES = {
    "model",
    "result",
    "store",
    "storeindex",
    "config",
    "errors",
    "sanitize",
    "surrogates",
    "_native",
    "fields",
    "statepack",
    "__init__",
}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "tcpdiag" else ""


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return [name for name in found if name.startswith("tcpdiag")]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts)


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_left(path: Path) -> None:
    here = _stage(_module_name(path))
    for imported in _imports(path):
        there = _stage(imported)
        if there in LEAVES or there == here or there == "":
            continue
        if here in LEAVES:
            pytest.fail(f"leaf module {path.name} imports the stage {imported}")
        assert there in RANKS, f"{imported}: unknown stage {there!r}; add it to RANKS"
        assert here in RANKS, f"{path}: unknown stage {here!r}; add it to RANKS"
        assert RANKS[there] <= RANKS[here], (
            f"{_module_name(path)} imports {imported} (to its right)"
        )


def test_scapy_is_never_imported_at_module_level_on_the_file_path() -> None:
    # scapy takes ~2 s to import and is for live capture and crafting only.
    for path in MODULES:
        stage = _stage(_module_name(path))
        if stage in {"lab", "cli"} or path.name == "live.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.startswith("scapy") for n in names), f"{path} imports scapy"
