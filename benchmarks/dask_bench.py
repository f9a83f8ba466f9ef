"""Dask scale-out benchmark: `tcpdiag analyze --cluster local:N` against a local run.

    python benchmarks/dask_bench.py                      # 20 x 50k packets + one 200k capture
    python benchmarks/dask_bench.py --workers 1,2,4 --captures 40 --packets 20000
    python benchmarks/dask_bench.py --large-packets 2000000 --split-size 256M --json out.json

Two scenarios, each run without Dask (the reference) and then with 1, 2... local workers:

* a fleet: `--captures` synthetic captures of `--packets` packets each (`gen.py`, pattern `mixed`,
  seeds 1..N), in one directory: one task per capture;
* one large capture (`--large-packets`, default 200k packets, ~155 MB), split by flow when it is
  larger than `--split-size` (default 64M here, so that it is split; with one worker a capture is
  never split, since every shard reads the whole file).

Every run is a fresh `python -m tcpdiag analyze ... --format json -o FILE` process, timed from
start to exit (so the wall time includes starting the cluster, ~2-3 s), with the CPU time of all
its processes (workers included: on a busy machine wall-clock speed-ups say little, the CPU
column still shows what splitting costs); its JSON must be
byte-identical to the reference run's, or the benchmark says so and exits 1. Captures are cached
under `benchmarks/out/` (git-ignored). The machine is shared: use `--repeat 3` for figures you
quote (the fastest run is kept).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def _generate(path: Path, packets: int, seed: int) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    cmd = [sys.executable, str(HERE / "gen.py"), "--packets", str(packets), "--seed", str(seed)]
    subprocess.run([*cmd, "-o", str(tmp), "-q"], check=True)
    tmp.rename(path)


def _fleet(captures: int, packets: int) -> Path:
    top = OUT / f"dask-fleet-{captures}x{packets}"
    for seed in range(1, captures + 1):
        _generate(top / f"mixed-{packets}-s{seed}.pcap", packets, seed)
    return top


def _large(packets: int) -> Path:
    path = OUT / f"mixed-{packets}-s1.pcap"  # the same cache name as run.py's
    _generate(path, packets, 1)
    return path


def _cpu() -> float:
    # Every process of a run (tcpdiag, its nanny and worker processes) is reaped by the time the
    # run ends, so the children's rusage covers the whole tree.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(args: list[str], repeat: int) -> tuple[float, float, str]:
    """Fastest wall time of `repeat` runs of `tcpdiag analyze ARGS`, that run's CPU seconds
    (all its processes), and the JSON's digest."""
    best = float("inf")
    best_cpu = 0.0
    digest = ""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        for _ in range(repeat):
            cmd = [sys.executable, "-m", "tcpdiag", "analyze", *args, "--format", "json"]
            cpu = _cpu()
            start = time.perf_counter()
            done = subprocess.run(
                [*cmd, "-o", str(out)], capture_output=True, text=True, check=False
            )
            elapsed = time.perf_counter() - start
            cpu = _cpu() - cpu
            if done.returncode != 0:
                sys.exit(f"tcpdiag failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr}")
            if elapsed < best:
                best, best_cpu = elapsed, cpu
            digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return best, best_cpu, digest


def _packets(paths: list[Path]) -> int:
    from tcpdiag.capture import open_capture

    total = 0
    for path in paths:
        with open_capture(str(path)) as cap:
            total += sum(1 for _ in cap)
    return total


def _scenario(
    name: str,
    target: Path,
    workers: list[int],
    split_size: str,
    repeat: int,
    rows: list[dict[str, object]],
) -> bool:
    files = sorted(target.rglob("*.pcap")) if target.is_dir() else [target]
    size = sum(f.stat().st_size for f in files)
    packets = _packets(files)
    print(
        f"\n{name}: {len(files)} capture(s), {packets:,} packets, {size / 2**20:,.0f} MiB\n"
        f"  {'run':<22} {'wall':>10}  {'CPU':>10}",
        flush=True,
    )
    load = os.getloadavg()[0]
    ref_time, ref_cpu, ref_digest = _run([str(target)], repeat)
    print(
        f"  {'local (no Dask)':<22} {ref_time:8.2f} s  {ref_cpu:8.2f} s  "
        f"{packets / ref_time:>10,.0f} pkt/s  (load before {load:.1f})"
    )
    rows.append(
        {
            "scenario": name,
            "mode": "local",
            "wall_s": round(ref_time, 3),
            "cpu_s": round(ref_cpu, 3),
            "load_before": round(load, 2),
        }
    )
    ok = True
    one: float | None = None
    for n in workers:
        args = ["--cluster", f"local:{n}", "--split-size", split_size, str(target)]
        load = os.getloadavg()[0]
        wall, cpu, digest = _run(args, repeat)
        one = wall if n == 1 else one
        same = digest == ref_digest
        ok = ok and same
        speedup = f"{one / wall:5.2f}x vs 1 worker" if one is not None else ""
        print(
            f"  {f'--cluster local:{n}':<22} {wall:8.2f} s  {cpu:8.2f} s  "
            f"{packets / wall:>10,.0f} pkt/s  (load before {load:.1f})  {speedup}  "
            f"{'identical' if same else 'DIFFERENT REPORT'}",
            flush=True,
        )
        rows.append(
            {
                "scenario": name,
                "mode": f"local:{n}",
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "load_before": round(load, 2),
                "speedup_vs_1": round(one / wall, 3) if one is not None else None,
                "identical": same,
            }
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--captures", type=int, default=20, help="captures in the fleet")
    ap.add_argument("--packets", type=int, default=50_000, help="packets per fleet capture")
    ap.add_argument("--large-packets", type=int, default=200_000, help="the large capture")
    ap.add_argument("--split-size", default="64M", help="passed to tcpdiag (--split-size)")
    ap.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    ap.add_argument("--repeat", type=int, default=1, help="keep the fastest of N runs")
    ap.add_argument("--skip-fleet", action="store_true")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    rows: list[dict[str, object]] = []
    ok = True
    if not args.skip_fleet:
        fleet = _fleet(args.captures, args.packets)
        ok &= _scenario("fleet", fleet, workers, args.split_size, args.repeat, rows)
    if not args.skip_large:
        large = _large(args.large_packets)
        ok &= _scenario("large split", large, workers, args.split_size, args.repeat, rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows}, indent=2) + "\n")
    if not ok:
        print("\nreports differ from the local run", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
