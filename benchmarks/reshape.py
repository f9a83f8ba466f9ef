"""Rewrite a benchmark capture into another shape of the same traffic.

    python benchmarks/reshape.py vlan IN.pcap OUT.pcap       # an 802.1Q tag on every frame
    python benchmarks/reshape.py loopback IN.pcap OUT.pcap   # BSD loopback (macOS lo0) framing
    python benchmarks/reshape.py udp IN.pcap OUT.pcap        # a UDP packet after every frame
    python benchmarks/reshape.py udp-only IN.pcap OUT.pcap   # those UDP packets alone

The input is a classic little-endian Ethernet pcap, as `gen.py` writes. `udp` interleaves QUIC,
DNS and NTP sized datagrams (seeded, so the output is the same at every run), one after each
frame, at its time. The figures of `benchmarks/README.md` (nineteenth stop) come from these
shapes of `mixed-200000-s1-v2.pcap`: the same TCP traffic, read by other paths of the reader.
"""

from __future__ import annotations

import argparse
import random
import struct
from collections.abc import Iterator
from pathlib import Path

PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD = struct.Struct("<IIII")
ETHERNET = 1
NULL = 0
VLAN_TAG = b"\x81\x00\x00\x64"  # 802.1Q, VLAN 100
AF_INET, AF_INET6_DARWIN = 2, 30
ETH_IPV4 = b"\x08\x00"


def records(path: Path) -> Iterator[tuple[int, int, bytes, int]]:
    """(seconds, microseconds, frame, original length) of each record."""
    with open(path, "rb") as f:
        head = f.read(PCAP_HEADER.size)
        magic, *_, linktype = PCAP_HEADER.unpack(head)
        if magic != 0xA1B2C3D4 or linktype != ETHERNET:
            raise SystemExit(f"{path}: not a little-endian microsecond Ethernet pcap")
        while head := f.read(RECORD.size):
            sec, usec, caplen, orig = RECORD.unpack(head)
            yield sec, usec, f.read(caplen), orig


def _write(out: Path, linktype: int, frames: Iterator[tuple[int, int, bytes, int]]) -> int:
    count = 0
    with open(out, "wb") as f:
        f.write(PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        for sec, usec, frame, orig in frames:
            f.write(RECORD.pack(sec, usec, len(frame), orig) + frame)
            count += 1
    return count


def vlan(source: Path) -> Iterator[tuple[int, int, bytes, int]]:
    for sec, usec, frame, orig in records(source):
        yield sec, usec, frame[:12] + VLAN_TAG + frame[12:], orig + len(VLAN_TAG)


def loopback(source: Path) -> Iterator[tuple[int, int, bytes, int]]:
    for sec, usec, frame, orig in records(source):
        family = AF_INET if frame[12:14] == ETH_IPV4 else AF_INET6_DARWIN
        yield sec, usec, struct.pack("<I", family) + frame[14:], orig - 10


def with_udp(source: Path, keep_frames: bool = True) -> Iterator[tuple[int, int, bytes, int]]:
    rng = random.Random(1)
    for sec, usec, frame, orig in records(source):
        if keep_frames:
            yield sec, usec, frame, orig
        size = rng.choice((60, 120, 1200, 1350))
        ports = (rng.randrange(1024, 65535), rng.choice((53, 443, 123)))
        udp = struct.pack("!HHHH", *ports, 8 + size, 0)
        src = bytes((10, 0, rng.randrange(256), rng.randrange(256)))
        dst = bytes((10, 1, 0, rng.randrange(8)))
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + size, 0, 0x4000, 64, 17, 0, src, dst)
        datagram = frame[:12] + ETH_IPV4 + ip + udp + bytes(size)
        yield sec, usec, datagram, len(datagram)


def udp_only(source: Path) -> Iterator[tuple[int, int, bytes, int]]:
    return with_udp(source, keep_frames=False)


SHAPES = {
    "vlan": (vlan, ETHERNET),
    "loopback": (loopback, NULL),
    "udp": (with_udp, ETHERNET),
    "udp-only": (udp_only, ETHERNET),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shape", choices=sorted(SHAPES))
    ap.add_argument("source", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    reshape, linktype = SHAPES[args.shape]
    count = _write(args.out, linktype, reshape(args.source))
    print(f"{args.out}: {count:,} records ({args.shape})")


if __name__ == "__main__":
    main()
