"""The flow table: which `Flow` a segment belongs to, and when flows end.

Theory of operation: flows are keyed by the canonical 4-tuple (`model.flow_key`); the table
holds the current incarnation per key (and finds a tracked flow's packets by their own
(src, sport, dst, dport) first, without building the canonical key). For each segment `add()`:

1. looks up the key; a SYN (no ACK) from a side that has already sent on this flow starts a
   new incarnation when its ISN differs from that side's ISN (Wireshark's port reuse), or when
   the ISN is the same but the previous incarnation completed a handshake and closed (FIN or
   RST). The same ISN otherwise is a SYN retransmission, also after a RST (a client retrying a
   refused connect() keeps its ISN; tshark 4.0 keeps it in one stream too). The new flow records
   `port-reused` on that SYN's frame and the previous incarnation's sequence spaces (to notice
   stale segments) and close time. A SYN-ACK with a new ISN is flagged `port-reused` like
   Wireshark does, but stays in the flow it answers.
2. creates a flow when none exists (client = SYN sender, else the SYN-ACK's receiver, else the
   first packet's sender with `client_inferred`), calls `on_open(flow)`;
3. hands the segment to `Flow.process`.

Embryonic connections are cheap: a 4-tuple that so far has only pure SYNs from one side (same
ISN, no payload) is kept as a compact `_Embryo` (its flow id and the segments) instead of a
`Flow`; the `Flow` is built, `on_open` called and the stored SYNs replayed when anything else
arrives on the tuple, or when the embryo is finalised. This keeps SYN floods and unanswered
connection attempts to about a kilobyte each (their SYNs packed once unanswered for
`IDLE_COMPACT`). `add()` returns None for such segments.

Lifetime (capture time only): a closed flow (both FINs ACKed, or a RST) stays in the table so
that retransmitted FINs/RSTs and late ACKs still belong to it, until a new SYN reuses the tuple,
or it has been silent for `Limits.close_linger` (60 s, TIME_WAIT: after it no stack would accept
a segment of the old connection), whichever comes first; at most `Limits.max_closed_flows`
closed flows linger at once, counted per bucket of flows (`buckets.py`: each bucket has its
share of the limit, and beyond it the bucket's flow closed longest ago is finalised early: a
lingering flow holds its whole state, and a busy link closes hundreds of connections a second).
Any other flow is finalised after `Limits.idle_timeout` of silence; one silent for
`IDLE_COMPACT` first dozes (drops its copy of delivered bytes; packs its TLS stream when
`PACK_QUIET_AFTER` quiet flows hold theirs unpacked already). When
`Limits.max_flows` flows are tracked, the table evicts a lingering closed flow first, then the
oldest embryonic one (SYNs only), then the least recently active one (`evictions` counts them).
Finalising calls `Flow.finish()` then `on_close(flow)` and forgets the flow, so memory is
bounded by concurrent flows. A finalised flow leaves a packed tomb (4-tuple, end time, sequence
spaces) for `idle_timeout`, at most `TOMBS_PER_CLOSED_FLOW` x `max_closed_flows` of them (per
bucket too), to recognise a later reuse of its ports.
"""

from __future__ import annotations

import itertools
import struct
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Final

from tcpdiag.config import AnalysisOptions
from tcpdiag.flow.buckets import BucketQueues
from tcpdiag.flow.flow import Flow
from tcpdiag.flow.seq import seq_add
from tcpdiag.model import (
    ACK,
    FIN,
    RST,
    SYN,
    Direction,
    FlowKey,
    RawPacket,
    Segment,
    TcpOptions,
    bucket_of,
    flow_key,
    packed_key,
    tuple_key,
)

# The class itself, compiled into a static: a name imported from another module is looked up
# in that module's dict each time (`add_run` checks every record of a block).
_SEGMENT: Final = Segment

CLIENT: Final = Direction.CLIENT
SERVER: Final = Direction.SERVER

FlowCallback = Callable[[Flow], None]
# A tomb, packed (tens of thousands are kept, ~200 bytes each with the packed 4-tuple as key):
# end time, established-and-closed, finalised before its linger ended (`max_closed_flows`), how
# many endpoints follow; then per endpoint with a known sequence space: its side of the flow key
# (0 or 1), ISN or base, next sequence number or 0.
_Tomb = bytes
_TOMB_HEAD: Final = struct.Struct("<d??B")
_TOMB_ENDPOINT: Final = struct.Struct("<BII")
# Tombs kept per lingering closed flow allowed (`Limits.max_closed_flows`): port reuse is still
# recognised for the connections closed in the last minutes of a busy link.
TOMBS_PER_CLOSED_FLOW: Final = 4

# How often (capture seconds) `add` sweeps for idle flows on its own.
SWEEP_INTERVAL: Final = 1.0
# A forward jump of the capture clock larger than this needs a second packet to confirm it.
SUSPICIOUS_JUMP: Final = 86_400.0
# How far from the least recently used end `add` looks for an embryonic flow to evict.
EVICTION_SCAN: Final = 64
# A flow silent this long (capture seconds) dozes (`Flow.doze`): it drops its copy of delivered
# bytes and, once many quiet flows hold theirs (`PACK_QUIET_AFTER`), packs its TLS stream into
# one bytes object. A connection left open but idle, common behind keep-alive pools, then costs
# ~40% less while it waits for `Limits.idle_timeout`.
IDLE_COMPACT: Final = 10.0
# Packing a TLS stream and unpacking it when its connection wakes or ends cost ~800,000
# instructions (~250 us, compiled), which pays only when many connections wait at once. A flow
# that goes quiet while this many quiet flows hold their streams unpacked packs its own: at most
# this many stay unpacked (~6 KB more each), and thousands of idle keep-alive connections still
# cost ~2 KB each. On the 2M-packet benchmark capture a worker packed ~550 streams, 3% of its
# instructions; with 256 it packs ~390 and peaks 1 MB higher (with 512: ~150 and 3 MB; with
# 1,024: none and 4 MB, which would have cost the benchmark's peak memory ~4%).
PACK_QUIET_AFTER: Final = 256
# SYN retransmissions an embryo stores before it becomes a full Flow.
EMBRYO_MAX_SEGMENTS: Final = 8
# Frames kept as evidence of packets that came after their flow was finalised early.
LATE_FRAMES_KEPT: Final = 10


# An embryo's SYNs once it has waited `IDLE_COMPACT` for an answer (`_Embryo.compact`): per
# SYN frame, time, seq, ack, flags, window, MSS, TTL, IP version, window scale, presence bits
# (`_SYN_*`), TSval, TSecr, IP ID. The rest of a pure SYN is known: no payload, no SACK blocks,
# the addresses and ports of the flow key. 44 bytes instead of ~500 for a Segment and its
# options.
# (Final: compiled, each is then a C constant, not a lookup in the module's dictionary.)
_SYN_RECORD: Final = struct.Struct("<QdIIHHHBBBBIIH")
_SYN_FROM_SECOND: Final = 1  # the sender is the flow key's second (address, port)
_SYN_MSS: Final = 2
_SYN_WSCALE: Final = 4
_SYN_SACK_PERMITTED: Final = 8
_SYN_TS_VAL: Final = 16
_SYN_TS_ECR: Final = 32


def _pack_syn(seg: Segment, key: FlowKey) -> bytes | None:
    """`seg` as a `_SYN_RECORD`, or None when it does not fit one exactly: when
    `_unpack_syn` would not give back a Segment equal to `seg`."""
    # Positionally: compiled, a NamedTuple's field by name is a generic attribute lookup.
    (frame, time, version, src, _, sport, _, seq, ack, flags, window, length, payload, o, ttl,
     _, ip_id) = seg  # fmt: skip
    mss, wscale, sack_permitted, sack, ts_val, ts_ecr = o
    if payload or length or sack or type(sack_permitted) is not bool:
        return None
    if (src, sport) == key[0]:
        bits = 0
    elif (src, sport) == key[1]:
        bits = _SYN_FROM_SECOND
    else:
        return None
    if mss is not None:
        bits |= _SYN_MSS
    if wscale is not None:
        bits |= _SYN_WSCALE
    if sack_permitted:
        bits |= _SYN_SACK_PERMITTED
    if ts_val is not None:
        bits |= _SYN_TS_VAL
    if ts_ecr is not None:
        bits |= _SYN_TS_ECR
    try:
        record = _SYN_RECORD.pack(
            frame, time, seq, ack, flags, window, mss or 0, ttl, version, wscale or 0, bits,
            ts_val or 0, ts_ecr or 0, ip_id,
        )  # fmt: skip
    except struct.error:  # a value out of its field's range
        return None
    # What `_unpack_syn` would give back, as plain tuples (equal to the Segment and TcpOptions
    # it would make, item by item, without making them), compared with `seg`.
    return record if _syn_fields(record, 0, key) == seg else None


def _syn_fields(
    packed: bytes, at: int, key: FlowKey
) -> tuple[
    int, float, int, bytes, bytes, int, int, int, int, int, int, int, bytes,
    tuple[int | None, int | None, bool, tuple[tuple[int, int], ...], int | None, int | None],
    int, bytes, int,
]:  # fmt: skip
    """The fields of the Segment a `_SYN_RECORD` stands for, its options as a plain tuple."""
    # Declared: compiled, the values are then native ints (`bits & ...` a C operation, not a
    # generic one on objects).
    frame: int
    time: float
    seq: int
    ack: int
    flags: int
    window: int
    mss: int
    ttl: int
    version: int
    wscale: int
    bits: int
    ts_val: int
    ts_ecr: int
    ip_id: int
    frame, time, seq, ack, flags, window, mss, ttl, version, wscale, bits, ts_val, ts_ecr, ip_id = (
        _SYN_RECORD.unpack_from(packed, at)
    )
    (src, sport), (dst, dport) = (key[1], key[0]) if bits & _SYN_FROM_SECOND else key
    options = (
        mss if bits & _SYN_MSS else None,
        wscale if bits & _SYN_WSCALE else None,
        bool(bits & _SYN_SACK_PERMITTED),
        (),
        ts_val if bits & _SYN_TS_VAL else None,
        ts_ecr if bits & _SYN_TS_ECR else None,
    )
    return (
        frame, time, version, src, dst, sport, dport, seq, ack, flags, window, 0, b"", options, ttl,
        tuple_key(src, sport, dst, dport), ip_id,
    )  # fmt: skip


def _unpack_syn(packed: bytes, at: int, key: FlowKey) -> Segment:
    (frame, time, version, src, dst, sport, dport, seq, ack, flags, window, length, payload,
     options, ttl, key_bytes, ip_id) = _syn_fields(packed, at, key)  # fmt: skip
    return _new_segment(
        (frame, time, version, src, dst, sport, dport, seq, ack, flags, window, length, payload,
         _new_options(options), ttl, key_bytes, ip_id)
    )  # fmt: skip


def _new_segment(fields: tuple[object, ...]) -> Segment:
    """`Segment(*fields)` the way the C reader makes one: compiled, calling the class runs the
    NamedTuple's interpreted `__new__` (~3,000 instructions; a SYN flood replays SYNs)."""
    return tuple.__new__(Segment, fields)


def _new_options(fields: tuple[object, ...]) -> TcpOptions:
    """`TcpOptions(*fields)`, as `_new_segment`."""
    return tuple.__new__(TcpOptions, fields)


def _resent(
    first: Segment, frame: int, time: float, ttl: int, ts_val: int | None, ip_id: int
) -> Segment:
    """`first` sent again as `frame` at `time`, with its TTL, TSval and IP ID (built
    positionally: `_replace` is interpreted Python)."""
    (_, _, version, src, dst, sport, dport, seq, ack, flags, window, length, payload, o, _,
     key_bytes, _) = first  # fmt: skip
    mss, wscale, sack_permitted, sack, _, ts_ecr = o
    return _new_segment(
        (frame, time, version, src, dst, sport, dport, seq, ack, flags, window, length, payload,
         _new_options((mss, wscale, sack_permitted, sack, ts_val, ts_ecr)), ttl, key_bytes,
         ip_id)
    )  # fmt: skip


# A SYN an embryo holds: the whole Segment, or (frame, time, TTL, TSval, IP ID) of a
# retransmission that differs from the first SYN in nothing else.
_Syn = Segment | tuple[int, float, int, int | None, int]


class _Embryo:
    """A tuple that has seen only pure SYNs (same sender, same ISN, no payload) so far."""

    __slots__ = ("end", "held", "id", "key", "packed", "segs", "tomb", "whole")

    def __init__(self, flow_id: int, key: FlowKey, seg: Segment, tomb: _Tomb | None) -> None:
        self.id = flow_id
        self.key = key
        self.held: Hashable = key  # the key object in the table (see `FlowTable._flows`)
        # The first SYN, then each retransmission: as (frame, time, ttl, TSval, IP ID) when only
        # those differ from the first (the usual case), else the whole Segment. Most embryos live
        # milliseconds (until the SYN-ACK); one left unanswered for `IDLE_COMPACT` is packed
        # (`compact`: thousands of them wait minutes on a busy link, and more in a SYN flood).
        self.segs: list[_Syn] | None = [seg]
        self.packed: bytes | None = None  # the SYNs as `_SYN_RECORD`s, once compacted
        # A SYN that does not fit a record stays in `segs` for good: not tried again each sweep.
        self.whole = False
        self.end = seg.time
        self.tomb = tomb

    def _expanded(self) -> list[_Syn]:
        """The list form, unpacking a compacted embryo (a late retransmission)."""
        segs = self.segs
        if segs is None:
            segs = []
            segs.extend(self.segments())
            self.segs = segs
            self.packed = None
        return segs

    def first(self) -> Segment:
        if self.packed is not None:
            return _unpack_syn(self.packed, 0, self.key)
        first = self._expanded()[0]
        assert isinstance(first, Segment)
        return first

    def count(self) -> int:
        packed = self.packed
        return len(self._expanded()) if packed is None else len(packed) // _SYN_RECORD.size

    def add(self, seg: Segment) -> None:
        segs = self._expanded()
        first = segs[0]
        assert isinstance(first, Segment)
        # Positionally: compiled, a NamedTuple's field by name is a generic attribute lookup,
        # and a slice of one a new tuple (SYN floods and unanswered connects repeat this).
        (frame, time, version, src, dst, sport, dport, seq, ack, flags, window, length, payload,
         so, ttl, _, ip_id) = seg  # fmt: skip
        (_, _, f_version, f_src, f_dst, f_sport, f_dport, f_seq, f_ack, f_flags, f_window,
         f_length, f_payload, fo, _, _, _) = first  # fmt: skip
        mss, wscale, sack_permitted, sack, ts_val, ts_ecr = so
        f_mss, f_wscale, f_sack_permitted, f_sack, _, f_ts_ecr = fo
        # Equal to the first SYN but for frame, time, TTL, TSval and IP ID (a NamedTuple's
        # `_replace` is interpreted Python, ~1.5 us a call).
        if (
            version == f_version and src == f_src and dst == f_dst and sport == f_sport
            and dport == f_dport and seq == f_seq and ack == f_ack and flags == f_flags
            and window == f_window and length == f_length and payload == f_payload
            and mss == f_mss and wscale == f_wscale and sack_permitted == f_sack_permitted
            and sack == f_sack and ts_ecr == f_ts_ecr
        ):  # fmt: skip
            segs.append((frame, time, ttl, ts_val, ip_id))
        else:
            segs.append(seg)
        if time > self.end:
            self.end = time

    def segments(self) -> list[Segment]:
        packed = self.packed
        if packed is not None:
            size = _SYN_RECORD.size
            return [_unpack_syn(packed, at, self.key) for at in range(0, len(packed), size)]
        segs = self._expanded()
        first = segs[0]
        assert isinstance(first, Segment)
        out = [first]
        for s in segs[1:]:
            if isinstance(s, Segment):
                out.append(s)
            else:
                # (unpacked, not `*s`: compiled, a call with `*` is a generic one)
                frame, time, ttl, ts_val, ip_id = s
                out.append(_resent(first, frame, time, ttl, ts_val, ip_id))
        return out

    def compact(self) -> None:
        """Pack the SYNs (`_SYN_RECORD`), unless one does not fit a record exactly."""
        if self.packed is not None or self.whole:
            return
        records = []
        for seg in self.segments():
            record = _pack_syn(seg, self.key)
            if record is None:
                self.whole = True
                return
            records.append(record)
        self.packed = b"".join(records)
        self.segs = None

    def takes(self, seg: Segment) -> bool:
        first = self.first()
        return (
            seg.flags & (SYN | ACK | FIN | RST) == SYN
            and not seg.length
            and seg.seq == first.seq
            and seg.src == first.src
            and seg.sport == first.sport
            and self.count() < EMBRYO_MAX_SEGMENTS
        )


def _bucket(key: FlowKey) -> int:
    return bucket_of(packed_key(key))


def _last_frame(flow: Flow) -> int:
    return flow.last_frame


def _pure_syn(seg: Segment) -> bool:
    return seg.flags & (SYN | ACK | FIN | RST) == SYN and not seg.length


class FlowTable:
    """Demultiplexes segments into flows. See the module docstring for the rules.

    Counters: `flows_created`, `evictions`, `expired` (idle timeouts), `reused` (new
    incarnations on a 4-tuple), `max_concurrent`, `closed_early` (see `_linger_closed`),
    `late_after_early_close` (connections that sent a packet within their linger after being
    finalised early, each then followed as a new flow; `late_after_early_close_frames` holds
    the first `LATE_FRAMES_KEPT` such packets).
    """

    def __init__(
        self,
        options: AnalysisOptions | None = None,
        on_open: FlowCallback | None = None,
        on_close: FlowCallback | None = None,
        sweeps: bool = True,
    ) -> None:
        self.options = options or AnalysisOptions()
        self.on_open = on_open
        self.on_close = on_close
        # The frame of the segment being added (or, from the caller, of the record at which it
        # expires flows): what `on_close` sees as the moment a flow was finished.
        self.frame = 0
        # LRU order, oldest first; an entry is a Flow or a compact embryo (SYNs only). Keyed by
        # FlowKey, but held as `Hashable`: compiled, a `FlowKey` variable holds its two tuples
        # unboxed, and each use as a dict key would build a new tuple of them (equal, not the
        # same object: the dict then compares them item by item).
        self._flows: OrderedDict[Hashable, Flow | _Embryo] = OrderedDict()
        # `_flows.move_to_end`, bound once: called for every packet, and compiled, a method
        # call on an OrderedDict looks the method up by name each time.
        self._flows_to_end: Callable[[Hashable], None] = self._flows.move_to_end
        # The key `_process` last moved to the end of `_flows`, while it is still last there
        # (None once anything else changes `_flows`): consecutive packets of one flow, most
        # of a capture's, then skip the call (~260 instructions a packet, compiled).
        self._last_key: Hashable | None = None
        # The entries silent for `IDLE_COMPACT` at a sweep, already compacted, moved out of
        # `_flows` in LRU order: the table's whole LRU order is `_dozing` then `_flows`. A
        # sweep then compacts only the entries that went quiet since the last one, instead of
        # walking every quiet entry each capture second (thousands of lingering closed flows and
        # idle connections, for the minutes of `idle_timeout`). A packet wakes its entry.
        self._dozing: OrderedDict[Hashable, Flow | _Embryo] = OrderedDict()
        # The quiet flows (of `_dozing`) that hold their stream unpacked; a flow that goes quiet
        # while `pack_quiet_after` of them do packs its own (PACK_QUIET_AFTER; an attribute so
        # that tests can lower it).
        self._quiet_streams: set[Hashable] = set()
        self.pack_quiet_after = PACK_QUIET_AFTER
        # Closed flows lingering, and tombs, in queues per bucket of flows with a share of their
        # limit each (`buckets.py`: a shard of the flows then keeps and drops the same ones).
        self._closing: BucketQueues[Flow] = BucketQueues(self.options.limits.max_closed_flows)
        # Each Flow of `_flows` under the `model.tuple_key` of each of its two directions, with
        # the direction a packet with that key goes and the very key object `_flows` holds:
        # `add` finds a packet's flow by the key its Segment carries, and moves it to the end
        # of the LRU order without building, ordering or comparing a canonical key. The last
        # item says whether the dict holds the key object of a Segment of that direction
        # (`add` swaps it in at the first one): the C reader hands the packets of a direction
        # one bytes object (`_scan.c`'s key cache), which the dict then finds by identity
        # instead of comparing the bytes of a key made here (~200 instructions a packet).
        self._by_tuple: dict[bytes, tuple[Flow, Direction, Hashable, bool]] = {}
        # The limits read for every packet (options are not changed once analysis starts).
        self._idle_timeout = self.options.limits.idle_timeout
        self._closed_linger = min(self._idle_timeout, self.options.limits.close_linger)
        # Finalised-by-timeout flows, kept tiny for `idle_timeout` to recognise port reuse.
        self._tombs: BucketQueues[_Tomb] = BucketQueues(
            self.options.limits.max_closed_flows, TOMBS_PER_CLOSED_FLOW
        )  # by `packed_key` (a tuple of tuples would cost ~300 bytes more per tomb)
        self._next_id = 1
        # With `sweeps`, the table expires idle flows itself, every `SWEEP_INTERVAL` of the
        # time of its own packets; without, only when the caller says (`expire`). The engine
        # does, once a second of capture time at whatever record reaches it, so that flows are
        # finished at the same records whichever of the capture's flows a table follows (one
        # shard's, or all; `split.py`).
        self._last_sweep = float("-inf") if sweeps else float("inf")
        self._clock = float("-inf")
        self._jump: float | None = None
        self.flows_created = 0
        self.evictions = 0
        self.expired = 0
        self.reused = 0
        self.max_concurrent = 0
        self.closed_early = 0  # closed flows finalised before their linger (max_closed_flows)
        self.late_after_early_close = 0
        self.late_after_early_close_frames: list[int] = []

    @property
    def clock(self) -> float:
        """The table's capture clock (seconds; see `_advance_clock`)."""
        return self._clock

    def __len__(self) -> int:
        return len(self._flows) + len(self._dozing)

    def __iter__(self) -> Iterator[Flow]:
        """The flows being tracked, least recently active first (embryos are built into
        Flows first)."""
        return iter([self._flow(entry) for entry in self._entries()])

    def _entries(self) -> list[Flow | _Embryo]:
        """Every entry, least recently active first."""
        return [*self._dozing.values(), *self._flows.values()]

    def _entry(self, key: Hashable) -> Flow | _Embryo | None:
        entry = self._flows.get(key)
        if entry is None and self._dozing:
            entry = self._dozing.get(key)
        return entry

    def _touch(self, key: Hashable) -> None:
        """`key`'s entry is now the most recently active one (woken if it was dozing)."""
        self._last_key = None
        try:
            self._flows.move_to_end(key)
        except KeyError:
            self._flows[key] = self._dozing.pop(key)
            self._quiet_streams.discard(key)

    def get(self, key: FlowKey) -> Flow | None:
        entry = self._entry(key)
        return None if entry is None else self._flow(entry)

    def _flow(self, entry: Flow | _Embryo) -> Flow:
        return self._materialize(entry) if isinstance(entry, _Embryo) else entry

    def _materialize(self, e: _Embryo) -> Flow:
        """Build the Flow of an embryo in place (same id, same LRU position) and replay it."""
        segs = e.segments()
        first = segs[0]
        flow = self._create(e.key, first, flow_id=e.id, held=e.held)
        if e.tomb is not None:
            self._reuse_after_tomb(flow, e.tomb, first)
        for seg in segs:
            flow.process(seg, flow.direction_of(seg.src, seg.sport))
        return flow

    # ------------------------------------------------------------------ per packet

    def add(self, seg: Segment) -> Flow | None:
        """Account one TCP segment (capture order). Returns the flow it belongs to, or None
        while the tuple is only an embryo (pure SYNs; see the module docstring)."""
        t = seg.time
        self.frame = seg[0]  # (by index: compiled, a NamedTuple field by name is looked up)
        clock = self._clock
        if clock < t and t - clock <= SUSPICIOUS_JUMP and self._jump is None:
            now = self._clock = t  # the common case of `_advance_clock`
        else:
            now = self._advance_clock(t)
        if now - self._last_sweep >= SWEEP_INTERVAL:
            self._last_sweep = now
            self.expire(now)
        # The key the decoder made (`Segment.tuple_key`, by index: see above); a Segment made
        # by hand may have none.
        key = seg[15]
        if not key:
            key = tuple_key(seg.src, seg.sport, seg.dst, seg.dport)
        by_tuple = self._by_tuple
        hit = by_tuple.get(key)
        if hit is not None:
            # Fast path: a packet of a tracked flow that is neither a SYN nor late.
            flow, d, held, segments_key = hit
            if not segments_key:  # hold this Segment's key object from now on (see there)
                del by_tuple[key]
                by_tuple[key] = (flow, d, held, True)
            if not seg.flags & SYN and now - flow.end <= (
                self._closed_linger if flow.closed else self._idle_timeout
            ):
                self._process(held, flow, seg, d)
                return flow
        return self._add_slow(seg, now)

    def add_run(self, items: list[Segment | RawPacket], start: int) -> int:
        """`add` each Segment of `items` from `start` on, up to the first item that is not a
        Segment; the index of that item (or `len(items)`). For the engine's blocks of records
        decoded in C: this loop, compiled, costs less per packet than the engine's own."""
        n = len(items)
        i = start
        while i < n:
            item = items[i]
            if type(item) is not _SEGMENT:
                return i
            self.add(item)
            i += 1
        return n

    def _add_slow(self, seg: Segment, now: float) -> Flow | None:
        """`add` for what its fast path does not take: a new tuple, an embryo, a SYN, a packet
        after its flow's linger time."""
        key = flow_key(seg.src, seg.sport, seg.dst, seg.dport)
        entry = self._entry(key)
        flags = seg.flags
        if isinstance(entry, _Embryo):
            if entry.takes(seg) and now - entry.end <= self._idle_timeout:
                entry.add(seg)
                self._touch(key)
                return None
            entry = self._materialize(entry)
        flow = entry
        if flow is not None:
            d = flow.direction_of(seg.src, seg.sport)
            if flags & SYN:
                fwd = flow.endpoint(d)
                if not flags & ACK:
                    if fwd.base is not None and self._new_incarnation(flow, fwd.isn, seg):
                        flow = self._reuse(key, flow, seg)
                elif fwd.base is not None and fwd.isn != seg.seq:
                    c_isn = flow.c.isn
                    if flow.closed and (c_isn is None or seg.ack != seq_add(c_isn, 1)):
                        flow = self._reuse(key, flow, seg)
                    else:
                        flow.flag_reused(seg.frame)
            elif now - flow.end > self._linger(flow):
                self._finalize(flow, timed_out=True)
                flow = self._create(key, seg)
        else:
            tomb = None
            if self._tombs.size:
                packed = packed_key(key)
                tomb = self._tombs.pop(bucket_of(packed), packed)
            if tomb is not None and not flags & SYN:
                self._count_late(tomb, seg, now)
            if _pure_syn(seg):
                if len(self) >= self.options.limits.max_flows:
                    self._evict_one()
                embryo = _Embryo(self._next_id, key, seg, tomb)
                self._flows[embryo.held] = embryo
                self._last_key = None
                self._next_id += 1
                if len(self) > self.max_concurrent:
                    self.max_concurrent = len(self)
                return None
            flow = self._create(key, seg)
            if tomb is not None and flags & SYN:
                self._reuse_after_tomb(flow, tomb, seg)
        self._process(key, flow, seg, flow.direction_of(seg.src, seg.sport))
        return flow

    def _process(self, key: Hashable, flow: Flow, seg: Segment, d: Direction) -> None:
        """Hand the segment to its flow, now the most recently active one; a flow it closes
        starts to linger."""
        if key is not self._last_key:
            try:
                self._flows_to_end(key)
            except KeyError:  # (`_touch`, inlined: the per-packet path)
                self._flows[key] = self._dozing.pop(key)
                self._quiet_streams.discard(key)
            self._last_key = key
        was_closed = flow.closed
        flow.process(seg, d)
        if flow.closed:
            if was_closed:
                self._closing.touch(_bucket(flow.key), key)
            else:
                self._linger_closed(key, flow)

    def _linger_closed(self, key: Hashable, flow: Flow) -> None:
        """A flow just closed: it lingers for late packets, but at most `max_closed_flows` do
        (the one closed longest ago is finalised first, remembered as a tomb for port reuse)."""
        bucket = _bucket(flow.key)
        closing = self._closing
        if closing.put(bucket, key, flow):
            self.closed_early += 1
            self._finalize(closing.first(bucket), timed_out=True, early=True)

    def _count_late(self, tomb: _Tomb, seg: Segment, now: float) -> None:
        """A packet (not a SYN) for a finalised flow's 4-tuple: counted when that flow was
        finalised early and would still have lingered, so the new flow it starts (mid-stream)
        is an effect of `max_closed_flows`, which the report says."""
        end, _, early, _ = _TOMB_HEAD.unpack_from(tomb)
        if early and now - end <= self._closed_linger:
            self.late_after_early_close += 1
            if len(self.late_after_early_close_frames) < LATE_FRAMES_KEPT:
                self.late_after_early_close_frames.append(seg.frame)

    def _advance_clock(self, t: float) -> float:
        """The table's capture clock, used for every timeout decision.

        It never goes backwards, and a jump forward by more than `SUSPICIOUS_JUMP` is believed
        only when the next packet confirms it (one packet with a bogus timestamp, common in
        damaged or merged captures, must not expire every flow).
        """
        clock = self._clock
        if t <= clock:
            return clock
        if t - clock <= SUSPICIOUS_JUMP or clock == float("-inf"):
            self._clock = t
            self._jump = None
            return t
        jump = self._jump
        if jump is not None and abs(t - jump) <= SUSPICIOUS_JUMP:
            self._clock = t
            self._jump = None
            return t
        self._jump = t
        return clock

    def _linger(self, flow: Flow) -> float:
        return self._closed_linger if flow.closed else self._idle_timeout

    @staticmethod
    def _new_incarnation(flow: Flow, isn: int | None, seg: Segment) -> bool:
        if isn is None or seg.seq != isn:
            return True
        # Same ISN: a retransmitted SYN, unless that connection was established and closed.
        return flow.saw_fin_or_rst and flow.handshake.syn_ack and flow.handshake.ack

    def _create(
        self,
        key: FlowKey,
        seg: Segment,
        flow_id: int | None = None,
        held: Hashable | None = None,
    ) -> Flow:
        """A new Flow for `seg` under `key`; with `flow_id`, it replaces that embryo (whose
        key object in the table is `held`), in place."""
        replacing = flow_id is not None  # an embryo becomes a Flow in place
        if not replacing and len(self) >= self.options.limits.max_flows:
            self._evict_one()
        flags = seg.flags
        src = (seg.src, seg.sport)
        dst = (seg.dst, seg.dport)
        if flags & SYN and not flags & ACK:
            client, server, inferred, flipped = src, dst, False, False
        elif flags & SYN:
            client, server, inferred, flipped = dst, src, False, True
        else:
            client, server, inferred, flipped = src, dst, True, False
        flow = Flow(
            self._next_id if flow_id is None else flow_id,
            key,
            client,
            server,
            seg.ip_version,
            inferred,
            self.options,
            flipped=flipped,
        )
        if flow_id is None:
            self._next_id += 1
        self.flows_created += 1
        if held is None:
            held = key  # made into a tuple object once, for `_flows` and `_by_tuple`
        if replacing and held in self._dozing:
            self._dozing[held] = flow  # in place: same LRU position
        else:
            self._flows[held] = flow
            self._last_key = None
        self._index(flow, held)
        if len(self) > self.max_concurrent:
            self.max_concurrent = len(self)
        if self.on_open is not None:
            self.on_open(flow)
            if flow.consumer is not None:
                flow.attach(flow.consumer)
        return flow

    def _index(self, flow: Flow, held: Hashable) -> None:
        """Enter a new flow of `_flows`, held there under `held`, in `_by_tuple` (see there)."""
        # (one pair at a time: compiled, unpacking both at once builds a tuple of them and
        # iterates it)
        c_addr, c_port = flow.client
        s_addr, s_port = flow.server
        to_server = tuple_key(c_addr, c_port, s_addr, s_port)
        to_client = tuple_key(s_addr, s_port, c_addr, c_port)
        flow.table_keys = (to_server, to_client)
        by_tuple = self._by_tuple
        by_tuple[to_client] = (flow, SERVER, held, False)
        # second: a connection to itself (client == server) is the client's, as in direction_of
        by_tuple[to_server] = (flow, CLIENT, held, False)

    def _unindex(self, flow: Flow) -> None:
        """Remove a flow leaving `_flows` from `_by_tuple`."""
        to_server, to_client = flow.table_keys
        by_tuple = self._by_tuple
        by_tuple.pop(to_server, None)
        by_tuple.pop(to_client, None)

    def _reuse(self, key: FlowKey, old: Flow, seg: Segment) -> Flow:
        spaces: dict[tuple[bytes, int], tuple[int, int]] = {}
        for ep in old.endpoints:
            base = ep.isn if ep.isn is not None else ep.base
            if base is not None and ep.ws_nextseq:
                spaces[(ep.addr, ep.port)] = (base, ep.ws_nextseq)
        prev_end = old.end
        self._finalize(old)
        self.reused += 1
        new = self._create(key, seg)
        new.mark_reused(seg.frame, prev_end)
        new.prev_spaces = spaces
        new._event("port-reused", seg.frame, seg.time, None, prev_close_time=prev_end)
        return new

    def _reuse_after_tomb(self, flow: Flow, tomb: _Tomb, seg: Segment) -> None:
        """A SYN on a 4-tuple whose previous flow was already finalised (closed long ago)."""
        end, established, _, _ = _TOMB_HEAD.unpack_from(tomb)
        endpoints = [
            (flow.key[side], base, nxt)
            for side, base, nxt in _TOMB_ENDPOINT.iter_unpack(tomb[_TOMB_HEAD.size :])
        ]
        sender = (seg.src, seg.sport)
        base = next((b for who, b, _ in endpoints if who == sender), None)
        if base is None:
            return
        if seg.seq == base and not established:
            return
        self.reused += 1
        flow.mark_reused(seg.frame, end)
        flow.prev_spaces = {who: (b, nxt) for who, b, nxt in endpoints if nxt}
        flow._event("port-reused", seg.frame, seg.time, None, prev_close_time=end)

    # ------------------------------------------------------------------ lifetime

    def expire(self, now: float) -> int:
        """Finalise flows silent for longer than their linger time. Returns how many.

        `now` is capture time; a value more than `SUSPICIOUS_JUMP` ahead of the table's clock
        (see `_advance_clock`) is not trusted until packets confirm it.
        """
        if self._clock != float("-inf") and now - self._clock > SUSPICIOUS_JUMP:
            now = self._clock
        n = 0
        linger = self._closed_linger
        due = self._closing.due(lambda flow: now - flow.end > linger)
        if due:
            # In the order they were last active, as from one queue of the whole capture.
            due.sort(key=_last_frame)
            for flow in due:
                self._finalize(flow, timed_out=True)
            n += len(due)
        idle = self._idle_timeout
        dozing = self._dozing
        flows = self._flows
        for entries in (dozing, flows):  # least recently active first
            while entries:
                entry = next(iter(entries.values()))
                if now - entry.end <= idle:
                    break
                self._finalize(self._flow(entry), timed_out=True)
                n += 1
            if entries:
                break
        # Dozing entries are compacted already (a packet would have woken them).
        while flows:
            held, entry = next(iter(flows.items()))
            if now - entry.end <= IDLE_COMPACT:
                break
            if isinstance(entry, _Embryo):
                entry.compact()
            else:
                entry.doze(pack=len(self._quiet_streams) >= self.pack_quiet_after)
                if entry.consumer is not None:  # not packed (or it could not be)
                    self._quiet_streams.add(held)
            del flows[held]
            dozing[held] = entry
            self._last_key = None
        self._tombs.drop_due(lambda tomb: now - _TOMB_HEAD.unpack_from(tomb)[0] > idle)
        self.expired += n
        return n

    def _evict_one(self) -> None:
        victim: Flow | _Embryo | None = None
        if self._closing.size:
            victim = min(self._closing.firsts(), key=_last_frame)  # closed longest ago
        else:
            oldest: Flow | _Embryo | None = None
            lru = itertools.chain(self._dozing.values(), self._flows.values())
            for i, entry in enumerate(lru):
                if i >= EVICTION_SCAN:
                    break
                if oldest is None:
                    oldest = entry
                if isinstance(entry, _Embryo) or (
                    not entry.handshake.syn_ack and entry.c.wire_bytes == 0 and entry.s.packets == 0
                ):
                    victim = entry
                    break
            if victim is None:
                victim = oldest
        if victim is not None:
            flow = self._flow(victim)
            flow.evicted = True
            self.evictions += 1
            self._finalize(flow)

    def _finalize(self, flow: Flow, timed_out: bool = False, early: bool = False) -> None:
        key = flow.key
        if self._flows.get(key) is flow:
            del self._flows[key]
            self._last_key = None
            self._unindex(flow)
        elif self._dozing.get(key) is flow:
            del self._dozing[key]
            self._quiet_streams.discard(key)
            self._unindex(flow)
        if flow.closed:
            bucket = _bucket(key)
            if self._closing.get(bucket, key) is flow:
                self._closing.pop(bucket, key)
        if timed_out and not flow.closed:
            flow.timed_out = True
        if timed_out:
            self._bury(flow, early)
        flow.finish("eof")
        if self.on_close is not None:
            self.on_close(flow)

    def _bury(self, flow: Flow, early: bool) -> None:
        """Remember just enough of a finalised flow to recognise a later port reuse (and a
        late packet of a flow finalised `early`, before its linger ended)."""
        key = flow.key
        packed = []
        for ep in flow.endpoints:
            base = ep.isn if ep.isn is not None else ep.base
            if base is not None:
                side = 0 if key[0] == (ep.addr, ep.port) else 1
                packed.append(_TOMB_ENDPOINT.pack(side, base, ep.ws_nextseq or 0))
        established = flow.saw_fin_or_rst and flow.handshake.syn_ack and flow.handshake.ack
        tombs = self._tombs
        tomb_key = packed_key(key)
        bucket = bucket_of(tomb_key)
        head = _TOMB_HEAD.pack(flow.end, established, early, len(packed))
        if tombs.put(bucket, tomb_key, head + b"".join(packed)):
            tombs.drop_first(bucket)

    def finish(self) -> None:
        """End of capture: finalise every remaining flow, in flow-id order."""
        for entry in sorted(self._entries(), key=lambda f: f.id):
            self._finalize(self._flow(entry))


__all__ = ["Direction", "FlowTable"]
