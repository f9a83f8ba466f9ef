"""A SYN scan as a capture: the per-connection worst case of a failure capture.

    python benchmarks/syn_scan.py --targets 200000 -o out/syn-scan-200000.pcap

Each target (address, port) gets a SYN from one scanner, sent again after 1 s and 3 s, never
answered: every connection is an unanswered attempt that tcpdiag follows, finishes, diagnoses
(syn-unanswered, retransmission) and reports. Targets start 20 us apart. Ethernet, IPv4, pcap
with microsecond timestamps; deterministic. 200,000 targets: 600,000 packets, 42 MB.
"""

from __future__ import annotations

import argparse
import heapq
import struct
from collections.abc import Iterator

START = 1_790_000_000.0
SCANNER = bytes([10, 0, 0, 1])
RETRIES = (0.0, 1.0, 3.0)
ETHERNET = bytes.fromhex("00112233445566778899aabb0800")


def _frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 1024, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, src, dst)
    return ETHERNET + ip + tcp


def _packets(targets: int) -> Iterator[tuple[float, int, bytes]]:
    """(time, target, frame) in time order: the retries of earlier targets interleave."""

    def one(retry: float) -> Iterator[tuple[float, int, bytes]]:
        for i in range(targets):
            dst = bytes([10, 1, (i >> 16) & 0xFF or 1, 1 + i % 200])
            frame = _frame(SCANNER, dst, 40000 + i % 20000, 1 + (i // 200) % 65000, 1000 + i)
            yield START + i * 20e-6 + retry, i, frame

    return heapq.merge(*(one(retry) for retry in RETRIES))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", type=int, default=200_000, help="addresses and ports scanned")
    ap.add_argument("-o", "--output", required=True, help="pcap to write")
    args = ap.parse_args()
    with open(args.output, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for time, _, frame in _packets(args.targets):
            sec = int(time)
            usec = round((time - sec) * 1e6)
            if usec == 1_000_000:
                sec, usec = sec + 1, 0
            out.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)


if __name__ == "__main__":
    main()
