"""How many packets/s `tcpdiag live` keeps up with on loopback, next to tcpdump, in one run.

For each rate, a synthetic capture (`gen.py`) is replayed onto `lo` by tcpreplay at that rate
while each capturing tool runs in turn; each says how many packets it captured and how many the
kernel dropped because it fell behind (its buffer was full). Every tool gets the same buffer
(`-B`, 32 MiB by default, tcpdiag's and tcpdump's defaults differ). Root only (it captures and
injects); tcpreplay and tcpdump come from Debian (`apt-get install tcpreplay tcpdump`, done
here when missing and running as root).

    python benchmarks/live_rate.py --packets 300000 --rates 100000,200000,300000
    python benchmarks/live_rate.py --packets 1200000 --rates 150000 --tools tcpdiag
    python benchmarks/live_rate.py --interface any    # the tools capture on `any` (cooked)

With `--interface any` the packets are still replayed onto `lo`; the tools capture them on the
pseudo-interface `any` (cooked: a Linux cooked header made up for each packet), which sees every
loopback packet twice, going out and coming in, and keeps one copy (libpcap and tcpdiag alike).

The machine has 2 cores: tcpreplay and the kernel's loopback work take one, so a tool that
needs a whole core for its analysis competes with them. Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import ensure_capture, install_missing  # noqa: E402

READY_TIMEOUT = 30.0


def start(cmd: list[str], ready: str, cwd: str) -> subprocess.Popen[str]:
    """A capturing tool, once it says on stderr that it captures."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if ready in line:
            return proc
    proc.kill()
    raise SystemExit(f"{cmd[0]} did not start capturing")


def replay(capture: Path, packets: int, rate: int) -> float:
    """tcpreplay at `rate` packets/s; the rate it reached."""
    out = subprocess.run(
        ["tcpreplay", "-q", "-i", "lo", f"--pps={rate}", "-L", str(packets), str(capture)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = re.search(r"([\d.]+) pps", out)
    return float(found.group(1)) if found else float("nan")


def measure(
    tool: str, capture: Path, packets: int, rate: int, buffer_kib: int, interface: str
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        if tool == "tcpdiag":
            # From an empty directory: from the repository, python -m tcpdiag would import the
            # source tree (pure Python) instead of the installed build.
            cmd = [sys.executable, "-m", "tcpdiag", "live", "-i", interface, "--format", "json",
                   "-B", str(buffer_kib)]  # fmt: skip
            proc = start(cmd, f"capturing on {interface}", tmp)
        else:
            cmd = ["tcpdump", "-i", interface, "-n", "-B", str(buffer_kib), "-w", os.devnull]
            proc = start(cmd, f"listening on {interface}", tmp)
        reached = replay(capture, packets, rate)
        time.sleep(1.0)  # what is queued is taken; then the tool stops and says its counts
        proc.send_signal(2)
        _, err = proc.communicate(timeout=600)
    captured, dropped = counts(tool, err)
    return {
        "tool": tool,
        "rate": rate,
        "reached_pps": round(reached),
        "sent": packets,
        "captured": captured,
        "dropped": dropped,
        "kept_pct": round(100 * captured / packets, 1),
    }


# What each tool says when it stops: (captured, dropped by the kernel).
COUNTS = {
    "tcpdiag": (r"(\d+) packets captured, \d+ dropped", r"captured, (\d+) dropped by the kernel"),
    "tcpdump": (r"(\d+) packets captured", r"(\d+) packets dropped by kernel"),
}


def counts(tool: str, err: str) -> tuple[int, int]:
    found = [re.search(pattern, err) for pattern in COUNTS[tool]]
    if found[0] is None or found[1] is None:
        raise SystemExit(f"{tool}: no counts in what it printed:\n{err[-2000:]}")
    return int(found[0].group(1)), int(found[1].group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=300_000)
    ap.add_argument("--rates", default="100000,200000,300000", help="packets/s, comma-separated")
    ap.add_argument("--tools", default="tcpdiag,tcpdump")
    ap.add_argument("--buffer-kib", type=int, default=32768)
    ap.add_argument("--pattern", default="mixed")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--interface", default="lo", help="where the tools capture: lo or any")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("live_rate.py captures and injects on lo: run it as root")
    missing = [name for name in ("tcpreplay", "tcpdump") if shutil.which(name) is None]
    if missing:
        install_missing(missing)
    capture, _ = ensure_capture(args.packets, args.pattern, args.seed)
    rows = []
    print(f"{'tool':8} {'rate':>8} {'reached':>8} {'captured':>9} {'dropped':>9} {'kept':>6}")
    for rate in (int(r) for r in args.rates.split(",")):
        for tool in args.tools.split(","):
            row = measure(tool, capture, args.packets, rate, args.buffer_kib, args.interface)
            rows.append(row)
            print(
                f"{tool:8} {rate:>8} {row['reached_pps']:>8} {row['captured']:>9} "
                f"{row['dropped']:>9} {row['kept_pct']:>5}%",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
