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


def test_jobs_auto_is_the_usable_cpus_and_gives_the_same_report(tmp_path: Path) -> None:
    inputs = _inputs()[:3]
    _, auto = _analyze([*inputs, "--format", "json", "--jobs", "auto"], tmp_path)
    _, one = _analyze([*inputs, "--format", "json", "-j", "1"], tmp_path)
    assert auto == one
    for bad in ("0", "257", "many"):
        proc = subprocess.run(
            [sys.executable, "-m", "tcpdiag", "analyze", inputs[0], "--jobs", bad],
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 2 and b"--jobs" in proc.stderr, (bad, proc.stderr)


def test_jobs_auto_counts_a_cgroup_cpu_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container limited to 2.5 CPUs on a host of 16 gets 3 workers, not 16."""
    from tcpdiag import split
    from tcpdiag.cli.analyze import JOBS

    monkeypatch.setattr(split.os, "sched_getaffinity", lambda pid: set(range(16)))
    cpu_max = tmp_path / "cpu.max"
    monkeypatch.setattr(split, "CGROUP_CPU_MAX", str(cpu_max))
    assert split.usable_cpus() == 16  # no cgroup file
    cpu_max.write_text("250000 100000\n")
    assert split.usable_cpus() == 3 and JOBS.convert("auto", None, None) == 3
    cpu_max.write_text("max 100000\n")
    assert split.usable_cpus() == 16
    monkeypatch.setattr(split.os, "sched_getaffinity", lambda pid: {0, 1})
    assert split.usable_cpus() == 2 and JOBS.convert("AUTO", None, None) == 2
    assert JOBS.convert("7", None, None) == 7
