"""`benchmarks/ab.py`: two builds alternated on one capture, their reports compared."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AB = REPO / "benchmarks" / "ab.py"
CAPTURE = REPO / "captures" / "tcp-retransmissions.pcap"


def _ab(python_b: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(AB), sys.executable, python_b, str(CAPTURE), "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_same_build_twice_agrees() -> None:
    done = _ab(sys.executable)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # rounds alternate the order: A B, then B A
    assert [line.split(":")[0] for line in lines[:4]] == [
        "round 1 A",
        "round 1 B",
        "round 2 B",
        "round 2 A",
    ]
    assert "reports: byte-identical" in done.stdout
    assert "peak RSS A" in done.stdout


def test_builds_whose_reports_differ_fail(tmp_path: Path) -> None:
    """A "build" whose report lists no flow (a port filter on every run) stands for one whose
    output changed."""
    other = tmp_path / "python-filtering"
    other.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@" --port 1\n')
    other.chmod(other.stat().st_mode | stat.S_IXUSR)
    done = _ab(str(other))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the reports differ" in done.stdout
