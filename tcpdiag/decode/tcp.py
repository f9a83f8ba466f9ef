"""TCP header and options -> `Segment`."""

from __future__ import annotations

import struct
from typing import Final

from tcpdiag.decode.stats import DecodeStats
from tcpdiag.model import NO_OPTIONS, Segment, TcpOptions

_TCP: Final = struct.Struct("!HHIIBBH")
# NamedTuple construction without the generated Python-level __new__ (same objects, ~2x faster).
_tuple_new: Final = tuple.__new__
_PAIR: Final = struct.Struct("!II")
# The option block most data segments carry (NOP, NOP, timestamps): parsed without the walk.
_NOP_NOP_TS: Final = b"\x01\x01\x08\x0a"
MAX_WSCALE: Final = 14  # RFC 7323 section 2.3: larger shifts are treated as 14
# The model's records as Final names: compiled with mypyc, these are read from C statics
# instead of being looked up in the module's dict for every packet.
_SEGMENT: Final = Segment
_TCP_OPTIONS: Final = TcpOptions
_NO_OPTIONS: Final = NO_OPTIONS


def segment(
    frame: int,
    time: float,
    version: int,
    src: bytes,
    dst: bytes,
    ttl: int,
    ip_id: int,
    data: bytes,
    off: int,
    end: int,
    stats: DecodeStats,
) -> Segment | None:
    """The TCP header at data[off:]; `end` is where the IP payload ends per the IP header (it
    may lie beyond the captured bytes)."""
    n = len(data)
    if end - off < 20:
        stats.bad_tcp_header += 1
        return None
    if n - off < 20:
        stats.truncated += 1
        return None
    # The fields only travel into the Segment as they are; the data offset is read as a byte
    # (an int to mypyc, where the unpacked value is Any and its arithmetic generic).
    sport, dport, seq, ack, _, flags, window = _TCP.unpack_from(data, off)
    hlen = (data[off + 12] >> 4) << 2
    if hlen < 20 or off + hlen > end:
        stats.bad_tcp_header += 1
        return None
    p = off + hlen
    if p > n:
        stats.truncated += 1
        return None
    if hlen == 20:
        opts = _NO_OPTIONS
    elif hlen == 32 and data[off + 20 : off + 24] == _NOP_NOP_TS:
        ts_val, ts_ecr = _PAIR.unpack_from(data, off + 24)
        opts = _tuple_new(_TCP_OPTIONS, (None, None, False, (), ts_val, ts_ecr))
    else:
        opts = options(data, off + 20, p, stats)
    payload = data[p:end]  # slicing stops at the captured end by itself
    length = end - p
    if len(payload) < length:
        stats.snaplen_truncated += 1
    stats.tcp += 1
    return _tuple_new(
        _SEGMENT,
        (
            frame,
            time,
            version,
            src,
            dst,
            sport,
            dport,
            seq,
            ack,
            flags,
            window,
            length,
            payload,
            opts,
            ttl,
            src + dst + data[off : off + 4],  # `model.tuple_key`: the ports as on the wire
            ip_id,
        ),
    )


def options(data: bytes, p: int, end: int, stats: DecodeStats) -> TcpOptions:
    """Walk data[p:end]. Every step advances; a malformed option ends the walk (what was parsed
    before it is kept) and is counted."""
    mss: int | None = None
    wscale: int | None = None
    sack_permitted = False
    sack: tuple[tuple[int, int], ...] = ()
    ts_val: int | None = None
    ts_ecr: int | None = None
    while p < end:
        kind = data[p]
        if kind == 0:  # end of option list
            break
        if kind == 1:  # no-operation
            p += 1
            continue
        if p + 1 >= end:
            stats.bad_tcp_options += 1
            break
        size = data[p + 1]
        if size < 2 or p + size > end:
            stats.bad_tcp_options += 1
            break
        if kind == 2 and size == 4:
            mss = (data[p + 2] << 8) | data[p + 3]
        elif kind == 3 and size == 3:
            wscale = data[p + 2]
            if wscale > MAX_WSCALE:
                stats.wscale_clamped += 1
                wscale = MAX_WSCALE
        elif kind == 4 and size == 2:
            sack_permitted = True
        elif kind == 5 and size >= 10 and (size - 2) % 8 == 0:
            sack = tuple(_PAIR.unpack_from(data, q) for q in range(p + 2, p + size, 8))
        elif kind == 8 and size == 10:
            ts_val, ts_ecr = _PAIR.unpack_from(data, p + 2)
        p += size
    return _TCP_OPTIONS(mss, wscale, sack_permitted, sack, ts_val, ts_ecr)
