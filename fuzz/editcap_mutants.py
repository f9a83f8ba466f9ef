"""Whole-file mutation, Wireshark's fuzz-test.sh pattern (bad-inputs F5): `editcap -E RATE`
mutants of the seed captures, each analysed in a child process under `ulimit -t 30 -v 1 GB`.

    python fuzz/editcap_mutants.py --mutants 10000 --rate 0.02 --jobs 2

A mutant fails when tcpdiag exits with anything but 0 or 2, prints a traceback, or hits the
limits. Failing mutants are copied to --keep (default /tmp/editcap-failures) for triage.
Needs editcap (Wireshark). Seeds: the first --seeds captures of fuzz/common.SEED_DIRS.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common

LIMITS = "ulimit -t 30 -v 1048576; "


def run_one(seed: Path, index: int, rate: float, work: Path, keep: Path) -> str | None:
    mutant = work / f"m{index}-{seed.name}"
    subprocess.run(
        ["editcap", "-E", str(rate), "--seed", str(index), str(seed), str(mutant)],
        capture_output=True,
        check=False,
    )
    if not mutant.exists():
        return None
    cmd = f"{LIMITS}{sys.executable} -m tcpdiag analyze '{mutant}' --format json"
    proc = subprocess.run(
        ["bash", "-c", cmd], capture_output=True, text=True, cwd=common.ROOT, check=False
    )
    bad = proc.returncode not in (0, 2) or "Traceback" in proc.stderr
    if proc.returncode == 2 and not proc.stderr.startswith("tcpdiag: error: "):
        bad = True
    if bad:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(mutant, keep / mutant.name)
        mutant.unlink()
        return f"{mutant.name}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    mutant.unlink()
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mutants", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.02)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", default="/tmp/editcap-failures")
    args = parser.parse_args()
    seeds = [p for p in common.capture_files(1 << 20) if p.suffix in (".pcap", ".pcapng")]
    random.Random(1).shuffle(seeds)
    seeds = seeds[: args.seeds]
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        work = Path(tmp)
        jobs = [
            pool.submit(run_one, seeds[i % len(seeds)], i, args.rate, work, Path(args.keep))
            for i in range(args.mutants)
        ]
        for job in jobs:
            result = job.result()
            if result:
                failures.append(result)
                print(result, flush=True)
    print(f"{args.mutants} mutants of {len(seeds)} seeds: {len(failures)} failures")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
