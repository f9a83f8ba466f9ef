"""Flow engine throughput and memory per tracked flow, on synthetic traffic.

    python benchmarks/flow_memory.py [--packets N] [--no-gc]

Two workloads: one bulk transfer (two 1448-byte segments per ACK: the per-packet path) and a
SYN flood of distinct 4-tuples (flow creation, eviction at `Limits.max_flows`). Prints packets
per second and the traced memory per tracked flow. Numbers depend on the machine; compare runs
on the same one.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from tcpdiag.flow import FlowTable
from tcpdiag.model import ACK, NO_OPTIONS, PSH, SYN, Segment

A = bytes([10, 0, 0, 1])
B = bytes([10, 0, 0, 2])


def bulk(n: int) -> list[Segment]:
    out: list[Segment] = []
    t, cs, ss, frame = 0.0, 1000, 5000, 0
    payload = b"x" * 1448
    while len(out) < n:
        for _ in range(2):
            frame += 1
            t += 0.0001
            out.append(
                Segment(frame, t, 4, A, B, 40000, 80, cs, ss, ACK | PSH, 65535, 1448, payload,
                        NO_OPTIONS)
            )  # fmt: skip
            cs = (cs + 1448) & 0xFFFFFFFF
        frame += 1
        t += 0.0001
        out.append(Segment(frame, t, 4, B, A, 80, 40000, ss, cs, ACK, 65535, 0, b"", NO_OPTIONS))
    return out


def syn_flood(n: int) -> list[Segment]:
    return [
        Segment(i + 1, i * 1e-5, 4, bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255]), B,
                1000 + i % 50000, 80, i, 0, SYN, 65535, 0, b"", NO_OPTIONS)
        for i in range(n)
    ]  # fmt: skip


def run(name: str, segments: list[Segment], trace: bool) -> None:
    table = FlowTable(on_close=lambda flow: None)
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    for seg in segments:
        table.add(seg)
    elapsed = time.perf_counter() - t0
    line = f"{name:10s} {len(segments) / elapsed:>10,.0f} pkt/s  flows tracked {len(table):>7,}"
    if trace:
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        line += f"  {current / max(1, len(table)):,.0f} B/flow (traced)"
    print(line, f" evictions {table.evictions:,}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=300_000)
    ap.add_argument("--no-gc", action="store_true", help="disable the cyclic GC while running")
    ap.add_argument("--trace", action="store_true", help="measure memory (slower)")
    args = ap.parse_args()
    if args.no_gc:
        gc.disable()
    run("bulk", bulk(args.packets), args.trace)
    run("syn-flood", syn_flood(args.packets), args.trace)


if __name__ == "__main__":
    main()
