"""Two builds of tcpdiag, alternated on one capture: which is faster, and do they agree?

    python benchmarks/ab.py /tmp/cv-old/bin/python /tmp/cv-new/bin/python CAPTURE [--rounds 3]

Each round runs `PYTHON -m tcpdiag analyze CAPTURE --format json --jobs 1` with build A, then
build B (the order swapped every other round), each in a fresh process from an empty directory (so
that the installed build is the one measured, not the source tree). On a shared machine a run
can be 10-15% slower than the one a few minutes earlier; runs of the two builds side by side
share the machine's state, so their difference is the builds'. Prints every run's wall and CPU
time and peak RSS, then the best of each build and the change; exits 1 when the two builds'
reports differ (a speed change must not change a byte) or a run fails.

Build the two venvs from two checkouts: `python -m venv /tmp/cv-old && /tmp/cv-old/bin/pip
install /path/to/old-checkout`, the same for the new one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    build: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    digest: str


def run_once(build: str, python: str, capture: Path) -> Run:
    """One analysis, waited for with `os.wait4` for its own CPU time and peak RSS; its
    report's SHA-256."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        argv = [
            python,
            "-m",
            "tcpdiag",
            "analyze",
            str(capture),
            "--format",
            "json",
            "--jobs",
            "1",  # one process: the builds' engines compared, not the machine's cores
            "-o",
            str(out),
        ]
        with open(Path(tmp) / "stderr", "w+b") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(argv, cwd=tmp, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            message = err.read().decode(errors="replace").strip()
        if proc.returncode not in (0, 1):  # 1: the capture has problems, still a report
            raise SystemExit(f"{build}: exit {proc.returncode}: {message[-500:]}")
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return Run(build, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, digest)


def warm(capture: Path) -> None:
    """Read the capture once, so that every run finds it in the page cache."""
    with capture.open("rb") as f:
        while f.read(1 << 22):
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("python_a", help="the Python of build A (e.g. a venv's bin/python)")
    ap.add_argument("python_b", help="the Python of build B")
    ap.add_argument("capture", type=Path)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of A and B (default 3)")
    args = ap.parse_args(argv)
    capture = args.capture.resolve()
    warm(capture)
    runs: list[Run] = []
    for n in range(args.rounds):
        order = [("A", args.python_a), ("B", args.python_b)]
        for build, python in order if n % 2 == 0 else order[::-1]:
            run = run_once(build, python, capture)
            runs.append(run)
            print(
                f"round {n + 1} {build}: {run.wall_s:7.2f} s wall {run.cpu_s:7.2f} s CPU "
                f"{run.peak_rss_mb:6.0f} MB peak RSS",
                flush=True,
            )
    best = {b: min(r.wall_s for r in runs if r.build == b) for b in ("A", "B")}
    rss = {b: max(r.peak_rss_mb for r in runs if r.build == b) for b in ("A", "B")}
    change = (best["B"] - best["A"]) / best["A"] * 100
    print(
        f"best: A {best['A']:.2f} s, B {best['B']:.2f} s, B - A {change:+.1f}%; "
        f"peak RSS A {rss['A']:.0f} MB, B {rss['B']:.0f} MB"
    )
    digests = {r.digest for r in runs}
    if len(digests) != 1:
        print(f"the reports differ: {len(digests)} different reports among {len(runs)} runs")
        return 1
    print("reports: byte-identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
