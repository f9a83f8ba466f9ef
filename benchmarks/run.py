"""Benchmark tcpdiag against tshark, tcptrace, scapy and a plain-Python baseline on one capture.

    python benchmarks/run.py --packets 2000000             # generate (cached) and measure all
    python benchmarks/run.py --file big.pcap --json out.json
    python benchmarks/run.py --scaling 200000,2000000      # tcpdiag peak memory vs capture size

Every tool runs in its own fresh process, one after the other, on the same file (read once
beforehand so that every tool finds it in the page cache). The parent waits for each with
`os.wait4`, which returns that child's own resource usage: wall time, CPU time and its own peak
resident set size (ru_maxrss), not the largest of everything run so far. Ratios are against
tshark's full TCP analysis measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
REFERENCE = "tshark-analysis"  # the tool the ratios are taken against
# How often the memory of all a tool's processes is sampled (`all_processes_rss_mb`). Each
# sample lists /proc (~1.3 ms here) and, for several processes, walks their page tables (~0.7
# ms per 80 MB process): every 50 ms, that took ~7% of a core from the tool measured, whose
# own wall time is what the table shows. The peak it looks for is a plateau of seconds.
RSS_SAMPLE_S = 0.2

# Plain-Python reference: struct-decode Ethernet/IPv4/IPv6/TCP and update a per-flow dict.
# It is the ceiling for an uncompiled Python hot path that does almost nothing per packet.
STRUCT_BASELINE = r"""
import struct, sys
path = sys.argv[1]
rec = struct.Struct("<IIII").unpack_from
ip4 = struct.Struct("!BBHHHBBH4s4s").unpack_from
tcp = struct.Struct("!HHIIHH").unpack_from
flows = {}
n = 0
with open(path, "rb", buffering=1 << 20) as f:
    f.read(24)
    read = f.read
    while True:
        h = read(16)
        if len(h) < 16:
            break
        caplen = rec(h)[2]
        data = read(caplen)
        n += 1
        et = data[12] << 8 | data[13]
        if et == 0x0800:
            vihl, _, tot, _, _, _, proto, _, src, dst = ip4(data, 14)
            if proto != 6:
                continue
            off = 14 + (vihl & 15) * 4
            plen = tot - (vihl & 15) * 4
        elif et == 0x86DD:
            if data[20] != 6:
                continue
            src, dst = data[22:38], data[38:54]
            off = 54
            plen = data[18] << 8 | data[19]
        else:
            continue
        sport, dport, seq, ack, offflags, win = tcp(data, off)
        a, b = (src, sport), (dst, dport)
        key = (a, b) if a <= b else (b, a)
        st = flows.get(key)
        if st is None:
            flows[key] = st = [0, 0, 0]
        st[0] += 1
        st[1] += plen - (offflags >> 12) * 4
        st[2] |= offflags & 0x3F
print(n, len(flows))
"""

# The analysis without the CLI and the report: the difference to `tcpdiag` is what rendering
# the JSON costs.
ENGINE_ONLY = r"""
import sys
from tcpdiag.engine import analyze_capture
result = analyze_capture(sys.argv[1])
print(len(result.flows), len(result.all_findings()))
"""

SCAPY_SLICE = r"""
import json, sys, time
t0 = time.perf_counter()
import logging
logging.getLogger("scapy").setLevel(logging.ERROR)
from scapy.all import PcapReader, load_layer  # every layer, as a user would have them
load_layer("tls")  # and TLS: tcpdiag dissects it too
t1 = time.perf_counter()
limit = int(sys.argv[2])
n = 0
with PcapReader(sys.argv[1]) as reader:
    for pkt in reader:
        n += 1
        if n >= limit:
            break
t2 = time.perf_counter()
print(json.dumps({"packets": n, "import_s": t1 - t0, "loop_s": t2 - t1}))
"""

DPKT_SLICE = r"""
import json, sys, time
import dpkt
limit = int(sys.argv[2])
n = 0
t1 = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    for ts, buf in dpkt.pcap.Reader(f):
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) and isinstance(ip.data, dpkt.tcp.TCP):
            ip.data.sport
        n += 1
        if n >= limit:
            break
print(json.dumps({"packets": n, "import_s": 0, "loop_s": time.perf_counter() - t1}))
"""


@dataclass
class Tool:
    name: str
    what: str
    argv: list[str]
    needs: str  # executable or Python module that must exist
    slice_packets: int = 0  # >0: the tool reads only that many packets; its rate is extrapolated
    keep_output: bool = True  # False: straight to /dev/null (nothing to read back from it)


@dataclass
class Measurement:
    tool: str
    what: str
    status: str  # "ok" | "failed" | "timeout" | "skipped"
    packets: int = 0  # packets the tool processed (the slice, for sliced tools)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    packets_per_s: float = 0.0
    mb_per_s: float = 0.0
    peak_rss_mb: float = 0.0
    extrapolated: bool = False
    full_file_s: float = 0.0  # estimated, for sliced tools
    ratio_vs_tshark: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# Each tool is started by this small launcher (`python -S`, a few MB) rather than by run.py:
# on Linux a child's ru_maxrss starts from the RSS of the process it was forked (or vforked)
# from, so a tool spawned straight from a big parent would inherit the parent's peak.
LAUNCHER = r"""
import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(out, "w") as f:
    f.write("%d %r %r %r %d" % (os.waitstatus_to_exitcode(status), wall, ru.ru_utime,
                                ru.ru_stime, ru.ru_maxrss))
"""


def run_measured(
    argv: list[str], timeout: float, stdout: Any = subprocess.DEVNULL
) -> dict[str, Any]:
    """Run argv in a fresh process; return its own exit code, wall/CPU time and peak RSS."""
    with tempfile.TemporaryFile() as stderr, tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "usage"
        launcher = [sys.executable, "-S", "-c", LAUNCHER, str(report), *argv]
        # In an empty directory: from the repository, `python -m tcpdiag` would import the
        # source tree (pure Python) instead of the installed, compiled package.
        proc = subprocess.Popen(
            launcher, stdout=stdout, stderr=stderr, start_new_session=True, cwd=tmp
        )
        # The summed RSS of the tool's processes (tcpdiag --jobs runs several), sampled every
        # RSS_SAMPLE_S; the exit is checked every 50 ms.
        tree_rss = 0
        deadline = time.monotonic() + timeout
        next_sample = 0.0
        timed_out = False
        while proc.poll() is None:
            now = time.monotonic()
            if now >= next_sample:
                tree_rss = max(tree_rss, session_rss(proc.pid))
                next_sample = now + RSS_SAMPLE_S
            if now > deadline:
                os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the tool
                proc.wait()
                timed_out = True
                break
            time.sleep(0.05)
        stderr.seek(0)
        err = stderr.read().decode(errors="replace")
        fields = report.read_text().split() if report.exists() else []
    if timed_out or len(fields) != 5:
        return {
            "rc": proc.returncode,
            "timed_out": timed_out,
            "stderr": err,
            "wall_s": timeout,
            "cpu_s": 0.0,
            "peak_rss_mb": 0.0,
        }
    rc, wall, utime, stime, maxrss_kib = fields
    return {
        "rc": int(rc),
        "timed_out": False,
        "wall_s": float(wall),
        "cpu_s": float(utime) + float(stime),
        "peak_rss_mb": int(maxrss_kib) / 1024,
        "tree_rss_mb": tree_rss / 2**20,
        "stderr": err,
    }


def session_rss(session: int) -> int:
    """Bytes resident in the processes of `session` (the launcher's), the launcher excepted:
    the tool and every process it started (Linux /proc; 0 elsewhere). Several processes each
    count their proportional share of the pages they share with others (forked workers share
    their parent's pages until they write them), so that the sum is the memory the processes
    use together. One process alone counts its RSS: `smaps_rollup` walks the page tables of
    the process under its memory-map lock, and for tshark's 2.5 GB every 50 ms that made
    tshark itself 15-25% slower (see RSS_SAMPLE_S)."""
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    members: list[str] = []
    for entry in entries:
        if not entry.isdigit() or int(entry) == session:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[3]) == session:  # the session id (after state, ppid, pgrp)
                members.append(entry)
        except (OSError, IndexError, ValueError):
            continue
    total = 0
    for pid in members:
        try:
            total += _resident(pid, page) if len(members) == 1 else _proportional(pid, page)
        except (OSError, IndexError, ValueError):
            continue
    return total


def _resident(pid: str, page: int) -> int:
    """A process's RSS (`statm`: counters the kernel keeps, no page-table walk)."""
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * page


def _proportional(pid: str, page: int) -> int:
    """A process's proportional set size (its RSS where the kernel has no smaps_rollup)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _resident(pid, page)


def count_pcap(path: Path) -> int:
    """Packets in a classic pcap (header walk, no decoding); capinfos for anything else."""
    with open(path, "rb") as f:
        head = f.read(24)
        magic = head[:4]
        order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<"}.get(magic)
        order = order or {b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
        if order is None:
            out = subprocess.run(
                ["capinfos", "-c", "-M", "-T", str(path)], capture_output=True, text=True
            )
            return int(out.stdout.strip().splitlines()[-1].split("\t")[-1])
        rec = struct.Struct(order + "IIII")
        n = 0
        while True:
            h = f.read(16)
            if len(h) < 16:
                return n
            f.seek(rec.unpack(h)[2], 1)
            n += 1


def generator_version() -> int:
    """gen.py's VERSION, read without importing it (it imports tcpdiag)."""
    for line in (HERE / "gen.py").read_text().splitlines():
        if line.startswith("VERSION = "):
            return int(line.split("=")[1])
    return 0


def ensure_capture(packets: int, pattern: str, seed: int) -> tuple[Path, dict[str, Any]]:
    """The cached capture for (pattern, packets, seed), generated if missing."""
    OUT.mkdir(parents=True, exist_ok=True)  # git-ignored
    path = OUT / f"{pattern}-{packets}-s{seed}-v{generator_version()}.pcap"
    stats_path = path.with_suffix(".json")
    if not (path.exists() and stats_path.exists()):
        print(f"generating {path.name} ...", file=sys.stderr, flush=True)
        tmp = path.with_suffix(".pcap.part")
        cmd = [sys.executable, str(HERE / "gen.py"), "--packets", str(packets)]
        cmd += ["--seed", str(seed), "--pattern", pattern, "-o", str(tmp)]
        cmd += ["--stats-json", str(stats_path), "--quiet"]
        subprocess.run(cmd, check=True)
        tmp.replace(path)
    return path, json.loads(stats_path.read_text())


def warm_cache(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def install_missing(names: list[str]) -> None:
    """apt-get the system tools the comparison needs (Debian: tshark, tcptrace)."""
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *names]
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(f"missing {' '.join(names)}: install with `sudo {' '.join(cmd)}`", file=sys.stderr)
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"installing {' '.join(names)} ...", file=sys.stderr, flush=True)
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
    subprocess.run(cmd, env=env, check=False)


def available(needs: str) -> bool:
    if needs.startswith("py:"):
        module = needs[3:]
        code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
        return subprocess.run([sys.executable, "-c", code]).returncode == 0
    return shutil.which(needs) is not None


def tools_for(path: Path, args: argparse.Namespace) -> list[Tool]:
    f = str(path)
    gz = str(gzip_copy_path(path))
    py = sys.executable
    return [
        Tool(
            "tcpdiag",
            "tcpdiag analyze --format json (TCP + TLS + findings; by default --jobs auto: a"
            " capture of 16 MB or more split by flow across the CPUs; peak RSS is the largest"
            " process's)",
            [py, "-m", "tcpdiag", "analyze", f, "--format", "json", *args.tcpdiag_arg],
            "py:tcpdiag",
        ),
        Tool(
            "tcpdiag-1",
            "tcpdiag analyze --format json --jobs 1 (one process)",
            [
                py,
                "-m",
                "tcpdiag",
                "analyze",
                f,
                "--format",
                "json",
                "--jobs",
                "1",
                *args.tcpdiag_arg,
            ],
            "py:tcpdiag",
        ),
        Tool(
            "tcpdiag-text",
            "tcpdiag analyze (the default text report, as people run it; --jobs auto)",
            [py, "-m", "tcpdiag", "analyze", f, "--no-color", *args.tcpdiag_arg],
            "py:tcpdiag",
        ),
        Tool(
            "tcpdiag-gzip",
            "tcpdiag analyze --format json of the capture as `gzip -1` (made once, in"
            " benchmarks/out; the packets/s are the plain file's packets over this time)",
            [py, "-m", "tcpdiag", "analyze", gz, "--format", "json", *args.tcpdiag_arg],
            "gzip",
        ),
        Tool(
            "tcpdiag-engine",
            "tcpdiag.engine.analyze_capture only (no report rendering, no CLI)",
            [py, "-c", ENGINE_ONLY, f],
            "py:tcpdiag",
        ),
        Tool(
            "tshark-analysis",
            "tshark full TCP analysis: -Y tcp.analysis.flags -T fields -e frame.number",
            ["tshark", "-r", f, "-Y", "tcp.analysis.flags", "-T", "fields", "-e", "frame.number"],
            "tshark",
        ),
        Tool(
            "tshark-conv",
            "tshark -q -z conv,tcp (conversation table only)",
            ["tshark", "-r", f, "-q", "-z", "conv,tcp"],
            "tshark",
        ),
        Tool(
            "tcptrace",
            "tcptrace -n -l (per-connection statistics)",
            ["tcptrace", "-n", "-l", f],
            "tcptrace",
            keep_output=False,
        ),
        Tool(
            "python-struct",
            "plain Python: struct decode + per-flow dict update (no analysis)",
            [py, "-c", STRUCT_BASELINE, f],
            "python3",
        ),
        Tool(
            "scapy",
            f"scapy PcapReader full dissection (with TLS), first {args.scapy_packets} packets",
            [py, "-c", SCAPY_SLICE, f, str(args.scapy_packets)],
            "py:scapy",
            slice_packets=args.scapy_packets,
        ),
        Tool(
            "dpkt",
            f"dpkt Ethernet/IP/TCP parse, first {args.dpkt_packets} packets",
            [py, "-c", DPKT_SLICE, f, str(args.dpkt_packets)],
            "py:dpkt",
            slice_packets=args.dpkt_packets,
        ),
    ]


def measure(tool: Tool, packets: int, size: int, timeout: float) -> Measurement:
    m = Measurement(tool.name, tool.what, "ok")
    # Other work on the machine (1-minute load average) makes a run slower: keep it on record.
    m.extra["load_before"] = round(os.getloadavg()[0], 2)
    if tool.keep_output:
        with tempfile.TemporaryFile() as out:
            r = run_measured(tool.argv, timeout, stdout=out)
            out.seek(0)
            stdout = out.read()
    else:
        r = run_measured(tool.argv, timeout)
        stdout = b""
    m.wall_s, m.cpu_s, m.peak_rss_mb = r["wall_s"], r["cpu_s"], r["peak_rss_mb"]
    if r.get("tree_rss_mb"):
        # All the tool's processes together (proportional set sizes, sampled every 0.2 s, so
        # a short peak can be missed): what `peak_rss_mb`, the largest single process's, does
        # not show for tcpdiag --jobs.
        m.extra["all_processes_rss_mb"] = round(r["tree_rss_mb"])
    if r["timed_out"]:
        m.status, m.note = "timeout", f"killed after {timeout:.0f} s"
        return m
    if r["rc"] != 0:
        tail = " | ".join(line for line in r["stderr"].strip().splitlines()[-3:])
        m.status, m.note = "failed", f"exit {r['rc']}: {tail[:300]}"
        return m
    m.packets = packets
    seconds = m.wall_s
    if tool.slice_packets:
        info = json.loads(stdout.decode().strip().splitlines()[-1])
        m.packets = info["packets"]
        seconds = info["loop_s"]
        m.extrapolated = True
        m.extra["import_s"] = round(info["import_s"], 3)
        m.note = f"rate from the first {m.packets} packets, extrapolated to the file"
    m.packets_per_s = m.packets / seconds if seconds else 0.0
    fraction = m.packets / packets if packets else 1.0
    m.mb_per_s = size * fraction / seconds / 1e6 if seconds else 0.0
    m.full_file_s = packets / m.packets_per_s if m.packets_per_s else 0.0
    if tool.name == "tshark-analysis":
        m.extra["flagged_frames"] = stdout.count(b"\n")
    elif tool.name == "tshark-conv":
        m.extra["conversations"] = sum(1 for ln in stdout.splitlines() if b"<->" in ln)
    elif tool.name == "tcpdiag-engine":
        flows, findings = stdout.split()[-2:]
        m.extra.update(flows=int(flows), findings=int(findings))
    elif tool.name == "python-struct":
        m.extra["flows"] = int(stdout.split()[1])
    elif tool.name in ("tcpdiag", "tcpdiag-1", "tcpdiag-gzip"):
        m.extra.update(tcpdiag_summary(stdout))
    elif tool.name == "tcpdiag-text":
        m.extra["output_bytes"] = len(stdout)
    return m


def best_of(runs: list[Measurement]) -> Measurement:
    """Best (fastest) of a tool's runs: the least disturbed by whatever else the machine does.
    The peak RSS reported is the largest of the runs."""
    ok = [m for m in runs if m.status == "ok"]
    if not ok:
        return runs[-1]
    best = min(ok, key=lambda m: m.full_file_s)
    if len(runs) > 1:
        best.peak_rss_mb = max(m.peak_rss_mb for m in ok)
        best.extra["runs_s"] = [round(m.full_file_s, 2) for m in runs]
    return best


def tcpdiag_summary(stdout: bytes) -> dict[str, Any]:
    """A few numbers from tcpdiag's JSON, to see that it really analysed the capture."""
    summary: dict[str, Any] = {"output_bytes": len(stdout)}
    try:
        doc = json.loads(stdout)
        cap = doc["captures"][0]
        summary["packets"] = cap["packets"]
        summary["flows"] = len(cap["flows"]) if isinstance(cap["flows"], list) else cap["flows"]
        counts = doc.get("summary", {}).get("findings", {})
        summary["findings"] = sum(counts.values()) if isinstance(counts, dict) else counts
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        pass
    return summary


BUILD_PROBE = (
    "import tcpdiag.flow.flow as f, tcpdiag.decode.scan as s;"
    "print('compiled' if f.__file__.endswith(('.so', '.pyd')) and s.available() else 'pure')"
)


def tcpdiag_build() -> str:
    """'compiled' (mypyc modules and C extensions) or 'pure': what `python -m tcpdiag` runs
    here, from a neutral directory as the measurements do."""
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(
            [sys.executable, "-c", BUILD_PROBE], capture_output=True, text=True, cwd=tmp
        )
    return r.stdout.strip() or "unavailable"


def machine_info() -> dict[str, Any]:
    def first_line(cmd: list[str]) -> str:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr) else ""

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = first_line(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tshark": first_line(["tshark", "-v"]) if shutil.which("tshark") else None,
        "tcptrace": "6.6.7" if shutil.which("tcptrace") else None,
        "tcpdiag_commit": commit + ("+dirty" if dirty else ""),
        "tcpdiag_build": tcpdiag_build(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def print_table(title: str, rows: list[Measurement]) -> None:
    print(f"\n{title}")
    head = f"{'tool':16} {'status':8} {'wall s':>8} {'pkt/s':>11} {'MB/s':>7} {'RSS MB':>8}"
    print(head + f" {'x tshark':>9}  note")
    print("-" * (len(head) + 18))
    for m in rows:
        if m.status != "ok":
            wall = f"{m.wall_s:8.1f}" if m.wall_s else f"{'':8}"
            rss = f"{m.peak_rss_mb:8.0f}" if m.peak_rss_mb else f"{'':8}"
            print(f"{m.tool:16} {m.status:8} {wall} {'':>11} {'':>7} {rss} {'':>9}  {m.note}")
            continue
        wall = f"{m.full_file_s:7.1f}*" if m.extrapolated else f"{m.wall_s:8.1f}"
        ratio = f"{m.ratio_vs_tshark:9.2f}" if m.ratio_vs_tshark is not None else f"{'':>9}"
        extra = ", ".join(f"{k}={v}" for k, v in m.extra.items())
        note = "; ".join(x for x in (extra, "*extrapolated" if m.extrapolated else "") if x)
        print(
            f"{m.tool:16} {m.status:8} {wall} {m.packets_per_s:11,.0f} {m.mb_per_s:7.1f}"
            f" {m.peak_rss_mb:8.0f} {ratio}  {note}"
        )


def print_targets(rows: list[Measurement]) -> None:
    """Issue 9's targets for tcpdiag (as run by default, and in one process), checked against
    this run."""
    by = {m.tool: m for m in rows if m.status == "ok"}
    for name in ("tcpdiag", "tcpdiag-1"):
        if name in by:
            print_targets_of(name, by)


def print_targets_of(name: str, by: dict[str, Measurement]) -> None:
    me = by[name]
    checks = [("peak RSS <= 250 MB (2M-packet capture)", me.peak_rss_mb <= 250)]
    if "tshark-analysis" in by:
        ratio = me.packets_per_s / by["tshark-analysis"].packets_per_s
        checks.insert(0, (f">= 10x tshark full TCP analysis (x{ratio:.1f})", ratio >= 10))
    if "tcptrace" in by:
        ratio = me.packets_per_s / by["tcptrace"].packets_per_s
        checks.insert(1, (f"faster than tcptrace (x{ratio:.2f})", ratio > 1))
    checks.insert(2, (f">= 1M packets/s ({me.packets_per_s:,.0f})", me.packets_per_s >= 1e6))
    print(f"\n{name} against issue 9's targets:")
    for text, ok in checks:
        print(f"  [{'x' if ok else ' '}] {text}")


def gzip_copy_path(path: Path) -> Path:
    return OUT / f"{path.name}.gz"


def ensure_gzip_copy(path: Path) -> None:
    """The capture as `gzip -1` for the `tcpdiag-gzip` row, made once (again if older)."""
    target = gzip_copy_path(path)
    if target.exists() and target.stat().st_mtime >= path.stat().st_mtime:
        return
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"  gzip -1 {path.name} ...", file=sys.stderr, flush=True)
    partial = target.with_suffix(".part")
    with open(path, "rb") as plain, open(partial, "wb") as packed:
        subprocess.run(["gzip", "-1", "-c"], stdin=plain, stdout=packed, check=True)
    partial.replace(target)


def bench_file(path: Path, packets: int, args: argparse.Namespace) -> list[Measurement]:
    size = path.stat().st_size
    selected = [t for t in tools_for(path, args) if t.name in args.tools]
    missing = sorted({t.needs for t in selected if not t.needs.startswith("py:")} - {"python3"})
    missing = [n for n in missing if not available(n)]
    if missing and not args.no_install:
        install_missing(missing)
    if any(t.name == "tcpdiag-gzip" for t in selected) and available("gzip"):
        ensure_gzip_copy(path)
        warm_cache(gzip_copy_path(path))
    warm_cache(path)
    runnable = [t for t in selected if available(t.needs)]
    runs: dict[str, list[Measurement]] = {t.name: [] for t in runnable}
    # Rounds, every tool once per round (not a tool's repeats back to back): a slow spell of a
    # shared machine then slows every tool of a round alike, and the ratios stay fair.
    for round_number in range(1, args.repeat + 1):
        for tool in runnable:
            label = f" (round {round_number} of {args.repeat})" if args.repeat > 1 else ""
            print(f"  {tool.name}{label} ...", file=sys.stderr, flush=True)
            runs[tool.name].append(measure(tool, packets, size, args.timeout))
    results: list[Measurement] = []
    for tool in selected:
        if tool.name in runs:
            results.append(best_of(runs[tool.name]))
        else:
            results.append(
                Measurement(tool.name, tool.what, "skipped", note=f"{tool.needs} not available")
            )
    ref = next((m for m in results if m.tool == REFERENCE and m.status == "ok"), None)
    for m in results:
        if ref and m.status == "ok":
            m.ratio_vs_tshark = round(m.packets_per_s / ref.packets_per_s, 3)
    return results


def run_scaling(sizes: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Each size of one pattern (same concurrency, more connections over time): peak RSS
    should not grow with capture length. tcpdiag only, unless --tools says otherwise."""
    runs: list[dict[str, Any]] = []
    for n in sizes:
        path, stats = ensure_capture(n, args.pattern, args.seed)
        results = bench_file(path, stats["packets"], args)
        runs += [{"packets": n, "file": str(path), **asdict(m)} for m in results]
        print_table(f"{path.name}: {n:,} packets", results)
    result: dict[str, Any] = {"pattern": args.pattern, "seed": args.seed, "runs": runs}
    ratios: dict[str, float] = {}
    print(f"\npeak RSS growth, {sizes[0]:,} -> {sizes[-1]:,} packets", end="")
    print(" (tcpdiag target: ratio <= 1.5 and <= 250 MB)")
    for tool in dict.fromkeys(r["tool"] for r in runs):
        ok = [r for r in runs if r["tool"] == tool and r["status"] == "ok"]
        if len(ok) < 2:
            continue
        first, last = ok[0], ok[-1]
        ratios[tool] = round(last["peak_rss_mb"] / first["peak_rss_mb"], 3)
        print(
            f"  {tool:16} {first['peak_rss_mb']:8.0f} MB -> {last['peak_rss_mb']:8.0f} MB"
            f"  x{ratios[tool]:.2f}"
        )
    result["rss_ratio_largest_to_smallest"] = ratios
    return result


ALL_TOOLS = [
    "tcpdiag",
    "tcpdiag-1",
    "tcpdiag-text",
    "tcpdiag-engine",
    "tshark-analysis",
    "tshark-conv",
    "tcptrace",
    "python-struct",
    "scapy",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--packets", type=int, help="generate (or reuse) a capture of N packets")
    src.add_argument("--file", type=Path, help="benchmark an existing capture")
    src.add_argument("--scaling", help="comma-separated sizes, e.g. 200000,2000000")
    ap.add_argument("--pattern", default="mixed", help="gen.py traffic pattern")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--tools",
        help=f"comma-separated, from {','.join(ALL_TOOLS)},dpkt,tcpdiag-gzip (default: all"
        " but dpkt and tcpdiag-gzip; tcpdiag alone with --scaling)",
    )
    ap.add_argument("--skip-tcpdiag", action="store_true")
    ap.add_argument("--skip-tshark", action="store_true", help="skip both tshark runs")
    ap.add_argument("--skip-tcptrace", action="store_true")
    ap.add_argument("--skip-scapy", action="store_true")
    ap.add_argument("--scapy-packets", type=int, default=20000, help="scapy slice size")
    ap.add_argument("--dpkt-packets", type=int, default=200000, help="dpkt slice size")
    ap.add_argument("--timeout", type=float, default=1800, help="per tool run, seconds")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool; the fastest is kept")
    ap.add_argument(
        "--tcpdiag-arg",
        action="append",
        default=[],
        help="extra argument for tcpdiag analyze (repeatable)",
    )
    ap.add_argument(
        "--no-install",
        action="store_true",
        help="do not apt-get missing tshark/tcptrace (root only)",
    )
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)

    skip = set()
    if args.skip_tcpdiag:
        skip |= {"tcpdiag", "tcpdiag-1", "tcpdiag-text"}
    if args.skip_tshark:
        skip |= {"tshark-analysis", "tshark-conv"}
    if args.skip_tcptrace:
        skip.add("tcptrace")
    if args.skip_scapy:
        skip.add("scapy")
    default_tools = ["tcpdiag"] if args.scaling else ALL_TOOLS
    tools = args.tools.split(",") if args.tools else default_tools
    args.tools = [t for t in tools if t and t not in skip]

    report: dict[str, Any] = {"machine": machine_info()}
    build = report["machine"]["tcpdiag_build"]
    print(f"tcpdiag build: {build}", file=sys.stderr)
    if build == "pure" and "tcpdiag" in args.tools:
        print(
            "  (pure Python: `pip install .` into a venv outside the tree for the compiled build)",
            file=sys.stderr,
        )
    if args.scaling:
        sizes = sorted(int(s) for s in args.scaling.split(","))
        report["scaling"] = run_scaling(sizes, args)
    else:
        if args.file:
            path, gen_stats = args.file.resolve(), None  # the tools run elsewhere
            packets = count_pcap(path)
        else:
            path, gen_stats = ensure_capture(args.packets or 200000, args.pattern, args.seed)
            packets = gen_stats["packets"]
        size = path.stat().st_size
        print(f"{path}: {packets:,} packets, {size / 1e6:,.0f} MB", file=sys.stderr)
        results = bench_file(path, packets, args)
        title = f"{path.name}: {packets:,} packets, {size / 1e6:,.0f} MB"
        print_table(title, results)
        print_targets(results)
        report.update(
            file=str(path),
            packets=packets,
            file_bytes=size,
            generator=gen_stats,
            results=[asdict(m) for m in results],
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nresults written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
