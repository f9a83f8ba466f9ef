"""Profile `tcpdiag analyze` on one capture: where does the time go?

    python benchmarks/profile.py --packets 200000          # generated capture (cached)
    python benchmarks/profile.py capture.pcap --top 40 --sort cumulative
    python benchmarks/profile.py capture.pcap --py-spy     # also a py-spy flame graph
    python benchmarks/profile.py capture.pcap --py-spy --native   # ... with a compiled build's C

cProfile runs the whole command in this process (output to /dev/null) and prints the top
functions by own time and by cumulative time, then the own time summed per tcpdiag stage
(capture, decode, flow, tls, findings, report...): the stage table says where optimising pays.
cProfile inflates the cost of small Python functions; py-spy (a sampling profiler, `pip install
py-spy`) does not, so compare both before rewriting a function. The whole-run packets/s printed
here is under the profiler: use run.py for real speed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import pstats
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This file shares its name with the stdlib module that cProfile imports: keep its directory off
# the import path (python puts it first when running this script).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import cProfile  # noqa: E402 - only once the path is clean


def _load_run():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_run", HERE / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench_run = _load_run()


def stage_of(filename: str) -> str:
    """'tcpdiag/flow/table.py' -> 'flow'; stdlib and third-party code by top package."""
    parts = Path(filename).parts
    if "tcpdiag" in parts:
        package = len(parts) - 1 - parts[::-1].index("tcpdiag")
        return parts[package + 1].removesuffix(".py") if package + 1 < len(parts) else "tcpdiag"
    if filename.startswith(("~", "<")):
        return "builtins"
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    return "stdlib"


def run_profile(path: Path, extra: list[str], engine: bool) -> tuple[cProfile.Profile, float]:
    """Profile the whole command (CLI, analysis, JSON report) or, with `engine`, only
    `tcpdiag.engine.analyze_capture`."""
    if engine:
        from tcpdiag.engine import analyze_capture

        def work() -> None:
            analyze_capture(str(path))
    else:
        from tcpdiag.cli.main import cli

        def work() -> None:
            try:
                # One process: a profiler sees only its own (`--jobs auto` would fork workers).
                argv = ["analyze", str(path), "--format", "json", "-j", "1", *extra]
                cli.main(argv, prog_name="tcpdiag")
            except SystemExit as exc:
                if exc.code not in (0, None):
                    print(f"tcpdiag exited with {exc.code}", file=sys.stderr)

    prof = cProfile.Profile()
    start = time.perf_counter()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        prof.enable()
        try:
            work()
        finally:
            prof.disable()
    return prof, time.perf_counter() - start


def print_stages(stats: pstats.Stats, total: float) -> None:
    per_stage: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    for (filename, _, _), (_, ncalls, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        stage = stage_of(filename)
        per_stage[stage] += tottime
        calls[stage] += ncalls
    print(f"\nown time per stage (of {total:.2f} s under the profiler)")
    print(f"{'stage':14} {'seconds':>9} {'share':>7} {'calls':>12}")
    for stage, seconds in sorted(per_stage.items(), key=lambda kv: -kv[1]):
        print(f"{stage:14} {seconds:9.2f} {seconds / total:7.1%} {calls[stage]:12,}")


def py_spy(path: Path, extra: list[str], out: Path, native: bool = False) -> None:
    exe = shutil.which("py-spy")
    if exe is None:
        print("\npy-spy is not installed (pip install py-spy): skipped", file=sys.stderr)
        return
    cmd = [exe, "record", "--rate", "250", "--format", "flamegraph", "-o", str(out)]
    # A compiled (mypyc) build runs its hot code as C functions, invisible without --native.
    cmd += ["--native", "--"] if native else ["--"]
    cmd += [sys.executable, "-m", "tcpdiag", "analyze", str(path), "--format", "json", "-j", "1"]
    cmd += extra
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False)
    print(f"\npy-spy flame graph: {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", nargs="?", type=Path, help="capture to analyse")
    ap.add_argument("--packets", type=int, help="use a generated capture of N packets instead")
    ap.add_argument("--pattern", default="mixed")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--sort", choices=("tottime", "cumulative", "both"), default="both")
    ap.add_argument("--save", type=Path, help="write the raw profile (for snakeviz, pstats)")
    ap.add_argument("--py-spy", action="store_true", help="also record a py-spy flame graph")
    ap.add_argument(
        "--native",
        action="store_true",
        help="py-spy --native: show the C functions of a compiled build in the flame graph",
    )
    ap.add_argument(
        "--engine", action="store_true", help="profile engine.analyze_capture only (no CLI/report)"
    )
    ap.add_argument("--tcpdiag-arg", action="append", default=[], help="extra analyze argument")
    args = ap.parse_args(argv)
    if args.capture is None:
        path, gen_stats = bench_run.ensure_capture(args.packets or 200000, args.pattern, args.seed)
        packets = gen_stats["packets"]
    else:
        path, packets = args.capture, bench_run.count_pcap(args.capture)

    prof, elapsed = run_profile(path, args.tcpdiag_arg, args.engine)
    print(f"{path}: {packets:,} packets in {elapsed:.2f} s under cProfile", end="")
    print(f" ({packets / elapsed:,.0f} packets/s profiled)")
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    orders = ["tottime", "cumulative"] if args.sort == "both" else [args.sort]
    for order in orders:
        buf.truncate(0)
        buf.seek(0)
        stats.sort_stats(order).print_stats(args.top)
        text = buf.getvalue()
        body = text[text.find("   ncalls") :] if "   ncalls" in text else text
        print(f"\ntop {args.top} by {order}\n{body.rstrip()}")
    print_stages(stats, elapsed)
    if args.save:
        prof.dump_stats(str(args.save))
        print(f"\nraw profile: {args.save}")
    if args.py_spy:
        py_spy(path, args.tcpdiag_arg, path.with_suffix(".flame.svg"), args.native)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
