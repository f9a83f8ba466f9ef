"""Blocks of decoded records read straight from a classic pcap file's buffer, in C.

Theory of operation: `_scan.scan` (C, `_scan.c`, built by `setup.py` beside the mypyc modules)
walks the records in the read buffer and returns, per record, the `Segment` that `Decoder`
would return for a TCP segment of the common case, or the `RawPacket` that `PcapReader` would
yield for anything else (the engine decodes those in Python). It stops at what only Python
handles: a record header the reader must judge, a record split across reads, the caller's next
flow-table expiry time; `PcapBlocks` then reads that one record with `PcapReader.read_record`
and goes on. The frames, records and counters come out exactly as from the per-packet path
(`tests/unit/test_scan.py`, `tests/unit/test_compiled_equivalence.py`).

Not used (`open_blocks` returns None) for pcapng, when the extension was not built (pure-Python
install), or with TCPDIAG_PURE=1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import NamedTuple

from tcpdiag.capture import Capture
from tcpdiag.capture.pcap import PcapReader
from tcpdiag.decode._native import pure_requested
from tcpdiag.decode.stats import DecodeStats
from tcpdiag.model import NO_OPTIONS, RawPacket, Segment, TcpOptions

# Records per call: enough to amortise the call, few enough to keep a block's objects small.
BLOCK_RECORDS = 512


class Block(NamedTuple):
    """Consecutive records: `items` (a Segment or a RawPacket each), how many are Segments,
    the first and last timestamps (ns) of the block, and the capture's link type."""

    items: list[Segment | RawPacket]
    segments: int
    first_ns: int
    last_ns: int
    linktype: int


def _native() -> ModuleType | None:
    if pure_requested():
        return None
    try:
        from tcpdiag.decode import _scan
    except ImportError:  # a pure-Python install: no C extension
        return None
    _scan.configure(RawPacket, Segment, TcpOptions, NO_OPTIONS)
    return _scan


_SCAN = _native()


def available() -> bool:
    """True when the C block reader is built and allowed (not TCPDIAG_PURE)."""
    return _SCAN is not None


def open_blocks(
    capture: Capture, stats: DecodeStats, stop_ns: Callable[[], int]
) -> Iterator[Block] | None:
    """The records of `capture` as blocks, or None when the C reader cannot read it (then
    iterate the capture as usual). `stats` gets the counts of the Segments made in C;
    `stop_ns()` is read before each call: no record at or after that time is decoded in C (the
    caller expires flows when it gets that record, as a RawPacket)."""
    if _SCAN is None:
        return None
    reader = capture.take_pcap_reader()
    if reader is None:
        return None
    return _blocks(_SCAN, capture, reader, stats, stop_ns)


def _blocks(
    native: ModuleType,
    capture: Capture,
    reader: PcapReader,
    stats: DecodeStats,
    stop_ns: Callable[[], int],
) -> Iterator[Block]:
    scan = native.scan
    full = native.STOP_FULL
    feed = reader.feed
    header_len = reader.header_len
    big_endian = reader.big_endian
    frac_mult = 1 if reader.nanosecond else 1000
    frac_limit = 1_000_000_000 if reader.nanosecond else 1_000_000
    snaplen = reader.snaplen_bound
    linktype = reader.linktype
    frame = 0
    try:
        while True:
            items, feed.pos, frame, stop, _, segments, cut, first_ns, last_ns = scan(
                feed.buf,
                feed.pos,
                frame,
                stop_ns(),
                header_len,
                big_endian,
                frac_mult,
                frac_limit,
                snaplen,
                linktype,
                BLOCK_RECORDS,
            )
            if items:
                stats.packets += segments
                stats.tcp += segments
                stats.snaplen_truncated += cut
                yield Block(items, segments, first_ns, last_ns, linktype)
            if stop != full:
                # Refill the buffer, judge an odd header, or hand over the record at the
                # expiry time: the reader's own path, one record.
                raw = reader.read_record(frame + 1)
                if raw is None:
                    break
                frame += 1
                yield Block([raw], 0, raw.ts_ns, raw.ts_ns, linktype)
    finally:
        reader.frames = frame
    capture.finish_reading()
