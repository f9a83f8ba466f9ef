"""Records shared by every stage: raw packets in, decoded packets between decode and flow.

These are the contracts between the stages of the pipeline

    capture -> decode -> flow -> tls -> findings -> report -> cli

and they live here, at the far left, so that every stage may import them. Per-packet records are
`NamedTuple`s (cheap to build, immutable, positional access on the hot path); flags are plain
ints tested with masks.
"""

from __future__ import annotations

import enum
import ipaddress
import zlib
from _socket import AF_INET6, inet_ntop
from typing import Final, NamedTuple

# TCP flag bits, as on the wire (byte 13 of the TCP header, plus NS in byte 12 is ignored).
# Final literals: a compiled module that imports them gets C constants, not a static to load.
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
URG: Final = 0x20
ECE: Final = 0x40
CWR: Final = 0x80


class RawPacket(NamedTuple):
    """One record of a capture, before decoding.

    `frame` is the 1-based position of the record in the capture, counting every record like
    Wireshark's `frame.number`. `ts_ns` is the capture timestamp in integer nanoseconds since
    the epoch (a float cannot hold nanoseconds at today's epoch values). `data` holds the
    captured bytes (`caplen` of them); `orig_len` is the length on the wire.
    """

    frame: int
    ts_ns: int
    linktype: int
    data: bytes
    orig_len: int
    interface: int = 0


class TcpOptions(NamedTuple):
    """Parsed TCP options. None/() where the option is absent."""

    mss: int | None = None
    wscale: int | None = None  # shift count as sent (clamped to 14 by the decoder)
    sack_permitted: bool = False
    sack: tuple[tuple[int, int], ...] = ()  # (left edge, right edge) raw 32-bit values
    ts_val: int | None = None
    ts_ecr: int | None = None


NO_OPTIONS = TcpOptions()


class Segment(NamedTuple):
    """A decoded TCP segment. Addresses are packed bytes (4 or 16); format them only for output.

    `length` is the TCP payload length according to the IP header (what was on the wire);
    `payload` is what the capture holds, which is shorter when the snap length cut the frame.

    `tuple_key` is `tuple_key(src, sport, dst, dport)`, made by the decoders: the flow table's
    key for the packet's direction. A bytes object keeps its hash once computed, and the C
    reader hands out the same object for the packets of one direction of a flow, so the table
    finds a packet's flow without building, hashing and comparing a tuple of four objects. A
    Segment made by hand may leave it empty (the table then computes it); one made with
    `_replace` of other addresses or ports must set it anew.

    `ip_id` is the IPv4 header's Identification field (0 for IPv6, which has none). A packet
    the capture recorded twice (a mirror port, a bridge seen with `-i any`) keeps it, while a
    sender numbers each packet it sends (most stacks: one counter per connection or host), so
    it tells a copy from a real resend that repeats every TCP field (`flow/rows.py`).
    """

    frame: int
    time: float  # seconds since the epoch
    ip_version: int
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int  # raw window field, unscaled
    length: int
    payload: bytes
    options: TcpOptions
    ttl: int = 0
    tuple_key: bytes = b""
    ip_id: int = 0


def tuple_key(src: bytes, sport: int, dst: bytes, dport: int) -> bytes:
    """The flow table's key of a segment sent from (src, sport) to (dst, dport): both packed
    addresses, then both ports big-endian, the bytes as they are in the IP and TCP headers."""
    # (both ports as one 4-byte number: one conversion and two concatenations, compiled 40%
    # faster than two 2-byte ones and three)
    return src + dst + (sport << 16 | dport).to_bytes(4, "big")


class IcmpError(NamedTuple):
    """An ICMP/ICMPv6 error (destination unreachable, time exceeded...) quoting a TCP header."""

    frame: int
    time: float
    ip_version: int
    sender: bytes  # the router or host that sent the ICMP message
    icmp_type: int
    icmp_code: int
    # The quoted packet's TCP 4-tuple and sequence number (from the original SYN, usually).
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int | None


class ArpPacket(NamedTuple):
    """An ARP request (op 1) or reply (op 2) for IPv4 over Ethernet."""

    frame: int
    time: float
    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_ip: bytes


class Direction(enum.IntEnum):
    """Direction of a segment within a flow: client to server, or server to client."""

    CLIENT = 0
    SERVER = 1

    @property
    def other(self) -> Direction:
        return Direction.SERVER if self is Direction.CLIENT else Direction.CLIENT


# A flow's canonical key: the two endpoints ordered so both directions give the same key.
Endpoint = tuple[bytes, int]
FlowKey = tuple[Endpoint, Endpoint]


def flow_key(src: bytes, sport: int, dst: bytes, dport: int) -> FlowKey:
    a = (src, sport)
    b = (dst, dport)
    return (a, b) if a <= b else (b, a)


def packed_key(key: FlowKey) -> bytes:
    """The 4-tuple as one bytes object: both addresses and ports in key order."""
    (a, pa), (b, pb) = key
    return a + pa.to_bytes(2, "big") + b + pb.to_bytes(2, "big")


# Flows fall into FLOW_BUCKETS buckets by a CRC-32 of their packed key (stable across processes
# and runs, unlike Python's salted hash() of bytes). The flow table keeps its limits on closed
# flows per bucket, and a shard of the flows is a set of whole buckets (`engine.shard_of`):
# a process that follows one shard then finishes every flow exactly where one process
# following all of them would. `decode/_scan.c` computes the same number.
FLOW_BUCKETS: Final = 64


def bucket_of(packed: bytes) -> int:
    """The bucket of the flow whose `packed_key` is `packed`."""
    return zlib.crc32(packed) & (FLOW_BUCKETS - 1)


# Text of recently formatted addresses: an IPv4 address is four number conversions, an IPv6
# one a C call (or ~3 us in `ipaddress`), and every finished flow formats its two endpoints
# several times, mostly the same few hosts. Emptied when full, so it stays small whatever the
# capture.
_IP_TEXT: Final[dict[bytes, str]] = {}
_IP_TEXT_MAX: Final = 4096
# IPv6 addresses whose first 80 bits are zero and the next 16 all ones or all zeros: the C
# library writes the last 32 bits of these as an IPv4 address ("::ffff:1.2.3.4"), `ipaddress`
# on Python 3.11 (the form the report has always used) in hexadecimal ("::ffff:102:304").
_V4_EMBEDDING: Final = (bytes(12), bytes(10) + b"\xff\xff")


def format_ip(addr: bytes) -> str:
    """Text form of a packed IPv4 or IPv6 address (IPv6 in RFC 5952's form)."""
    text = _IP_TEXT.get(addr)
    if text is None:
        if len(_IP_TEXT) >= _IP_TEXT_MAX:
            _IP_TEXT.clear()
        if len(addr) == 4:
            text = f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}"
        elif len(addr) == 16 and addr[:12] not in _V4_EMBEDDING:
            # The C library's RFC 5952 text: what `ipaddress` gives, ten times faster.
            text = inet_ntop(AF_INET6, addr)
        else:
            text = str(ipaddress.IPv6Address(addr))
        _IP_TEXT[addr] = text
    return text


def format_endpoint(addr: bytes, port: int) -> str:
    """'10.0.0.2:8080' or '[::1]:8080', as in the report contract."""
    if len(addr) == 4:
        return f"{format_ip(addr)}:{port}"
    return f"[{format_ip(addr)}]:{port}"


# Link-layer types (LINKTYPE_* values as stored in pcap/pcapng headers).
class LinkType(enum.IntEnum):
    NULL = 0
    ETHERNET = 1
    RAW_OLD_12 = 12  # DLT_RAW on some BSDs
    RAW_OLD_14 = 14  # DLT_RAW on OpenBSD
    RAW = 101
    LINUX_SLL = 113
    IPV4 = 228
    IPV6 = 229
    LOOP = 108
    LINUX_SLL2 = 276


LINKTYPE_NAMES = {
    0: "null",
    1: "ethernet",
    12: "raw",
    14: "raw",
    101: "raw",
    108: "loop",
    113: "linux-sll",
    228: "ipv4",
    229: "ipv6",
    276: "linux-sll2",
}


def linktype_name(linktype: int) -> str:
    return LINKTYPE_NAMES.get(linktype, f"linktype-{linktype}")
