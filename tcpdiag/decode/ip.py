"""IPv4 and IPv6 headers: find the transport header, bound the payload by the IP length.

The IP length, not the frame length, says where the payload ends: Ethernet pads short frames to
60 bytes, and those padding bytes must not become TCP payload. A length of 0 is what Linux
writes for TSO/GRO super-packets; then the frame's length on the wire is used instead.
"""

from __future__ import annotations

import struct
from typing import Final

from tcpdiag.decode.icmp import icmp4_error, icmp6_error
from tcpdiag.decode.ipv6ext import skip_extensions
from tcpdiag.decode.stats import DecodeStats
from tcpdiag.decode.tcp import segment
from tcpdiag.model import IcmpError, Segment

_IP4: Final = struct.Struct("!BxHHHBB2x4s4s")
_IP6: Final = struct.Struct("!BxxxHBB16s16s")


def ipv4(
    frame: int, time: float, data: bytes, off: int, wire_len: int, stats: DecodeStats
) -> Segment | IcmpError | None:
    if len(data) - off < 20:
        stats.truncated += 1
        return None
    # Declared types: compiled (mypyc), the header fields are then machine integers; unpacked
    # as they come (Any), every test below would be a generic Python operation.
    vihl: int
    total: int
    ip_id: int
    frag: int
    ttl: int
    proto: int
    src: bytes
    dst: bytes
    vihl, total, ip_id, frag, ttl, proto, src, dst = _IP4.unpack_from(data, off)
    ihl = (vihl & 15) << 2
    if vihl >> 4 != 4 or ihl < 20 or (total and total < ihl):
        stats.bad_ip_header += 1
        return None
    end = off + total if total else wire_len
    if end > wire_len:
        stats.ip_length_exceeds_frame += 1
        end = wire_len
    if frag & 0x3FFF:  # more-fragments flag or a fragment offset
        stats.ipv4_fragments += 1
        if frag & 0x1FFF or end - off - ihl < 20:
            # Only a first fragment holding a whole TCP header is of use without reassembly.
            stats.fragments_skipped += 1
            return None
    if proto == 6:
        return segment(frame, time, 4, src, dst, ttl, ip_id, data, off + ihl, end, stats)
    if proto == 1:
        return icmp4_error(frame, time, src, data, off + ihl, end, stats)
    stats.non_tcp += 1
    return None


def ipv6(
    frame: int, time: float, data: bytes, off: int, wire_len: int, stats: DecodeStats
) -> Segment | IcmpError | None:
    if len(data) - off < 40:
        stats.truncated += 1
        return None
    vtc: int  # declared types: see ipv4
    plen: int
    nh: int
    hlim: int
    src: bytes
    dst: bytes
    vtc, plen, nh, hlim, src, dst = _IP6.unpack_from(data, off)
    if vtc >> 4 != 6:
        stats.bad_ip_header += 1
        return None
    p = off + 40
    end = p + plen if plen else wire_len  # 0: jumbogram or TSO
    if end > wire_len:
        stats.ip_length_exceeds_frame += 1
        end = wire_len
    if nh != 6:
        nh, p, first_fragment = skip_extensions(data, p, nh, end, stats)
        if nh < 0:
            return None
        if first_fragment and nh == 6 and end - p < 20:
            stats.fragments_skipped += 1  # as for IPv4: no whole TCP header in it
            return None
    if nh == 6:
        return segment(frame, time, 6, src, dst, hlim, 0, data, p, end, stats)
    if nh == 58:
        return icmp6_error(frame, time, src, data, p, end, stats)
    stats.non_tcp += 1
    return None
