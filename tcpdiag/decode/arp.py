"""ARP for IPv4 over Ethernet -> `ArpPacket` (the other kinds are not our business)."""

from __future__ import annotations

import struct
from typing import Final

from tcpdiag.decode.stats import DecodeStats
from tcpdiag.model import ArpPacket

_ARP: Final = struct.Struct("!HHBBH")
_ETHER_IPV4: Final = (1, 0x0800, 6, 4)


def arp(frame: int, time: float, data: bytes, off: int, stats: DecodeStats) -> ArpPacket | None:
    if len(data) - off < 28:
        stats.truncated += 1
        return None
    htype, ptype, hlen, plen, op = _ARP.unpack_from(data, off)
    if (htype, ptype, hlen, plen) != _ETHER_IPV4:
        stats.non_ip += 1
        return None
    stats.arp += 1
    return ArpPacket(
        frame,
        time,
        op,
        data[off + 8 : off + 14],
        data[off + 14 : off + 18],
        data[off + 24 : off + 28],
    )
