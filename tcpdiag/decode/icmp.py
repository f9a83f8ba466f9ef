"""ICMP and ICMPv6 errors that quote a TCP packet -> `IcmpError`.

An error quotes the offending packet's IP header and at least the first 8 bytes of its payload
(RFC 792; RFC 4443 quotes as much as fits), which for TCP are the ports and sequence number.
"""

from __future__ import annotations

import struct
from typing import Final

from tcpdiag.decode.ipv6ext import skip_extensions
from tcpdiag.decode.stats import DecodeStats
from tcpdiag.model import IcmpError

# Destination unreachable, source quench, time exceeded, parameter problem.
ICMP4_ERRORS: Final = frozenset({3, 4, 11, 12})
# Destination unreachable, packet too big, time exceeded, parameter problem.
ICMP6_ERRORS: Final = frozenset({1, 2, 3, 4})

_PORTS: Final = struct.Struct("!HH")
_SEQ: Final = struct.Struct("!I")


def icmp4_error(
    frame: int, time: float, sender: bytes, data: bytes, p: int, end: int, stats: DecodeStats
) -> IcmpError | None:
    n = min(len(data), end)
    if n - p < 8:
        stats.truncated += 1
        return None
    icmp_type, code = data[p], data[p + 1]
    q = p + 8
    if icmp_type not in ICMP4_ERRORS or n - q < 20 or data[q] >> 4 != 4 or data[q + 9] != 6:
        stats.non_tcp += 1
        return None
    t = q + ((data[q] & 15) << 2)
    return _quoted(
        frame,
        time,
        4,
        sender,
        icmp_type,
        code,
        data[q + 12 : q + 16],
        data[q + 16 : q + 20],
        data,
        t,
        n,
        stats,
    )


def icmp6_error(
    frame: int, time: float, sender: bytes, data: bytes, p: int, end: int, stats: DecodeStats
) -> IcmpError | None:
    n = min(len(data), end)
    if n - p < 8:
        stats.truncated += 1
        return None
    icmp_type, code = data[p], data[p + 1]
    q = p + 8
    if icmp_type not in ICMP6_ERRORS or n - q < 40 or data[q] >> 4 != 6:
        stats.non_tcp += 1
        return None
    proto, t, _ = skip_extensions(data, q + 40, data[q + 6], n, None)
    if proto != 6:
        stats.non_tcp += 1
        return None
    return _quoted(
        frame,
        time,
        6,
        sender,
        icmp_type,
        code,
        data[q + 8 : q + 24],
        data[q + 24 : q + 40],
        data,
        t,
        n,
        stats,
    )


def _quoted(
    frame: int,
    time: float,
    version: int,
    sender: bytes,
    icmp_type: int,
    code: int,
    src: bytes,
    dst: bytes,
    data: bytes,
    t: int,
    n: int,
    stats: DecodeStats,
) -> IcmpError | None:
    if n - t < 4:
        stats.truncated += 1
        return None
    sport, dport = _PORTS.unpack_from(data, t)
    seq = _SEQ.unpack_from(data, t + 4)[0] if n - t >= 8 else None
    stats.icmp_errors += 1
    return IcmpError(frame, time, version, sender, icmp_type, code, src, dst, sport, dport, seq)
