"""Every input a fuzzer ever flagged (crash, hang, memory) is replayed here forever (target F4).

Files live in `tests/corpus/regressions/<target>/` where <target> names a module of `fuzz/`
(`pcap` -> fuzz_pcap.py). Each is fed to that target's `test_one_input` with every check on (no
FUZZ_SKIP_KNOWN), and must finish in under one second of CPU. Inputs of bugs still open are
listed in KNOWN_BUGS (strict xfail: fixing the bug makes the test fail until the entry goes).
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "regressions"
# "target/file" -> reason, for inputs of bugs not fixed yet. Fixed: reassembly/crash-569e...
# (bytes at the wrong stream offset after a SYN re-based an endpoint); scan/crash-235c... (a pcap
# link type field with bit 31 set overflowed the C block reader's int).
KNOWN_BUGS: dict[str, str] = {}
CASES = sorted(
    f"{path.parent.name}/{path.name}"
    for path in CORPUS.glob("*/*")
    if path.is_file() and not path.name.startswith(".")
)


def test_corpus_is_not_empty() -> None:
    assert len(CASES) >= 3, CASES
    for known in KNOWN_BUGS:
        assert known in CASES, known


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[c]))
        if c in KNOWN_BUGS
        else c
        for c in CASES
    ],
)
def test_regression(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FUZZ_SKIP_KNOWN", raising=False)
    kind, _, name = case.partition("/")
    mod = importlib.import_module(f"fuzz_{kind}")
    data = (CORPUS / kind / name).read_bytes()
    start = time.process_time()
    mod.test_one_input(data)
    assert time.process_time() - start < 1.0, case
