"""One TCP connection (one incarnation of a 4-tuple) and the facts the diagnoses read.

Theory of operation: `FlowTable` creates a `Flow` on the first packet of a connection and calls
`Flow.process(seg, direction)` for each of its segments, in capture order. `process` updates, in
this order: the two `Endpoint`s (counts, FIN/RST, windows, options), Wireshark's per-segment
analysis (`analysis.analyze`, recorded by finding name in `analysis`), handshake facts and the
initial RTT, RTT samples from the unacked-segment list (Karn's rule), the Zeek state/history
tracker, the per-direction reassemblers (bytes to `consumer`), connection events, data bursts,
delayed-ACK samples and the capped timeline. Per packet the compiled code allocates little
beyond the packed timeline row (and an `Unacked` entry when a side has more segments in flight
than ever before: spent entries are filled again): the facts updated for every packet are
typed attributes, which it keeps as C values. After the
table finalises the flow (close, idle, eviction, end of capture) it calls `finish()` and hands
the flow to `on_close`; `to_result()` turns it into a `result.FlowResult`.
"""

from __future__ import annotations

import struct
from array import array
from collections import deque
from collections.abc import Callable
from typing import Final, NamedTuple

from mypy_extensions import i64

from tcpdiag import model
from tcpdiag.config import AnalysisOptions
from tcpdiag.flow import rows
from tcpdiag.flow.analysis import (
    A_ANY_RETRANSMISSION,
    A_REUSED_PORTS,
    A_ZERO_WINDOW_PROBE,
    analyze,
    flag_names,
)
from tcpdiag.flow.endpoint import MAX_UNACKED, WSCALE_NONE, WSCALE_UNKNOWN, Endpoint, Unacked
from tcpdiag.flow.reassembly import FrozenConsumer, NativeConsumer, Reassembler, StreamConsumer
from tcpdiag.flow.seq import HALF, MASK, seq_diff, seq_ge, seq_gt, seq_le
from tcpdiag.flow.state import CLOSED, RESET, ZeekTracker
from tcpdiag.model import ACK, FIN, RST, SYN, Direction, FlowKey, Segment, format_endpoint
from tcpdiag.result import Close, FlowResult, Handshake, RttStats, TcpCounters, TimelineRow

# A data segment is "small" (a Nagle / delayed-ACK candidate) below this many bytes when the
# sender's MSS is unknown (RFC 9293's default MSS).
DEFAULT_MSS: Final = 536
# Delayed-ACK samples are recorded when the lone ACK came at least this late (seconds). The
# rules apply `Thresholds.stall_min_delay` / `stall_max_delay` on top.
DELAYED_ACK_MIN: Final = 0.035
# Caps that keep one flow's memory bounded whatever its length.
MAX_EVENTS: Final = 1000
# ... and past MAX_EVENTS, the first few of each kind still: a long lossy connection's
# thousand gaps must not hide the RST or FIN that ends it (at most ~10 kinds: bounded).
EVENTS_PER_KIND_PAST_CAP: Final = 8
# Request/response turns kept: those of the first and of the last packets, as many as the
# timeline keeps (`Limits.timeline_head` / `timeline_tail`) and no fewer than BURSTS_KEPT each.
# The rules read the turns the timeline shows, and those before a reset or after a FIN at the
# end of a long keep-alive connection; keeping every turn cost ~100 bytes each.
BURSTS_KEPT: Final = 64
MAX_DELAYED_ACK_SAMPLES: Final = 1000
MAX_RTT_SAMPLES: Final = 4096
# Spent unacked entries a side keeps to fill again once everything it sent is acknowledged: a
# connection that once had thousands of segments in flight must not hold as many objects for
# the rest of its life (request-response traffic has a few in flight at a time).
UNACKED_KEPT: Final = 64
_DIRECTIONS: Final = (Direction.CLIENT, Direction.SERVER)  # by index: a reassembler's direction
# Read for every packet: as Final names a compiled module reads them from C statics, not from
# the module's dictionary.
_NO_OPTIONS: Final = model.NO_OPTIONS
# `Flow.process` reads these TcpOptions fields by index (3 and 4).
assert model.TcpOptions._fields[3:5] == ("sack", "ts_val")
# One timeline row, packed: frame, time, direction, flags, seq, ack, length, window, and the IP
# ID, SACK edge and TTL that the capture-duplicate check and the reset rules read (40 bytes
# instead of a tuple of eleven objects, ~300 bytes, for every one of the 100 rows kept per flow).
_ROW: Final = rows.ROW
_ROW_SIZE: Final = rows.ROW_SIZE
_APPEND_ROW: Final = rows.append_row
_PUT_SLOT: Final = rows.put_slot
_APPEND_DOUBLE: Final = rows.append_double
_MEDIAN_DOUBLE: Final = rows.median_double
_DOUBLE_SIZE: Final = rows.DOUBLE.size
# The frame numbers of packed rows alone (one int per row, not a tuple of eight objects).
_ROW_FRAME: Final = struct.Struct(f"<q{_ROW_SIZE - 8}x")


# What `Flow.timeline()` is made of (`Flow.timeline_state()`): packed rows (`_ROW`), client and
# server sequence bases and window scales, analysis names of the kept frames, packets seen.
TimelineState = tuple[bytes, int | None, int | None, int, int, dict[int, list[str]], int]


def _row_values(state: TimelineState) -> list[tuple[int, float, int, int, int, int, int, int]]:
    """The rows of a `Flow.timeline_state()` as shown: frame, time, direction, flags, seq and
    ack relative to each side's first sequence number, length, window (scaled when known)."""
    packed, c_base, s_base, c_wscale, s_wscale, _, _ = state
    bases = (c_base, s_base)
    wscales = (c_wscale, s_wscale)
    out: list[tuple[int, float, int, int, int, int, int, int]] = []
    for frame, time, d, flags, seq, ack, length, window, _, _, _ in _ROW.iter_unpack(packed):
        base = bases[d]
        peer_base = bases[1 - d]
        rel_ack = 0
        if flags & ACK and peer_base is not None:
            rel_ack = (ack - peer_base) & MASK
        if flags & SYN:
            win = window
        else:
            wscale = wscales[d]
            win = (window << wscale if wscale > 0 else window) or window
        rel_seq = seq if base is None else (seq - base) & MASK
        out.append((frame, time, d, flags, rel_seq, rel_ack, length, win))
    return out


def timeline_rows(state: TimelineState) -> tuple[list[TimelineRow], int]:
    """The timeline rows of a `Flow.timeline_state()` and the number of packets elided."""
    notes = state[5]
    rows: list[TimelineRow] = []
    for frame, time, d, flags, seq, ack, length, window in _row_values(state):
        rows.append(
            TimelineRow(
                frame=frame,
                time=time,
                sender="client" if d == 0 else "server",
                flags=flags,
                seq=seq,
                ack=ack,
                length=length,
                window=window,
                notes=notes.get(frame, []),
            )
        )
    return rows, state[6] - len(rows)


def timeline_views(state: TimelineState) -> list[TimelineRow]:
    """The rows of `timeline_rows(state)` as the rules read them (read only): their `notes`
    shared with `state`, one empty `tls` list shared by all (the rules judge the rows of a flow
    in ten: no new list per row)."""
    notes = state[5]
    no_notes: list[str] = []
    no_tls: list[str] = []
    return [
        TimelineRow(
            frame,
            time,
            "client" if d == 0 else "server",
            flags,
            seq,
            ack,
            length,
            window,
            no_tls,
            notes.get(frame, no_notes),
        )
        for frame, time, d, flags, seq, ack, length, window in _row_values(state)
    ]


def timeline_repeats(state: TimelineState) -> list[tuple[int, float, int, bytes]]:
    """The kept rows for rules that look for repeated packets, without making rows: frame, time,
    direction (0 client, 1 server) and a key that is equal for two rows exactly when they
    repeat one another (`rows.repeat_keys`)."""
    return rows.repeat_keys(state[0], state[1] is not None, state[2] is not None)


def timeline_frames(state: TimelineState) -> list[int]:
    """The frames of the rows a `Flow.timeline_state()` keeps, in order."""
    return [frame for (frame,) in _ROW_FRAME.iter_unpack(state[0])]


def timeline_kept(state: TimelineState) -> int:
    """How many rows a `Flow.timeline_state()` keeps (without reading them)."""
    return len(state[0]) // _ROW_SIZE


def _flagged(analysis: dict[str, list[int]], name: str) -> int:
    """How many frames `Flow.analysis` flags with `name`."""
    frames = analysis.get(name)
    return 0 if frames is None else len(frames)


class FlowEvent:
    """A connection event: `kind`, `frame`, `time`, `direction` (a `Direction`, or None for
    events about the connection as a whole) and kind-specific `details` (also readable as
    attributes: `event.bytes_in_flight`). Kinds and details:

    syn / syn-ack      seq (raw), retransmission (bool)
    handshake-ack      (the client's ACK of the SYN-ACK)
    port-reused        prev_close_time (time the previous incarnation ended, or None)
    fin                bytes_in_flight (sent by this side, not yet ACKed by the peer),
                       after_peer_fin (bool)
    rst                bytes_in_flight, idle (seconds since the previous packet of the flow),
                       unread_data (bytes the peer sent that the RST's sender never ACKed),
                       after_own_fin, after_peer_fin (bool), has_ack (bool), ack (raw ACK
                       number or None), ttl, seq_relative
    gap                offset, length (bytes never captured in this direction's stream)
    overlap-mismatch   offset, length (retransmitted bytes that differ; first copy kept)
    buffer-cap         buffered, limit (reassembly buffer limit hit; a gap follows)
    stale-segment      seq (raw): a segment in the previous incarnation's sequence space
                       after port reuse
    """

    __slots__ = ("details", "direction", "frame", "kind", "time")

    def __init__(
        self,
        kind: str,
        frame: int,
        time: float,
        direction: Direction | None,
        details: dict[str, object],
    ) -> None:
        self.kind = kind
        self.frame = frame
        self.time = time
        self.direction = direction
        # taken as a dict, not as keywords: compiled, keywords would be parsed into a new one
        self.details = details

    def __getattr__(self, name: str) -> object:
        try:
            return self.details[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        d = "" if self.direction is None else self.direction.name.lower()
        extra = "".join(f", {k}={v!r}" for k, v in self.details.items())
        return f"FlowEvent({self.kind!r}, {self.frame}, {self.time:.6f}, {d}{extra})"


class Burst:
    """Consecutive new-data segments from one direction, uninterrupted by data from the other
    direction: a request or a response, roughly. `gap_before` is the time from the end of the
    previous burst (other direction) to this one's first segment, or None for the first."""

    __slots__ = (
        "bytes",
        "direction",
        "first_frame",
        "first_time",
        "gap_before",
        "last_frame",
        "last_time",
        "segments",
    )

    def __init__(self, direction: Direction, frame: int, time: float, gap_before: float | None):
        self.direction = direction
        self.first_frame = frame
        self.first_time = time
        self.last_frame = frame
        self.last_time = time
        self.bytes = 0
        self.segments = 0
        self.gap_before = gap_before

    def __repr__(self) -> str:
        return (
            f"Burst({self.direction.name.lower()}, frames {self.first_frame}-{self.last_frame}, "
            f"{self.bytes} bytes)"
        )


class DelayedAckSample(NamedTuple):
    """A small data segment answered only by a late, lone ACK (Nagle x delayed-ACK evidence).

    Recorded when all of these hold: the segment carried new data smaller than the sender's MSS
    (536 if unknown); when it was sent, the sender had nothing else unacknowledged (its seq
    equals the peer's highest ACK); the sender sent no further data before the ACK; the first
    segment from the peer acknowledging it (ack >= its end) carried no payload and no
    SYN/FIN/RST; and it came at least 35 ms after the data segment.
    """

    direction: Direction  # the data sender
    data_frame: int
    data_time: float
    length: int
    ack_frame: int
    ack_time: float
    delay: float


class Flow:
    """One TCP connection. Public attributes (read-only for everyone but the flow engine):

    id                  1-based, in order of first packet in the capture
    key                 canonical `model.FlowKey`
    client, server      (addr bytes, port) of each side; `client_inferred` True when no SYN
                        or SYN-ACK told who opened the connection (then the first packet's
                        sender is the client)
    ip_version          4 or 6
    first_frame, last_frame, start, end   first / last packet (frames and capture times)
    packets             packets of the flow
    endpoints           (client Endpoint, server Endpoint), indexed by `Direction`; also
                        `c` / `s`. See `endpoint.Endpoint` for their attributes (packets,
                        unique_bytes, isn, fin/rst frame and time, first/last data frame and
                        time, highest_ack, window facts, zero-window periods...)
    handshake           `result.Handshake` (syn/syn_ack/ack seen, rtt = Wireshark's iRTT,
                        SYN and SYN-ACK retransmission counts, frames and times)
    irtt                initial RTT (seconds) or None
    close               `result.Close` (kind fin/rst/none, by client/server/both, frame)
    analysis            dict finding-name -> frame numbers: retransmission (also set on fast
                        and spurious ones, as tshark), fast-retransmission,
                        spurious-retransmission, out-of-order, previous-segment-lost,
                        acked-unseen-segment, duplicate-ack, zero-window, zero-window-probe,
                        zero-window-probe-ack, window-full, window-update, keep-alive,
                        keep-alive-ack, port-reused. Only names with frames are present.
    events              ordered list of `FlowEvent` (capped at MAX_EVENTS, past which only the
                        first EVENTS_PER_KIND_PAST_CAP of each kind are kept; `events_dropped`)
    bursts              list of `Burst` (request/response turns): the first and the last ones
                        (see BURSTS_KEPT), `bursts_dropped` between them
    delayed_ack_samples list of `DelayedAckSample`
    rtt_samples         retained ACK RTT samples (seconds; Karn: retransmitted segments skipped),
                        doubles packed in a bytearray (`rows.append_double`; up to
                        MAX_RTT_SAMPLES: 32 KB, not 128 KB of floats); `rtt_values()` reads them
    rtt                 `result.RttStats` or None
    state, history      Zeek conn_state and history (computed on access)
    zeek_states         (client, server) Zeek endpoint state names
    port_reused         True when this flow started by reusing a 4-tuple (`reuse_frame`)
    prev_close_time     when the previous incarnation on this 4-tuple ended (last packet), or
                        None
    closed              both FINs seen and ACKed, or a RST seen; `close_time` when that happened
    timed_out, evicted  how the table finalised the flow (idle timeout / table full)
    consumer            the `StreamConsumer` attached by on_open, or made by `make_consumer`
                        when the first payload byte arrives (or None)
    gaps, gap_bytes     reassembly holes reported (both directions)
    timeline_total      packets seen (the timeline keeps head + tail of them)

    Methods: `timeline()` -> (rows, elided count); `counters()` -> `result.TcpCounters`;
    `to_result(flow_id)` -> `result.FlowResult` (TCP parts); `frames(name)`; `endpoint(d)`;
    `direction_of(addr, port)`. Sequence numbers in events are raw unless named `*_relative`;
    `Endpoint.relative(raw)` converts.
    """

    __slots__ = (
        "_burst",
        "_bursts",
        "_bursts_head_max",
        "_bursts_tail",
        "_bursts_tail_max",
        "_event_kinds",
        "_frozen",
        "_frozen_reasm",
        "_handshake_done",
        "_head",
        "_head_max",
        "_mru_syn",
        "_pending_reuse",
        "_reasm",
        "_rtt_max",
        "_rtt_min",
        "_rtt_seen",
        "_rtt_stride",
        "_saw_fin_ack",
        "_saw_rst",
        "_tail",
        "_tail_max",
        "_woke",
        "analysis",
        "bursts_dropped",
        "c",
        "client",
        "client_inferred",
        "close",
        "close_time",
        "closed",
        "consumer",
        "delayed_ack_samples",
        "end",
        "endpoints",
        "events",
        "events_dropped",
        "evicted",
        "finished",
        "first_frame",
        "handshake",
        "id",
        "ip_version",
        "irtt",
        "key",
        "last_frame",
        "make_consumer",
        "options",
        "packets",
        "port_reused",
        "prev_close_time",
        "prev_spaces",
        "reuse_frame",
        "rtt_samples",
        "s",
        "server",
        "start",
        "table_keys",
        "timed_out",
        "timeline_total",
        "zeek",
    )

    def __init__(
        self,
        flow_id: int,
        key: FlowKey,
        client: tuple[bytes, int],
        server: tuple[bytes, int],
        ip_version: int,
        client_inferred: bool,
        options: AnalysisOptions | None = None,
        flipped: bool = False,
    ) -> None:
        self.id = flow_id
        self.key = key
        self.client = client
        self.server = server
        # The flow table's keys of the two directions (to the server, to the client), set by
        # the table that indexes the flow (`FlowTable._index`): it removes them with the flow
        # without making them again.
        self.table_keys = (b"", b"")
        self.ip_version = ip_version
        self.client_inferred = client_inferred
        self.options = options or AnalysisOptions()
        self.first_frame: i64 = 0
        self.last_frame: i64 = 0
        self.start = 0.0
        self.end = 0.0
        self.packets: i64 = 0
        self.c = Endpoint(client[0], client[1])
        self.s = Endpoint(server[0], server[1])
        self.endpoints = (self.c, self.s)
        self.handshake = Handshake()
        self.irtt: float | None = None
        self._mru_syn: float | None = None
        self.close = Close()
        self.analysis: dict[str, list[int]] = {}
        self.events: list[FlowEvent] = []
        self.events_dropped = 0
        self._event_kinds: dict[str, int] | None = None  # events per kind, once at the cap
        self._bursts: list[Burst] = []
        # created when the head is full (most flows have a few turns)
        self._bursts_tail: deque[Burst] | None = None
        limits = self.options.limits
        self._bursts_head_max = max(BURSTS_KEPT, limits.timeline_head)
        self._bursts_tail_max = max(BURSTS_KEPT, limits.timeline_tail)
        self.bursts_dropped = 0
        self._burst: Burst | None = None
        self.delayed_ack_samples: list[DelayedAckSample] = []
        self.rtt_samples = bytearray()
        self._rtt_stride: i64 = 1
        self._rtt_seen: i64 = 0
        # Meaningful once `_rtt_seen` > 0: plain floats (compiled, C doubles; an optional float
        # would be a new float object for each new extreme).
        self._rtt_min = 0.0
        self._rtt_max = 0.0
        self.zeek = ZeekTracker(flipped)
        self.port_reused = False
        self.reuse_frame: int | None = None
        self.prev_close_time: float | None = None
        # previous incarnation's sequence space per sender (addr, port) -> (isn, nextseq)
        self.prev_spaces: dict[tuple[bytes, int], tuple[int, int]] = {}
        self.closed = False
        self.close_time: float | None = None
        self.timed_out = False
        self.evicted = False
        self.finished = False
        self.consumer: StreamConsumer | None = None
        # What makes the consumer when the first payload byte arrives, if none is attached:
        # a connection that never carries data (refused, unanswered, reset at once; a third of
        # a busy capture's) then never holds one (an idle TLS stream takes ~2.5 KB).
        self.make_consumer: Callable[[], StreamConsumer] | None = None
        # The consumer's state packed while the flow dozes (`doze`), and which reassemblers fed
        # it (bit i: `_reasm[i]`); the next packet or the end thaws it.
        self._frozen: FrozenConsumer | None = None
        self._frozen_reasm = 0
        self._woke = False  # a packet thawed it once: it is not packed again (see `doze`)
        self._reasm: list[Reassembler | None] = [None, None]
        # Timeline rows packed with `_ROW`: the first `_head_max` packets, then a ring of the
        # last `_tail_max` (created when the head is full; most flows never need one).
        self._head = bytearray()
        self._head_max = max(0, self.options.limits.timeline_head)
        self._tail: bytearray | None = None
        self._tail_max = max(0, self.options.limits.timeline_tail)
        self._pending_reuse: int | None = None
        self.timeline_total: i64 = 0
        self._saw_fin_ack = False
        self._saw_rst = False
        self._handshake_done = False

    # ------------------------------------------------------------------ public helpers

    def endpoint(self, direction: Direction | int) -> Endpoint:
        # (not `endpoints[direction]`: compiled, `endpoints` is a pair of C fields, and a
        # variable index builds a tuple object of them first)
        return self.s if direction else self.c

    @property
    def bursts(self) -> list[Burst]:
        """The request/response turns in order: the first ones, then the last ones
        (`bursts_dropped` were between them; see BURSTS_KEPT)."""
        tail = self._bursts_tail
        return self._bursts if tail is None else [*self._bursts, *tail]

    def direction_of(self, src: bytes, sport: int) -> Direction:
        return Direction.CLIENT if (src, sport) == self.client else Direction.SERVER

    @property
    def saw_fin_or_rst(self) -> bool:
        return self._saw_fin_ack or self._saw_rst

    @property
    def state(self) -> str:
        return self.zeek.conn_state(self.c.unique_bytes, self.s.unique_bytes)

    @property
    def history(self) -> str:
        return self.zeek.history_string

    @property
    def zeek_states(self) -> tuple[str, str]:
        from tcpdiag.flow.state import STATE_NAMES

        return STATE_NAMES[self.zeek.state[0]], STATE_NAMES[self.zeek.state[1]]

    @property
    def gaps(self) -> int:
        return sum(r.gaps for r in self._reasm if r is not None)

    @property
    def gap_bytes(self) -> int:
        return sum(r.gap_bytes for r in self._reasm if r is not None)

    @property
    def rtt(self) -> RttStats | None:
        if not self._rtt_seen:
            return None
        # Positional: a dataclass's __init__ is Python code, and keyword arguments cost it
        # twice what positional ones do (every flow builds these).
        median = _MEDIAN_DOUBLE(self.rtt_samples)
        if median is None:  # a NaN sample: C leaves its order to Python's sort
            median = rows.median(self.rtt_values())
        return RttStats(self._rtt_min, median, self._rtt_max, self._rtt_seen)

    def frames(self, name: str) -> list[int]:
        """Frames flagged with analysis `name` (empty list when none)."""
        return self.analysis.get(name, [])

    # ------------------------------------------------------------------ per packet

    def mark_reused(self, frame: int, prev_close_time: float | None) -> None:
        """Called by the table before the first packet when this flow reuses a 4-tuple."""
        self.port_reused = True
        self.reuse_frame = frame
        self.prev_close_time = prev_close_time

    def flag_reused(self, frame: int) -> None:
        """A SYN-ACK with a new ISN inside this flow (Wireshark flags it port reuse)."""
        self._pending_reuse = frame

    def _event(self, kind: str, frame: int, time: float, d: Direction | None, **kw: object) -> None:
        events = self.events
        if len(events) >= MAX_EVENTS:
            kinds = self._event_kinds
            if kinds is None:
                kinds = self._event_kinds = {}
                for e in events:
                    kinds[e.kind] = kinds.get(e.kind, 0) + 1
            count = kinds.get(kind, 0)
            if count >= EVENTS_PER_KIND_PAST_CAP:
                self.events_dropped += 1
                return
            kinds[kind] = count + 1
        events.append(FlowEvent(kind, frame, time, d, kw))

    def process(self, seg: Segment, d: Direction) -> int:
        """Account one segment sent in direction `d`. Returns its analysis flags."""
        # One unpack instead of many attribute reads (Segment is a NamedTuple). The numbers as
        # 64-bit C integers (compiled): sequence arithmetic without range checks per operation.
        frame: i64
        seq: i64
        ack: i64
        flags: i64
        window: i64
        length: i64
        (frame, time, _, _, _, _, _, seq, ack, flags, window, length, payload, opts, _, _, _) = seg
        if self._frozen is not None:
            self._thaw()
        di = 1 if d else 0
        if di:
            fwd = self.s
            rev = self.c
        else:
            fwd = self.c
            rev = self.s
        packets = self.packets
        if packets == 0:
            self.first_frame = frame
            self.start = time
            prev_time = time
        else:
            prev_time = self.end
        packets += 1
        self.packets = packets
        self.last_frame = frame
        if time > self.end or packets == 1:
            self.end = time
        fwd.packets += 1
        fwd.last_frame_seen = frame
        fwd.last_time_seen = time
        syn = flags & SYN

        # -- sequence bases and unwrapping -------------------------------------------------
        stale = False
        if fwd.base is None:
            fwd.base = seq
            fwd.stream_base = (seq + 1) & MASK if syn else seq
            fwd.ref_raw = fwd.stream_base
            fwd.ref_abs = 0
        elif self.prev_spaces and not syn:
            stale = self._is_stale(seg, fwd)

        # -- Wireshark analysis -------------------------------------------------------------
        # The ACK before this segment, for `_fin_rst`: kept unboxed (an `int | None` would be a
        # new int object per packet, compiled), made optional only for a FIN or RST.
        pre_ack_set = fwd.ws_lastack_set
        pre_ack = fwd.ws_lastack
        ta = analyze(fwd, rev, seq, ack, length, flags, window, time, frame, self.irtt)[0]
        if self._pending_reuse is not None or self.port_reused:
            ta |= self._reuse_flag(frame)
        retrans = ta & A_ANY_RETRANSMISSION
        if ta:
            self._record(ta, frame)
            if retrans:
                fwd.retransmissions += 1

        # -- SYN / options / window scale (Wireshark processes these after the analysis) ----
        if syn:
            self._syn(seg, d, fwd, rev)
        elif flags & ACK:
            fwd.ws_first_ack = False
        if not self._handshake_done:
            hs = self.handshake
            if (
                flags & (SYN | ACK) == ACK
                and self._mru_syn is not None
                and self.irtt is None
                and hs.syn_ack
            ):
                self.irtt = time - self._mru_syn
                hs.rtt = self.irtt
            # (The Handshake's fields last: compiled, each is a lookup by name, and a flow whose
            # SYN-ACK the capture missed asks at every packet.)
            server_isn = self.s.isn
            if (
                flags & ACK
                and not syn
                and not di
                and server_isn is not None
                and ack == (server_isn + 1) & MASK
                and not hs.ack
                and hs.syn_ack
            ):
                hs.ack = True
                self._handshake_done = True
                self._event("handshake-ack", frame, time, d)
        elif self.irtt is None and flags & (SYN | ACK) == ACK and self._mru_syn is not None:
            # (the handshake ACK was seen, so the SYN-ACK was too)
            self.irtt = time - self._mru_syn
            self.handshake.rtt = self.irtt

        # -- endpoint facts ------------------------------------------------------------------
        if opts is not _NO_OPTIONS:
            # By index: compiled, a NamedTuple's field by name is a generic attribute lookup.
            sack = opts[3]
            if sack:
                fwd.last_sack = sack
            if opts[4] is not None:  # ts_val
                fwd.timestamps = opts
        if not flags & (RST | SYN | FIN):
            if window == 0:
                fwd.zero_window_count += 1
                if fwd.zero_window_since is None:  # a period begins
                    fwd.zero_windows += 1
                    fwd.zero_window_since = time
                    first = fwd.zero_window_first
                    if first is None or time < first:
                        fwd.zero_window_first = time
            elif fwd.zero_window_since is not None:
                fwd.open_window(time)
        elif window and fwd.zero_window_since is not None and not flags & RST:
            fwd.open_window(time)
        fwd.window_seen = window
        if flags & ACK:
            high = fwd.highest_ack
            # seq_gt(ack, high), inlined
            if high < 0 or ((ack - high + HALF) & MASK) > HALF:
                fwd.highest_ack = ack
                rev_fin = rev.fin_seq
                if rev.stream_base is not None:
                    acked = rev.offset(ack)
                    if rev_fin is not None and ((ack - rev_fin + HALF) & MASK) > HALF:
                        acked -= 1
                    if acked > fwd.acked:
                        fwd.acked = acked
                self._on_ack(fwd, rev, di, ack, frame, time, length, flags)

        # this side's first payload (`high_abs` and `zh_high` are not set before it)
        first_data = False
        if length:
            data_start = (seq + 1) & MASK if syn else seq
            first_data = fwd.wire_bytes == 0
            fwd.wire_bytes += length
            if fwd.first_data_frame is None:
                fwd.first_data_frame = frame
                fwd.first_data_time = time
            fwd.last_data_frame_seen = frame
            fwd.last_data_time_seen = time
            # fwd.offset(data_start), inlined
            start = fwd.ref_abs + (((data_start - fwd.ref_raw + HALF) & MASK) - HALF)
            end = start + length
            high_abs = fwd.high_abs
            new_data = False
            if first_data:
                fwd.unique_bytes += length if start >= 0 else max(0, end)
                fwd.high_abs = end
                new_data = True
            elif end > high_abs:
                fwd.unique_bytes += end - max(start, high_abs)
                fwd.high_abs = end
                new_data = True
            if end > fwd.ref_abs:
                fwd.ref_raw = (data_start + length) & MASK
                fwd.ref_abs = end
            if not stale and not ta & A_ZERO_WINDOW_PROBE and end > 0:
                r = self._reasm[di]
                fresh = r is None
                if r is None:
                    consumer = self.consumer
                    if consumer is None and self.make_consumer is not None:
                        consumer = self.consumer = self.make_consumer()
                    r = self._reasm[di] = Reassembler(
                        di, consumer, self.options.limits.max_flow_buffer, None
                    )
                    r.on_event = self._reasm_event
                storing = r.storing
                if start < 0:
                    r.segment(0, payload[-start:], end, frame, time)
                else:
                    r.segment(start, payload, length, frame, time)
                if storing or fresh:  # (a consumer stops wanting bytes only when given some)
                    self._drop_spent_consumer()
            if new_data and not retrans:
                self._data_burst(d, frame, time, length)
                self._small_data(di, fwd, rev, seq, length, frame, time)
            elif retrans:
                fwd.small_frame = -1

        # -- unacked list for RTT ------------------------------------------------------------
        if length or flags & (SYN | FIN):
            ua = fwd.unacked
            if ua is None:
                ua = fwd.unacked = []
            head = fwd.unacked_head
            tail = fwd.unacked_tail
            if tail - head < MAX_UNACKED:
                nxt = (seq + length + (1 if flags & (SYN | FIN) else 0)) & MASK
                if tail == len(ua) and head and (head * 2 >= tail or tail >= MAX_UNACKED):
                    # The live entries to the front, the spent ones after them (amortised:
                    # half the list or more is spent), so the list stays within MAX_UNACKED.
                    ua[:] = ua[head:] + ua[:head]
                    tail -= head
                    head = fwd.unacked_head = 0
                if tail < len(ua):
                    item = ua[tail]
                    item.seq = seq
                    item.nxt = nxt
                    item.frame = frame
                    item.time = time
                    item.ambiguous = bool(retrans)
                else:
                    ua.append(Unacked(seq, nxt, frame, time, bool(retrans)))
                tail = fwd.unacked_tail = tail + 1
            if retrans:
                end_raw = (seq + max(length, 1)) & MASK
                for i in range(head, tail):
                    item = ua[i]
                    if seq_gt(end_raw, item.seq) and seq_gt(item.nxt, seq):
                        item.ambiguous = True

        if flags & (FIN | RST) or stale:
            self._fin_rst(seg, d, fwd, rev, pre_ack if pre_ack_set else None, prev_time, stale)
        elif not self.closed:
            c_fin = self.c.fin_seq
            s_fin = self.s.fin_seq
            if c_fin is not None and s_fin is not None:
                ca, sa = self.c.highest_ack, self.s.highest_ack
                if ca >= 0 and sa >= 0 and seq_gt(ca, s_fin) and seq_gt(sa, c_fin):
                    self._mark_closed(time)

        # -- Zeek state and history ----------------------------------------------------------
        zk = self.zeek
        zk.update(di, flags, fwd.relative(seq) if flags & (SYN | FIN | RST) else 0, length)
        if length:
            end_raw = (seq + length) & MASK
            if first_data or ((end_raw - fwd.zh_high + HALF) & MASK) > HALF:
                fwd.zh_high = end_raw
            elif not syn:
                zk.scaled(di, "t")
        if window == 0 and not flags & RST:
            st = zk.state
            if st[1 - di] != CLOSED and st[1 - di] != RESET and st[di] != RESET:
                zk.scaled(di, "w")

        self._keep_row(seg, di)
        return ta

    def _fin_rst(
        self,
        seg: Segment,
        d: Direction,
        fwd: Endpoint,
        rev: Endpoint,
        pre_ack: int | None,
        prev_time: float,
        stale: bool,
    ) -> None:
        """FIN / RST facts and events, the closed test, stale-segment events (rare packets)."""
        frame = seg.frame
        time = seg.time
        flags = seg.flags
        seq = seg.seq
        length = seg.length
        syn = flags & SYN
        # -- FIN / RST -----------------------------------------------------------------------
        if flags & FIN:
            fin_seq = (seq + length + (1 if syn else 0)) & MASK
            fwd.fin_count += 1
            if flags & ACK:
                self._saw_fin_ack = True
            if fwd.fin_frame is None:
                fwd.fin_frame = frame
                fwd.fin_time = time
                fwd.fin_seq = fin_seq
                self._event(
                    "fin",
                    frame,
                    time,
                    d,
                    # not counting the FIN's own sequence number
                    bytes_in_flight=max(0, fwd.bytes_unacked_by(rev) - 1),
                    after_peer_fin=rev.fin_frame is not None,
                )
        if flags & RST:
            self._saw_rst = True
            fwd.rst_count += 1
            if fwd.rst_frame is None:
                fwd.rst_frame = frame
                fwd.rst_time = time
            # peer bytes this side had not acknowledged before its RST (what it received but
            # never ACKed, typically unread data; a RST/ACK's own ACK value does not count)
            unread = 0
            if rev.ws_nextseq and pre_ack is not None:
                unread = max(0, seq_diff(rev.ws_nextseq, pre_ack))
                if rev.fin_seq is not None and unread and seq_gt(rev.ws_nextseq, rev.fin_seq):
                    unread -= 1
            self._event(
                "rst",
                frame,
                time,
                d,
                bytes_in_flight=fwd.bytes_unacked_by(rev),
                idle=time - prev_time,
                unread_data=unread,
                after_own_fin=fwd.fin_frame is not None and fwd.fin_frame < frame,
                after_peer_fin=rev.fin_frame is not None,
                has_ack=bool(flags & ACK),
                # raw ACK number (None without the ACK flag): does the RST acknowledge the SYN?
                ack=seg.ack if flags & ACK else None,
                ttl=seg.ttl,
                seq_relative=fwd.relative(seq),
            )
            if not self.closed:
                self._mark_closed(time)
        elif not self.closed and self.c.fin_seq is not None and self.s.fin_seq is not None:
            ca, sa = self.c.highest_ack, self.s.highest_ack
            if ca >= 0 and sa >= 0 and seq_gt(ca, self.s.fin_seq) and seq_gt(sa, self.c.fin_seq):
                self._mark_closed(time)

        if stale:
            self._event("stale-segment", frame, time, d, seq=seq)

    # ------------------------------------------------------------------ helpers

    def _keep_row(self, seg: Segment, di: int) -> None:
        """The packet's timeline row: fixed-size packed rows (a tuple of 11 objects per packet
        costs ~300 B), the first `_head_max` appended, the later ones in the tail ring. The
        row writer (`rows`: C when built) reads the Segment's fields itself."""
        n = self.timeline_total
        self.timeline_total = n + 1
        if n < self._head_max:
            _APPEND_ROW(self._head, seg, di)
            return
        size = self._tail_max
        if size:
            tail = self._tail
            if tail is None:
                tail = self._tail = bytearray(size * _ROW_SIZE)
            _PUT_SLOT(tail, (n - self._head_max) % size, seg, di)

    def _reuse_flag(self, frame: int) -> int:
        """A_REUSED_PORTS when this frame is the one that reused the 4-tuple (see
        `mark_reused`, `flag_reused`), else 0."""
        if self._pending_reuse == frame or (self.reuse_frame == frame and self.port_reused):
            self._pending_reuse = None
            return A_REUSED_PORTS
        return 0

    def _mark_closed(self, time: float) -> None:
        """Both FINs ACKed, or a RST: the flow now only lingers for late packets."""
        self.closed = True
        self.close_time = time
        self.forget_delivered()

    def doze(self, pack: bool = True) -> None:
        """The flow has been silent for a while (the table's IDLE_COMPACT) and may stay so for
        the rest of the capture: drop the copies of delivered bytes, and with `pack` (the table
        asks it once many quiet flows hold theirs: PACK_QUIET_AFTER) pack the consumer's state if it
        can be (its optional `freeze()`: a TLS stream's few hundred objects become one bytes
        object). The next packet, or the end, thaws it, equal to what it was.

        Packing and unpacking cost ~250 us (compiled, a TLS stream), so at most once per flow:
        not again after a packet woke it (a connection that talks every minute, a keep-alive
        ping, would pay that each time), and not a closed flow's (it lingers at most
        `Limits.close_linger`, and at most `max_closed_flows` of them: little memory to win for
        a pack and an unpack per closed connection, on a busy capture ten times the idle open
        ones)."""
        self.forget_delivered()
        if pack and not self.closed and not self._woke:
            self.freeze_consumer()

    def freeze_consumer(self) -> None:
        """Pack the consumer's state, if it has a `freeze()` that can (see `doze`)."""
        consumer = self.consumer
        if consumer is None or self._frozen is not None:
            return
        freeze: Callable[[], FrozenConsumer | None] | None = getattr(consumer, "freeze", None)
        frozen = None if freeze is None else freeze()
        if frozen is None:
            return
        fed = 0
        for i, r in enumerate(self._reasm):
            if r is not None and r.consumer is consumer:
                r.consumer = None
                fed |= 1 << i
        self.consumer = None
        self._frozen = frozen
        self._frozen_reasm = fed

    def _thaw(self) -> None:
        frozen = self._frozen
        if frozen is None:
            return
        self._frozen = None
        self._woke = True
        consumer = self.consumer = frozen.thaw()
        for i, r in enumerate(self._reasm):
            if r is not None and self._frozen_reasm & (1 << i):
                r.consumer = consumer
        self._frozen_reasm = 0

    def forget_delivered(self) -> None:
        """Drop the copies of delivered bytes kept to compare retransmissions with (see
        `Reassembler.forget_delivered`): done when the flow closes or goes idle."""
        for r in self._reasm:
            if r is not None and r.recent:
                r.forget_delivered()

    def _record(self, ta: int, frame: int) -> None:
        analysis = self.analysis
        for name in flag_names(ta):
            lst = analysis.get(name)
            if lst is None:
                analysis[name] = [frame]
            else:
                lst.append(frame)

    def _syn(self, seg: Segment, d: Direction, fwd: Endpoint, rev: Endpoint) -> None:
        flags = seg.flags
        hs = self.handshake
        is_synack = bool(flags & ACK)
        retrans = fwd.syn_count > 0 and fwd.isn == seg.seq
        fwd.syn_count += 1
        if fwd.syn_frame is None:
            fwd.syn_frame = seg.frame
            fwd.syn_time = seg.time
        if fwd.isn is None:
            fwd.isn = seg.seq
            # Data seen before this side's SYN set the base; the SYN moves it to the ISN, unless
            # that would move the stream's offset 0: bytes already handed to (or buffered for)
            # the stream consumer are numbered from the old base and must stay consistent.
            stream_base = (seg.seq + 1) & MASK
            moves_stream = stream_base != fwd.stream_base and self._reasm[d] is not None
            if fwd.base != seg.seq and not moves_stream:
                fwd.base = seg.seq
                fwd.stream_base = stream_base
                fwd.ref_raw = fwd.stream_base
                fwd.ref_abs = 0
        if is_synack:
            hs.syn_ack = True
            hs.syn_ack_frames.append(seg.frame)
            hs.syn_ack_times.append(seg.time)
            if retrans:
                hs.syn_ack_retransmissions += 1
            self._event("syn-ack", seg.frame, seg.time, d, seq=seg.seq, retransmission=retrans)
        else:
            hs.syn = True
            hs.syn_frames.append(seg.frame)
            hs.syn_times.append(seg.time)
            if retrans:
                hs.syn_retransmissions += 1
            self._mru_syn = seg.time
            self._event("syn", seg.frame, seg.time, d, seq=seg.seq, retransmission=retrans)
        opts = seg.options
        if opts.mss is not None:
            fwd.mss = opts.mss
        if opts.sack_permitted:
            fwd.sack_permitted = True
        # Window scaling, with Wireshark's rules: the option sets this side's shift; a SYN
        # without it means nobody scales; a SYN-ACK with it after a SYN without means no one.
        if opts.wscale is not None:
            fwd.wscale = min(opts.wscale, 14)
        if fwd.wscale == WSCALE_UNKNOWN:
            fwd.wscale = WSCALE_NONE
            rev.wscale = WSCALE_NONE
        elif is_synack and rev.wscale == WSCALE_NONE:
            fwd.wscale = WSCALE_NONE

    def _on_ack(
        self,
        fwd: Endpoint,
        rev: Endpoint,
        di: int,
        ack: i64,
        frame: i64,
        time: float,
        length: i64,
        flags: i64,
    ) -> None:
        """`fwd` (direction `di`) acknowledged `ack` (a new highest ACK): RTT samples, gaps,
        delayed ACKs."""
        head = rev.unacked_head
        tail = rev.unacked_tail
        if head < tail:
            ua = rev.unacked
            assert ua is not None
            i = head
            while i < tail:
                item = ua[i]
                s1 = item.nxt
                if seq_le(s1, ack):
                    i += 1
                    if s1 == ack and not item.ambiguous:
                        self._rtt_sample(time - item.time)
                    continue
                if seq_gt(ack, item.seq):
                    item.seq = ack  # partially acknowledged
                break
            if i == tail:  # all acknowledged (the usual case): fill the list from its start
                rev.unacked_head = rev.unacked_tail = 0
                if len(ua) > UNACKED_KEPT:
                    del ua[UNACKED_KEPT:]  # a burst's spent entries, not kept for ever
            else:
                rev.unacked_head = i
        r = self._reasm[1 - di]
        if r is not None and rev.stream_base is not None:
            off = rev.offset(ack)
            if rev.fin_seq is not None and seq_ge(ack, rev.fin_seq):
                off = rev.offset(rev.fin_seq)
            if off > r.next:
                r.ack(off, frame)
        s_frame = rev.small_frame
        if s_frame >= 0 and seq_ge(ack, rev.small_end):
            rev.small_frame = -1
            s_time = rev.small_time
            delay = time - s_time
            if (
                length == 0
                and not flags & (SYN | FIN | RST)
                and delay >= DELAYED_ACK_MIN
                and len(self.delayed_ack_samples) < MAX_DELAYED_ACK_SAMPLES
            ):
                self.delayed_ack_samples.append(
                    DelayedAckSample(
                        Direction(1 - di), s_frame, s_time, rev.small_len, frame, time, delay
                    )
                )

    def _rtt_sample(self, rtt: float) -> None:
        if rtt < 0:
            return
        seen = self._rtt_seen + 1
        self._rtt_seen = seen
        if seen == 1:
            self._rtt_min = self._rtt_max = rtt
        else:
            if rtt < self._rtt_min:
                self._rtt_min = rtt
            if rtt > self._rtt_max:
                self._rtt_max = rtt
        # keep every stride-th sample; halve the list and double the stride when full
        if (seen - 1) % self._rtt_stride == 0:
            _APPEND_DOUBLE(self.rtt_samples, rtt)
            if len(self.rtt_samples) >= MAX_RTT_SAMPLES * _DOUBLE_SIZE:
                self.rtt_samples = bytearray(self.rtt_values()[::2])
                self._rtt_stride *= 2

    def rtt_values(self) -> array[float]:
        """The retained RTT samples (seconds), oldest first."""
        values = array("d")
        values.frombytes(self.rtt_samples)
        return values

    def _small_data(
        self,
        di: int,
        fwd: Endpoint,
        rev: Endpoint,
        seq: i64,
        length: i64,
        frame: i64,
        t: float,
    ) -> None:
        mss = fwd.mss or DEFAULT_MSS
        outstanding = rev.highest_ack < 0 or rev.highest_ack != seq
        if length < mss and not outstanding:
            fwd.small_frame = frame
            fwd.small_time = t
            fwd.small_end = (seq + length) & MASK
            fwd.small_len = length
        else:
            fwd.small_frame = -1

    def _data_burst(self, d: Direction, frame: int, time: float, length: int) -> None:
        b = self._burst
        if b is None or b.direction != d:
            gap = None if b is None else time - b.last_time
            b = Burst(d, frame, time, gap)
            self._burst = b
            # Data turns are bursts, not events: on a long keep-alive connection they would
            # fill the capped event list and hide the FIN or RST that ends it.
            if len(self._bursts) < self._bursts_head_max:
                self._bursts.append(b)
            else:
                tail = self._bursts_tail
                if tail is None:
                    tail = self._bursts_tail = deque(maxlen=self._bursts_tail_max)
                elif len(tail) == self._bursts_tail_max:
                    self.bursts_dropped += 1
                tail.append(b)
        b.last_frame = frame
        b.last_time = time
        b.bytes += length
        b.segments += 1

    def _reasm_event(
        self, direction: int, kind: str, frame: int, time: float, details: dict[str, object]
    ) -> None:
        """A reassembler's event (its `EventSink`: a bound method, ~60 bytes, where a closure
        per direction took ~280)."""
        if kind == "gap":
            self.zeek.gap(direction)
            time = self.end
        self._event(kind, frame, time or self.end, _DIRECTIONS[direction], **details)

    def _is_stale(self, seg: Segment, fwd: Endpoint) -> bool:
        space = self.prev_spaces.get((seg.src, seg.sport))
        if space is None or fwd.isn is None:
            return False
        isn, nxt = space
        in_prev = seq_le(isn, seg.seq) and seq_le(seg.seq, nxt)
        in_new = seq_le(fwd.isn, seg.seq) and seq_diff(seg.seq, fwd.isn) < (1 << 30)
        return in_prev and not in_new

    # ------------------------------------------------------------------ end of flow

    def _drop_spent_consumer(self) -> None:
        """When the consumer no longer wants bytes and says nothing more can come of it
        (`spent`: for the TLS stream, bytes that are not TLS), forget it, as each reassembler
        would stop storing for it at its next segment anyway. A long plain connection (HTTP,
        SSH, a database) then does not hold an unused TLS stream."""
        consumer = self.consumer
        if isinstance(consumer, NativeConsumer):
            native: NativeConsumer = consumer  # (typed so, compiled code reads the field directly)
            if native.wants_data:  # nearly always: asked after every stored segment
                return
        if consumer is None or consumer.wants_data or not getattr(consumer, "spent", False):
            return
        self.consumer = None
        self.make_consumer = None  # (the other direction's first byte must not make another)
        for r in self._reasm:
            if r is not None:
                r.drop_consumer()

    def attach(self, consumer: StreamConsumer | None) -> None:
        """Attach a stream consumer (normally from on_open, before the first byte)."""
        self.consumer = consumer
        for r in self._reasm:
            if r is not None:
                r.consumer = consumer
                r.storing = consumer is not None and consumer.wants_data

    def finish(self, how: str = "eof") -> None:
        """Flush reassembly (remaining holes become gaps) and end both directions."""
        if self.finished:
            return
        self.finished = True
        self._thaw()
        for d in (Direction.CLIENT, Direction.SERVER):
            ep = self.endpoint(d)
            r = self._reasm[d]
            if ep.rst_frame is not None:
                end_how, end_frame, end_time = "rst", ep.rst_frame, ep.rst_time or self.end
            elif ep.fin_frame is not None:
                end_how, end_frame, end_time = "fin", ep.fin_frame, ep.fin_time or self.end
            else:
                end_how, end_frame, end_time = how, self.last_frame, self.end
            if r is not None:
                r.end(end_how, end_frame, end_time)
                # An ended reassembler reports nothing more; dropping its sink (a method bound to
                # this flow) breaks the only reference cycle, so the flow is freed by reference
                # counting as soon as the table forgets it, without the cyclic GC. Nor does it
                # need its consumer: whoever reads the flow's result then drops `consumer`, and
                # the stream goes at once, not with the flow (the end of a capture finalises
                # its flows from one list: a stream thawed for it would otherwise stay).
                r.on_event = None
                r.consumer = None
            elif self.consumer is not None:
                self.consumer.on_end(int(d), end_how, end_frame, end_time)
        c, s = self.c, self.s
        close = self.close
        if c.rst_frame is not None or s.rst_frame is not None:
            close.kind = "rst"
            if c.rst_frame is not None and s.rst_frame is not None:
                close.by = "both"
                close.frame = min(c.rst_frame, s.rst_frame)
            elif c.rst_frame is not None:
                close.by, close.frame = "client", c.rst_frame
            else:
                close.by, close.frame = "server", s.rst_frame
        elif c.fin_frame is not None or s.fin_frame is not None:
            close.kind = "fin"
            if c.fin_frame is not None and s.fin_frame is not None:
                close.by = "both"
                close.frame = min(c.fin_frame, s.fin_frame)
            elif c.fin_frame is not None:
                close.by, close.frame = "client", c.fin_frame
            else:
                close.by, close.frame = "server", s.fin_frame
        # release per-packet state that is no longer needed
        c.unacked = None
        s.unacked = None
        c.unacked_head = c.unacked_tail = s.unacked_head = s.unacked_tail = 0

    def counters(self) -> TcpCounters:
        a = self.analysis
        if not a:  # no packet flagged (most flows): eleven dictionary lookups saved
            return TcpCounters(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, self.rtt)
        return TcpCounters(  # positional, in field order (see `rtt`)
            _flagged(a, "retransmission"),
            _flagged(a, "fast-retransmission"),
            _flagged(a, "spurious-retransmission"),
            _flagged(a, "out-of-order"),
            _flagged(a, "previous-segment-lost"),
            _flagged(a, "acked-unseen-segment"),
            _flagged(a, "duplicate-ack"),
            _flagged(a, "zero-window"),
            _flagged(a, "zero-window-probe"),
            _flagged(a, "window-full"),
            _flagged(a, "keep-alive"),
            self.rtt,
        )

    def _packed_rows(self) -> bytes:
        """The kept rows, packed, in capture order (head, then the tail ring oldest first)."""
        tail = self._tail
        if tail is None:
            return bytes(self._head)
        size = self._tail_max
        appended = self.timeline_total - self._head_max
        if appended < size:
            return bytes(self._head) + bytes(tail[: appended * _ROW_SIZE])
        cut = (appended % size) * _ROW_SIZE
        return bytes(self._head) + bytes(tail[cut:]) + bytes(tail[:cut])

    def timeline_state(self) -> TimelineState:
        """Everything `timeline()` needs, detached from the flow: plain bytes, ints and the
        analysis names of the kept frames (see `timeline_rows`)."""
        packed = self._packed_rows()
        notes: dict[int, list[str]] = {}
        analysis = self.analysis
        if analysis and len(packed) == self.timeline_total * _ROW_SIZE:
            # Nothing elided: every flagged frame (always a packet of this flow) is a kept row.
            for name, frames in analysis.items():
                for f in frames:
                    notes.setdefault(f, []).append(name)
        elif analysis:
            frames_kept = {frame for (frame,) in _ROW_FRAME.iter_unpack(packed)}
            for name, frames in analysis.items():
                for f in frames:
                    if f in frames_kept:
                        notes.setdefault(f, []).append(name)
        c, s = self.c, self.s
        return (packed, c.base, s.base, c.wscale, s.wscale, notes, self.timeline_total)

    def timeline(self) -> tuple[list[TimelineRow], int]:
        """The capped timeline (head + tail rows) and the number of packets elided."""
        return timeline_rows(self.timeline_state())

    def to_result(self, flow_id: int | None = None, with_timeline: bool = True) -> FlowResult:
        """The TCP parts of this flow's `result.FlowResult` (TLS, findings, verdict: others)."""
        if not self.finished:
            self.finish()
        client, server = self.client, self.server
        res = FlowResult(  # positional, in field order (see `rtt`)
            self.id if flow_id is None else flow_id,
            # Not `format_endpoint(*self.client)`: compiled, a call with *args is a generic
            # Python call (~4,000 instructions), with the arguments a C one.
            format_endpoint(client[0], client[1]),
            format_endpoint(server[0], server[1]),
            self.ip_version,
            self.client_inferred,
            self.first_frame,
            self.last_frame,
            self.start,
            self.end,
            self.c.packets,
            self.s.packets,
            self.c.unique_bytes,
            self.s.unique_bytes,
            self.state,
            self.history,
            self.handshake,
            self.close,
            self.counters(),
        )
        if with_timeline:
            rows, skipped = self.timeline()
            res.timeline = rows
            res.timeline_skipped = skipped
        return res

    def __repr__(self) -> str:
        return (
            f"Flow(id={self.id}, {format_endpoint(*self.client)} -> "
            f"{format_endpoint(*self.server)}, packets={self.packets}, state={self.state})"
        )
