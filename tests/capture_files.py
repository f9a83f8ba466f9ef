"""Helpers for tests that write crafted capture files: well-formed ones through tcpdiag's own
writers, malformed ones byte by byte (a writer would refuse to make them).

Packets here are built with `struct`, not scapy, so capture tests stay fast; decode tests build
theirs with scapy.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

from tcpdiag.capture import PcapngWriter, PcapWriter

# The shared corpus of public captures, beside the repository (tests skip when it is absent).
PUBLIC = Path(__file__).resolve().parents[1].parent / "shared/captures/public"
# The project's own recordings.
OWN = Path(__file__).resolve().parents[1] / "captures"
CAPTURE_SUFFIXES = (
    ".pcap",
    ".pcapng",
    ".pcap.gz",
    ".pcap.zst",
    ".pcapng.gz",
    ".pcapng.zst",
    ".cap",
)
# Public captures with TCP headers the decoder cannot use (data offset beyond the IP payload):
# tshark counts them as malformed TCP frames; we count them in DecodeStats.bad_tcp_header.
BAD_TCP_HEADERS = {"malformed-tcp-short-header.pcap": 2, "tcp-lost-segment-refused-rst.pcap": 1}

SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 1
SPB_TYPE = 3
EPB_TYPE = 6


def corpus_captures() -> list[str]:
    """Every capture file of `captures/` and of the public corpus (when present), in order."""
    out: list[str] = []
    for folder in (OWN, PUBLIC):
        if folder.is_dir():
            out += [str(p) for p in sorted(folder.iterdir()) if p.name.endswith(CAPTURE_SUFFIXES)]
    return out


def tcp_frame(seq: int = 1, payload: bytes = b"", sport: int = 40000, dport: int = 80) -> bytes:
    """An Ethernet + IPv4 + TCP (ACK) frame, checksums zero; good enough for capture tests."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x10, 65535, 0, 0)
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 6, 0, b"\x0a\0\0\x01", b"\x0a\0\0\x02"
    )
    eth = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"
    return eth + ip + tcp + payload


def frames(count: int) -> list[bytes]:
    return [tcp_frame(seq=i * 100, payload=bytes([i & 0xFF]) * (i % 7)) for i in range(count)]


def pcap_bytes(
    packets: Iterable[tuple[int, bytes]],
    linktype: int = 1,
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
) -> bytes:
    """(ts_ns, data) pairs through PcapWriter."""
    out = io.BytesIO()
    writer = PcapWriter(out, linktype, nanosecond, snaplen, big_endian=big_endian)
    for ts_ns, data in packets:
        writer.write(ts_ns, data)
    return out.getvalue()


def pcap_header(
    magic: int = 0xA1B2C3D4,
    version: tuple[int, int] = (2, 4),
    snaplen: int = 65535,
    linktype: int = 1,
    big_endian: bool = False,
) -> bytes:
    order = ">" if big_endian else "<"
    return struct.pack(order + "IHHiIII", magic, version[0], version[1], 0, 0, snaplen, linktype)


def pcap_record(
    sec: int,
    frac: int,
    data: bytes,
    caplen: int | None = None,
    orig_len: int | None = None,
    big_endian: bool = False,
) -> bytes:
    """A record header (with any lengths, true or not) followed by `data`."""
    order = ">" if big_endian else "<"
    caplen = len(data) if caplen is None else caplen
    orig_len = len(data) if orig_len is None else orig_len
    return struct.pack(order + "IIII", sec, frac, caplen, orig_len) + data


def block(
    block_type: int,
    body: bytes,
    big_endian: bool = False,
    length: int | None = None,
    trailer: int | None = None,
) -> bytes:
    """A pcapng block; `length`/`trailer` override the true total length (for damage cases)."""
    order = ">" if big_endian else "<"
    body += b"\0" * (-len(body) & 3)
    total = 12 + len(body)
    return (
        struct.pack(order + "II", block_type, total if length is None else length)
        + body
        + struct.pack(order + "I", total if trailer is None else trailer)
    )


def shb(big_endian: bool = False, major: int = 1, minor: int = 0) -> bytes:
    order = ">" if big_endian else "<"
    return block(SHB_TYPE, struct.pack(order + "IHHq", 0x1A2B3C4D, major, minor, -1), big_endian)


def option(code: int, value: bytes, big_endian: bool = False) -> bytes:
    order = ">" if big_endian else "<"
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) & 3)


def idb(
    linktype: int = 1,
    snaplen: int = 0,
    options: Sequence[bytes] = (),
    big_endian: bool = False,
) -> bytes:
    order = ">" if big_endian else "<"
    body = struct.pack(order + "HHI", linktype, 0, snaplen) + b"".join(options)
    if options:
        body += b"\0\0\0\0"  # opt_endofopt
    return block(IDB_TYPE, body, big_endian)


def epb(
    interface: int,
    units: int,
    data: bytes,
    caplen: int | None = None,
    orig_len: int | None = None,
    big_endian: bool = False,
) -> bytes:
    order = ">" if big_endian else "<"
    caplen = len(data) if caplen is None else caplen
    orig_len = len(data) if orig_len is None else orig_len
    head = struct.pack(
        order + "IIIII", interface, units >> 32, units & 0xFFFFFFFF, caplen, orig_len
    )
    return block(EPB_TYPE, head + data, big_endian)


def spb(orig_len: int, data: bytes, big_endian: bool = False) -> bytes:
    order = ">" if big_endian else "<"
    return block(SPB_TYPE, struct.pack(order + "I", orig_len) + data, big_endian)


def pcapng_bytes(
    packets: Iterable[tuple[int, bytes]], linktype: int = 1, tsresol: int = 6
) -> bytes:
    """One section, one interface, (ts_ns, data) pairs through PcapngWriter."""
    out = io.BytesIO()
    writer = PcapngWriter(out)
    writer.add_interface(linktype, tsresol=tsresol)
    for ts_ns, data in packets:
        writer.write(ts_ns, data)
    return out.getvalue()
