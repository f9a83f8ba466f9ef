"""`analyze --jobs N`: captures analysed in parallel processes, report identical to a sequential
run byte for byte (same order, same content), whatever the format."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CAPTURES = REPO / "captures"

# Several captures of different sizes and kinds, so that the parallel jobs finish out of order.
NAMES = (
    "tcp-backlog-full.pcap",
    "tcp-capture-mid-flow.pcap",
    "tcp-close-unread.pcap",
    "tcp-close-wait-never.pcap",
    "arp-host-down.pcap",
)


def _inputs() -> list[str]:
    paths = [CAPTURES / name for name in NAMES if (CAPTURES / name).is_file()]
    # Plus the largest captures of the corpus: those take longest and are the ones a parallel
    # run finishes last.
    others = sorted(
        (p for p in CAPTURES.glob("*.pcap*") if p not in paths),
        key=lambda p: p.stat().st_size,
        reverse=True,
    )
    return [str(p) for p in [*paths, *others[:3]]]


def _analyze(args: list[str], tmp_path: Path) -> tuple[int, bytes]:
    proc = subprocess.run(
        [sys.executable, "-m", "tcpdiag", "analyze", *args],
        cwd=tmp_path,  # no project configuration picked up
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr.decode(errors="replace")
    return proc.returncode, proc.stdout


@pytest.mark.parametrize("fmt", ["json", "text", "jsonl"])
def test_jobs_output_identical(fmt: str, tmp_path: Path) -> None:
    inputs = _inputs()
    assert len(inputs) >= 4
    common = ["--format", fmt, "--no-color"]
    code1, out1 = _analyze([*inputs, *common, "--jobs", "1"], tmp_path)
    code2, out2 = _analyze([*inputs, *common, "--jobs", "2"], tmp_path)
    assert out1  # something was reported
    assert code2 == code1
    assert out2 == out1


def test_jobs_order_follows_arguments(tmp_path: Path) -> None:
    """Reversing the inputs reverses the report, also with parallel jobs (map keeps order)."""
    inputs = _inputs()[:4]
    _, forward = _analyze([*inputs, "--format", "jsonl", "--jobs", "2"], tmp_path)
    _, backward = _analyze([*reversed(inputs), "--format", "jsonl", "--jobs", "2"], tmp_path)
    _, sequential = _analyze([*reversed(inputs), "--format", "jsonl", "--jobs", "1"], tmp_path)
    assert backward == sequential
    assert forward != backward
