"""Hostile-input resource benchmarks (bad-inputs targets M1-M4 and O2), full scale.

    python benchmarks/hostile.py                 # everything (~5-10 min on 2 cores)
    python benchmarks/hostile.py --only m1,m3    # some
    python benchmarks/hostile.py --scale 0.1     # a tenth of every size (quick look)

Each measurement runs `python -m tcpdiag analyze` as a child and reads *that child's* peak RSS and
CPU time from `os.wait4` (not RUSAGE_CHILDREN, which keeps the largest child ever). Large inputs
are streamed into the child's standard input from a generator thread, so a 1 GiB capture needs
no disk. Every child runs under RLIMIT_AS (--as-limit, default 6 GiB) so that a regression
fails with a MemoryError instead of taking the machine down. CI runs the same cases at reduced
scale in tests/hostile/ (test_case26/36/37, test_case50_million_flow_report_renders_top_n).

Results are printed as a table and written to benchmarks/out/hostile.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hostile import packets as p  # noqa: E402

T0 = 1_700_000_000
MB = 1 << 20


def _record(t_us: int, frame: bytes) -> bytes:
    return struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)) + frame


def syn_flood(count: int) -> Iterator[bytes]:
    """`count` distinct SYN-only 4-tuples, 10 µs apart (~70 bytes per record)."""
    yield p.pcap_header()
    frame = bytearray(p.tcp_frame(flags=p.SYN, dport=443, seq=1))
    batch = []
    for i in range(count):
        frame[26:30] = bytes([10, 64 | (i >> 16) & 63, (i >> 8) & 255, i & 255])
        frame[34:36] = struct.pack("!H", 1024 + (i >> 22))
        batch.append(_record(T0 * 1_000_000 + i * 10, bytes(frame)))
        if len(batch) == 4096:
            yield b"".join(batch)
            batch = []
    yield b"".join(batch)


def one_way(size: int, hole: bool) -> Iterator[bytes]:
    """One TLS-looking flow: handshake, then `size` bytes client->server, never ACKed; with
    `hole`, the first segment is missing (everything after it is out of order)."""
    yield p.pcap_header()
    s = p.Session(dport=443)
    s.handshake()
    yield b"".join(_record(ts // 1000, f) for ts, f in s.packets)
    seg = 1448
    head = bytearray(p.eth(p.ipv4(p.tcp(seq=0, ack=s.next["s"], payload=bytes(seg)))))
    head[54:57] = b"\x17\x03\x03"
    start = s.next["c"]
    batch = []
    for i in range(size // seg):
        if hole and i == 0:
            continue
        head[38:42] = struct.pack("!I", (start + i * seg) & 0xFFFFFFFF)
        batch.append(_record((T0 + 10) * 1_000_000 + i * 10, bytes(head)))
        if len(batch) == 2048:
            yield b"".join(batch)
            batch = []
    yield b"".join(batch)


def gzip_bomb(decompressed: int) -> bytes:
    """A multi-member gzip whose members decompress to pcap records of zeros: ~1000:1."""
    record = struct.pack("<IIII", T0, 0, 65535, 65535) + bytes(65535)
    member_size = 256 * MB
    block = record * 64
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [comp.compress(p.pcap_header())]
    for _ in range(member_size // len(block)):
        parts.append(comp.compress(block))
    parts.append(comp.flush())
    first = b"".join(parts)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [comp.compress(block) for _ in range(member_size // len(block))]
    parts.append(comp.flush())
    other = b"".join(parts)
    return first + other * max(0, decompressed // member_size - 1)


def tls_records_flow(records: int) -> bytes:
    """One flow carrying `records` tiny TLS records, one per segment (M4 linearity)."""
    s = p.Session(dport=443, step_ns=10_000)
    s.handshake()
    s.send("c", p.record(p.client_hello()))
    s.send("s", p.record(p.server_hello()) + p.record(b"\x01", 20, 0x0303))
    rec = p.record(b"\x17" * 20, 23, 0x0303)
    for _ in range(records):
        s.raw("c", p.ACK | p.PSH, rec)
        s.next["c"] += len(rec)
    s.close()
    return p.pcap(s.packets)


def run_tcpdiag(
    args: list[str],
    stdin_chunks: Callable[[], Iterator[bytes]] | None = None,
    as_limit: int = 6 << 30,
) -> dict[str, Any]:
    """Run `python -m tcpdiag ARGS`; its own peak RSS (MB), CPU and wall seconds, exit code,
    stdout (bytes) and stderr."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))

    out = tempfile.TemporaryFile()  # noqa: SIM115 - read back after the child exits
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpdiag", *args],
        stdin=subprocess.PIPE if stdin_chunks else subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        preexec_fn=limit,
    )
    feeder = None
    if stdin_chunks is not None:
        assert proc.stdin is not None
        pipe = proc.stdin

        def feed() -> None:
            try:
                for chunk in stdin_chunks():
                    pipe.write(chunk)
            except BrokenPipeError:
                pass
            finally:
                pipe.close()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
    assert proc.stderr is not None
    err = proc.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    if feeder is not None:
        feeder.join(5)
    out.seek(0)
    return {
        "rc": proc.returncode,
        "rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "wall_s": round(wall, 2),
        "stdout": out.read(),
        "stderr": err[-500:],
    }


def _capture_finding(stdout: bytes, name: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(stdout)
    except ValueError:
        return None
    for cap in doc.get("captures", []):
        for f in cap.get("findings", []):
            if f["name"] == name:
                return f  # type: ignore[no-any-return]
    return None


def _flow_findings(stdout: bytes, name: str) -> list[dict[str, Any]]:
    doc = json.loads(stdout)
    return [
        f for c in doc["captures"] for fl in c["flows"] for f in fl["findings"] if f["name"] == name
    ]


def _strip(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k not in ("stdout",)}


def m1(scale: float) -> dict[str, Any]:
    n = int(1_000_000 * scale)
    with tempfile.NamedTemporaryFile(suffix=".pcap") as fh:
        for chunk in syn_flood(n):
            fh.write(chunk)
        fh.flush()
        size = fh.tell()
        r = run_tcpdiag(["analyze", fh.name, "--format", "json"])
    full = _capture_finding(r["stdout"], "flow-table-full") if r["rc"] == 0 else None
    res = _strip(r)
    res.update(
        packets=n,
        capture_mb=round(size / MB, 1),
        pps=round(n / r["cpu_s"]) if r["cpu_s"] else None,
        evictions=full["count"] if full else None,
        target="peak RSS < 300 MB with defaults; >= 20k packets/s; evictions reported",
        ok=r["rc"] == 0
        and r["rss_mb"] < 300
        and bool(full)
        and n / max(r["cpu_s"], 1e-9) >= 20_000,
    )
    return res


def m2(scale: float) -> dict[str, Any]:
    size = int((1 << 30) * scale)
    out: dict[str, Any] = {"bytes": size, "target": "RSS growth < 64 MB; gap/limit finding"}
    control = run_tcpdiag(["analyze", "-", "--format", "json"], lambda: one_way(16 * MB, True))
    out["control_rss_mb"] = control["rss_mb"]
    ok = True
    for hole in (False, True):
        r = run_tcpdiag(["analyze", "-", "--format", "json"], lambda h=hole: one_way(size, h))
        key = "hole" if hole else "no_hole"
        limit = _flow_findings(r["stdout"], "reassembly-limit") if r["rc"] == 0 else []
        out[key] = {
            **_strip(r),
            "growth_mb": round(r["rss_mb"] - control["rss_mb"], 1),
            "reassembly_limit": limit[0]["message"] if limit else None,
        }
        ok &= r["rc"] == 0 and r["rss_mb"] - control["rss_mb"] < 64
        ok &= bool(limit) or not hole
    out["ok"] = bool(ok)
    return out


def m3(scale: float) -> dict[str, Any]:
    target = int((10 << 30) * scale)
    bomb = gzip_bomb(target)
    limit = int((8 << 30) * scale)
    with tempfile.NamedTemporaryFile(suffix=".pcap.gz") as fh:
        fh.write(bomb)
        fh.flush()
        r = run_tcpdiag(["analyze", fh.name, "--format", "json", "--max-input-bytes", str(limit)])
    hit = _capture_finding(r["stdout"], "capture-damaged") if r["rc"] == 0 else None
    res = _strip(r)
    res.update(
        compressed_mb=round(len(bomb) / MB, 1),
        decompressed_gb=round(target / (1 << 30), 2),
        limit=limit,
        finding=hit["message"] if hit else None,
        target="RSS < 150 MB; stops at the configured limit",
        ok=r["rc"] == 0 and r["rss_mb"] < 150 and bool(hit) and "stopped after" in hit["message"],
    )
    return res


def m4(scale: float) -> dict[str, Any]:
    n = max(1000, int(100_000 * scale))
    times = {}
    for records in (n, 2 * n):
        with tempfile.NamedTemporaryFile(suffix=".pcap") as fh:
            fh.write(tls_records_flow(records))
            fh.flush()
            r = run_tcpdiag(["analyze", fh.name, "--format", "json"])
        times[records] = r["cpu_s"]
    ratio = times[2 * n] / max(times[n], 1e-9)
    return {
        "records": list(times),
        "cpu_s": list(times.values()),
        "ratio": round(ratio, 2),
        "target": "doubling the input costs <= 2.2x",
        "ok": ratio <= 2.2,
    }


O2_SCRIPT = """
import sys, time
from tcpdiag.findings.registry import make_finding
from tcpdiag.report.options import ReportOptions
from tcpdiag.report.text import render_text
from tcpdiag.result import AnalysisResult, CaptureResult, FlowResult
n = int(sys.argv[1])
finding = make_finding("syn-unanswered", "no answer to 1 SYN", frames=[1])
flows = []
for i in range(n):
    f = FlowResult(i + 1, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}:1024", "10.0.0.2:443", 4,
                   False, i + 1, i + 1, 1.0, 1.0)
    f.findings = [finding]
    f.state = "S0"
    f.verdict = "no answer from 10.0.0.2:443 to 1 SYN"
    flows.append(f)
result = AnalysisResult("0", [CaptureResult("flood.pcap", "pcap", flows=flows)])
start = time.process_time()
text = render_text(result, ReportOptions(color=False))
print(time.process_time() - start, len(text.splitlines()))
"""


def o2(scale: float) -> dict[str, Any]:
    n = int(1_000_000 * scale)
    proc = subprocess.run(
        [sys.executable, "-c", O2_SCRIPT, str(n)], capture_output=True, text=True, cwd=ROOT
    )
    took, lines = proc.stdout.split()
    return {
        "flows": n,
        "render_cpu_s": round(float(took), 2),
        "lines": int(lines),
        "target": "text report of 1M flows renders in < 2 s",
        "ok": float(took) < 2.0,
    }


BENCHMARKS: dict[str, Callable[[float], dict[str, Any]]] = {
    "m1": m1,
    "m2": m2,
    "m3": m3,
    "m4": m4,
    "o2": o2,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS))
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "hostile.json"))
    args = parser.parse_args()
    results: dict[str, Any] = {"scale": args.scale, "python": sys.version.split()[0]}
    for name in args.only.split(","):
        start = time.monotonic()
        res = BENCHMARKS[name.lower()](args.scale)
        res["bench_wall_s"] = round(time.monotonic() - start, 1)
        results[name] = res
        print(f"{name}: {json.dumps(res, default=str)}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
