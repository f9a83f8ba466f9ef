"""Blocks of decoded records read straight from a capture's buffer, in C.

Theory of operation: `_scan.scan` (classic pcap) and `_scan.scan_pcapng` (the enhanced packet
blocks of a pcapng section), in C (`_scan.c`, built by `setup.py` beside the mypyc modules),
walk the records in the read buffer and return, per record, the `Segment` that `Decoder` would
return for a TCP segment of the common case, or the `RawPacket` that the reader would yield for
anything else (the engine decodes those in Python). A walk stops at what only Python handles:
a record header or block the reader must judge, any pcapng block but an enhanced packet block,
a record split across reads, the caller's next flow-table expiry time. The reader's own
per-record path (`PcapReader.read_record`, `PcapngReader.read_block`) then reads that one
record or block, and the next walk goes on after it. Frames, records, counters, notes and
damage come out exactly as from the per-packet path (`tests/unit/test_scan.py`,
`tests/unit/test_compiled_equivalence.py`).

A process that follows one shard of the flows (`engine.shard_of`) has the walk skip the
Segments of other shards: they are counted (packets, TCP packets, snap-length cuts, VLAN-tagged
frames, times), and no object is made for them. A record that goes to Python (a RawPacket) is
sharded there.

Not used (`open_blocks` returns None) when the extension was not built (a pure-Python install)
or with TCPDIAG_PURE=1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import NamedTuple

from tcpdiag._native import pure_requested
from tcpdiag.capture import Capture
from tcpdiag.capture.pcap import PcapReader
from tcpdiag.capture.pcapng import Interface, PcapngReader
from tcpdiag.capture.ring import RECORD_HEADER
from tcpdiag.decode.stats import DecodeStats
from tcpdiag.model import NO_OPTIONS, RawPacket, Segment, TcpOptions

# Records per walk: enough to amortise the call, few enough to keep a block's objects small.
BLOCK_RECORDS = 512
_INT64 = 1 << 63

# What a walk returns: items, position, last frame, why it stopped, the timestamp that reached
# the stop time, Segments among the items, Segments cut by the snap length, first and last
# timestamps of the items, Segments (and others) of VLAN-tagged frames, IP packets of other
# protocols (UDP...), counted and not made.
Walked = tuple[list[Segment | RawPacket], int, int, int, int, int, int, int, int, int, int]
WALK_FIELDS = 11


class Block(NamedTuple):
    """Consecutive records: `items` (a Segment or a RawPacket each), how many records are
    Segments (those of other shards included, which are not in `items`), the first and last
    timestamps (ns) of the block's records, and how many are IP packets of other protocols
    (not in `items`: the decoder would only have counted them)."""

    items: list[Segment | RawPacket]
    segments: int
    first_ns: int
    last_ns: int
    others: int = 0


def _native() -> ModuleType | None:
    if pure_requested():
        return None
    try:
        from tcpdiag.decode import _scan
    except ImportError:  # a pure-Python install: no C extension
        return None
    if getattr(_scan, "SEGMENT_FIELDS", None) != len(Segment._fields):
        return None  # a stale build: its Segments would not be this model's
    if getattr(_scan, "WALK_FIELDS", None) != WALK_FIELDS:
        return None  # nor its walks this module's
    _scan.configure(RawPacket, Segment, TcpOptions, NO_OPTIONS)
    return _scan


_SCAN = _native()


def available() -> bool:
    """True when the C block reader is built and allowed (not TCPDIAG_PURE)."""
    return _SCAN is not None


def open_blocks(
    capture: Capture,
    stats: DecodeStats,
    stop_ns: Callable[[], int],
    shard: tuple[int, int] = (0, 1),
) -> Iterator[Block] | None:
    """The records of `capture` as blocks, or None when the C reader is not available (then
    iterate the capture as usual). `stats` gets the counts of the Segments made in C;
    `stop_ns()` is read before each walk: no record at or after that time is decoded in C
    (the caller expires flows when it gets that record, as a RawPacket). `shard` (index,
    count): the Segments of the flows of other shards are left out of the blocks."""
    if _SCAN is None:
        return None
    reader = capture.take_reader()
    if reader is None:
        return None
    if isinstance(reader, PcapReader):
        blocks = _pcap_blocks(_SCAN, reader, stats, stop_ns, shard)
    else:
        blocks = _pcapng_blocks(_SCAN, reader, stats, stop_ns, shard)
    return _then_finish(blocks, capture)


def record_blocks(
    records: bytes,
    frame: int,
    linktype: int,
    stats: DecodeStats,
    stop_ns: Callable[[], int],
) -> Iterator[Block] | None:
    """Whole little-endian nanosecond pcap records in memory (a live capture's, `capture/ring.py`),
    numbered from `frame` + 1, as blocks; None when the C reader is not available. As
    `open_blocks`: the record that reaches `stop_ns()` comes as a RawPacket of its own."""
    if _SCAN is None:
        return None
    return _record_blocks(_SCAN, records, frame, linktype, stats, stop_ns)


def _record_blocks(
    native: ModuleType,
    records: bytes,
    frame: int,
    linktype: int,
    stats: DecodeStats,
    stop_ns: Callable[[], int],
) -> Iterator[Block]:
    pos, end = 0, len(records)
    header = RECORD_HEADER.size
    while pos < end:
        walked: Walked = native.scan(
            records, pos, frame, _clamped(stop_ns()), header, False, 1, 1_000_000_000,
            _RECORD_SNAPLEN, linktype, BLOCK_RECORDS,
        )  # fmt: skip
        pos, frame, stop = walked[1:4]
        if walked[0] or walked[5] or walked[10]:
            yield _counted(walked, stats)
        if stop == native.STOP_FULL:
            continue
        if stop == native.STOP_NEED_DATA:
            break  # the end (the caller's records are whole)
        # The record at the stop time (or one the walk would not judge): Python's path.
        sec, nsec, caplen, orig_len = RECORD_HEADER.unpack_from(records, pos)
        frame += 1
        data = records[pos + header : pos + header + caplen]
        yield _single(RawPacket(frame, sec * 1_000_000_000 + nsec, linktype, data, orig_len))
        pos += header + caplen


# Any caplen of a live record is one the packet had (the C walk's check of the file header's
# snap length has no file header to go by here).
_RECORD_SNAPLEN = (1 << 32) - 1


def _then_finish(blocks: Iterator[Block], capture: Capture) -> Iterator[Block]:
    yield from blocks
    capture.finish_reading()


def _counted(walked: Walked, stats: DecodeStats) -> Block:
    items, _, _, _, _, segments, cut, first_ns, last_ns, tagged, others = walked
    stats.packets += segments + others
    stats.tcp += segments
    stats.snaplen_truncated += cut
    stats.vlan_tagged += tagged
    stats.non_tcp += others
    return Block(items, segments, first_ns, last_ns, others)


def _single(raw: RawPacket) -> Block:
    return Block([raw], 0, raw.ts_ns, raw.ts_ns)


def _pcap_blocks(
    native: ModuleType,
    reader: PcapReader,
    stats: DecodeStats,
    stop_ns: Callable[[], int],
    shard: tuple[int, int],
) -> Iterator[Block]:
    feed = reader.feed
    fixed = (
        reader.header_len,
        reader.big_endian,
        1 if reader.nanosecond else 1000,
        1_000_000_000 if reader.nanosecond else 1_000_000,
        reader.snaplen_bound,
        reader.linktype,
        BLOCK_RECORDS,
        *shard,
    )
    frame = 0
    try:
        while True:
            walked: Walked = native.scan(feed.buf, feed.pos, frame, _clamped(stop_ns()), *fixed)
            feed.pos, frame, stop = walked[1:4]
            if walked[0] or walked[5] or walked[10]:  # items, or only records counted
                yield _counted(walked, stats)
            if stop != native.STOP_FULL:
                # Refill the buffer, judge an odd header, or hand over the record at the
                # expiry time: the reader's own path, one record.
                raw = reader.read_record(frame + 1)
                if raw is None:
                    break
                frame += 1
                yield _single(raw)
    finally:
        reader.frames = frame


def _pcapng_blocks(
    native: ModuleType,
    reader: PcapngReader,
    stats: DecodeStats,
    stop_ns: Callable[[], int],
    shard: tuple[int, int],
) -> Iterator[Block]:
    feed = reader.feed
    while not reader.ended:
        if not reader.skipping:
            table = _interface_table(reader.interfaces)
            walked: Walked = native.scan_pcapng(
                feed.buf,
                feed.pos,
                reader.frames,
                _clamped(stop_ns()),
                reader.big_endian,
                table,
                BLOCK_RECORDS,
                *shard,
            )
            feed.pos, reader.frames, stop = walked[1:4]
            if walked[0] or walked[5] or walked[10]:
                yield _counted(walked, stats)
            if stop == native.STOP_FULL:
                continue
        # Any other block, a block to judge, a refill, the record at the expiry time.
        raw = reader.read_block()
        if raw is not None:
            yield _single(raw)


def _clamped(stop_ns: int) -> int:
    """A stop time C can hold: after a timestamp beyond 64 bits (pcapng), every later one that
    fits is earlier anyway."""
    return stop_ns if stop_ns < _INT64 else _INT64 - 1


def _interface_table(interfaces: tuple[Interface, ...]) -> tuple[tuple[int, ...], ...]:
    """The interfaces as the C walk takes them. An interface whose values do not fit 64 bits
    (a huge if_tsoffset) gets a multiplier of 0: its blocks are left to Python's integers."""
    return tuple(
        (i.linktype, i.mult, i.div, i.offset_ns, i.number)
        if i.mult < _INT64 and i.div < _INT64 and -_INT64 <= i.offset_ns < _INT64
        else (i.linktype, 0, 1, 0, i.number)
        for i in interfaces
    )
