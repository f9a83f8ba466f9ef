"""Wires the stages together: RawPacket in, CaptureResult out.

Theory of operation: the engine is sans-IO. `feed()` takes one RawPacket, decodes it, and hands
TCP segments to the flow table, ICMP errors and ARP packets to the capture context. A flow gets a
TLS stream consumer at its first payload byte (which detects TLS by content, stops wanting bytes
when the stream is something else, and is then forgotten). When the table closes a flow (FIN/RST
and quiet, idle timeout, eviction, end of capture), the engine runs the per-flow rules, turns the
flow into a `FlowResult`, keeps only that summary, and forgets the flow: memory is bounded by the
number of concurrent flows. `finish()` closes what is left, runs the capture-level rules (ICMP and
ARP correlation, "server up but dropping SYNs", capture quality), computes verdicts, and returns
the result ordered by flow id. Time comes only from packet timestamps.

Sharding (for splitting one large capture across processes, see `distributed.py`): with
`shard=(i, n)` the engine still reads and decodes every packet but only follows the flows whose
canonical 4-tuple hashes to `i` (ICMP errors by the 4-tuple they quote, ARP on shard 0). Idle
expiry is driven by every packet's timestamp, not only the shard's own, so each flow lives and
dies exactly as in a single-process run; `merge_shards` then renumbers the flows by first frame
and runs the capture-level rules once over all of them.
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from mypy_extensions import mypyc_attr

from tcpdiag.capture import Capture, CaptureInfo, open_capture
from tcpdiag.capture.ring import raw_packets
from tcpdiag.config import AnalysisOptions
from tcpdiag.decode import Decoder
from tcpdiag.decode.scan import Block, open_blocks, record_blocks
from tcpdiag.findings import capture_rules, tcp_rules, tls_rules
from tcpdiag.findings.context import CaptureContext
from tcpdiag.findings.registry import make_finding
from tcpdiag.findings.verdict import problem_flow, verdict
from tcpdiag.flow import Flow, FlowTable
from tcpdiag.flow.flow import TimelineState, timeline_frames, timeline_kept, timeline_rows
from tcpdiag.model import (
    FLOW_BUCKETS,
    ArpPacket,
    IcmpError,
    RawPacket,
    Segment,
    bucket_of,
    flow_key,
    linktype_name,
    packed_key,
)
from tcpdiag.result import CaptureResult, Finding, FlowResult, Severity, TimelineRow
from tcpdiag.store import MARSHAL_VERSION, FlowStore
from tcpdiag.tls import SideLabels, TlsStream, labels_from_state

# Expire idle flows at most this often (capture time): a scan of the table is not free.
_EXPIRE_EVERY_NS = 1_000_000_000
# The cyclic garbage collector is off while a whole capture is analysed (`gc_tuned`). With the
# default thresholds it walked every live flow, endpoint and result again and again (25% of the
# CPU time on 200k packets); with rare collections, still 12-15% of the compiled build's time,
# for nothing: flows form no reference cycles once finished (`Flow.finish` breaks the only
# one), so reference counting frees them (same peak RSS at 2M packets with and without it).
# As a safety net against a cycle introduced later, the engine looks at the net growth of the
# collector's heap every 2^16 packets (`gc.get_count()[0]`: tracked objects created less those
# freed since the last collection) and collects when that growth exceeds both the heap that
# was live after the last collection and `_GC_FLOOR` objects: uncollected cycles can then never
# more than double the memory, while a capture whose heap stays level (flows come and go,
# freed by reference counting) is not walked at all. A collection every 2^20 packets, the
# previous net, walked the 2-3 million live objects of a busy capture each time (0.4 s per
# million packets, ~5% of the time) and collected nothing.
_GC_CHECK_MASK = (1 << 16) - 1
_GC_FLOOR = 1 << 22

FlowCallback = Callable[[FlowResult], None]
RetainPredicate = Callable[[FlowResult], bool]
Shard = tuple[int, int]  # (index, count)


def shard_of(src: bytes, sport: int, dst: bytes, dport: int, count: int) -> int:
    """The shard (of `count`, at most `FLOW_BUCKETS`) of a flow: a set of whole buckets, so that
    the flow table's per-bucket limits hold the same flows in a shard as in one process."""
    return bucket_of(packed_key(flow_key(src, sport, dst, dport))) % count


@dataclass(slots=True)
class PartialCapture:
    """What one engine (one shard) knows before the capture-level rules run."""

    path: str
    info: CaptureInfo | None
    packets: int
    tcp_packets: int
    first_ns: int | None
    last_ns: int | None
    linktypes: set[int]
    damaged: bool
    # A whole capture analysed in one process keeps its flows in a `FlowStore` (memory does not
    # grow with the number of flows); shards and live capture keep a list.
    flows: list[FlowResult] | FlowStore
    context: CaptureContext
    decode_stats: object | None = None
    flows_released: int = 0
    released_findings: dict[str, int] = field(default_factory=dict)
    # A shard's (`shards.py`): the first frame of each of its flows by id, and for a list of
    # flows, where each was finished (`Engine._finish_key`), in the list's order.
    first_frames: array[int] | None = None
    finish_keys: list[tuple[int, int]] | None = None


class ReportQuota:
    """Which finished flows the report keeps: every flow while few, then none of that kind
    (healthy or problem), each kind with half of `Limits.max_report_flows`. The flows not
    kept are counted, so memory is bounded by the quota, not by the capture."""

    __slots__ = ("healthy_left", "problems_left")

    def __init__(self, limit: int) -> None:
        self.healthy_left = limit // 2
        self.problems_left = limit - limit // 2

    def keep(self, flow: FlowResult) -> bool:
        if problem_flow(flow):
            if self.problems_left > 0:
                self.problems_left -= 1
                return True
            return False
        if self.healthy_left > 0:
            self.healthy_left -= 1
            return True
        return False


class Engine:
    """Feed RawPackets in capture order, then `finish()` for the CaptureResult."""

    def __init__(
        self,
        options: AnalysisOptions | None = None,
        path: str = "",
        on_flow: FlowCallback | None = None,
        shard: Shard | None = None,
        retain: RetainPredicate | None = None,
        store: FlowStore | None = None,
        stop_on_eviction: bool = False,
    ) -> None:
        self.options = options or AnalysisOptions()
        # A shard of a local split (`split.py`) stops at its table's first eviction: see there.
        self._stop_on_eviction = stop_on_eviction
        self.path = path
        self._on_flow = on_flow
        if shard is not None and not (1 <= shard[1] <= FLOW_BUCKETS and 0 <= shard[0] < shard[1]):
            raise ValueError(f"shard {shard[0]} of {shard[1]}: at most {FLOW_BUCKETS} shards")
        self._shard = shard
        # A shard's store (`split.py`): the flows it keeps go there. A shard notes the first
        # frame of each of its flows (kept or not) by id, which numbers the merged flows, and
        # where each flow it keeps was finished, for the report quota of the whole capture
        # (`shards.py`): in its store, or beside its list.
        self._given_store = store
        self.first_frames: array[int] | None = array("q") if shard is not None else None
        self.finish_keys: list[tuple[int, int]] | None = (
            [] if shard is not None and store is None else None
        )
        # Live capture keeps only what `retain` accepts (problem flows); the rest is counted.
        self._retain = retain
        self._quota = ReportQuota(self.options.limits.max_report_flows)
        self._released = 0
        self._released_findings: dict[str, int] = {}
        self._decoder = Decoder()
        self._table = FlowTable(
            self.options, on_open=self._flow_opened, on_close=self._flow_closed, sweeps=False
        )
        self._context = CaptureContext()
        self._results: list[FlowResult] | FlowStore
        if store is not None:
            self._results = store
        else:
            self._results = FlowStore() if self._stores_flows() else []
        self._linktypes: set[int] = set()
        self.packets = 0
        self._gc_live = 0  # the collector's heap after this engine's last collection (estimate)
        self.tcp_packets = 0
        self._first_ns: int | None = None
        self._last_ns: int | None = None
        self._next_expire_ns = 0
        # True while `close()` ends the flows still open at the end of the capture: their rules
        # measure "never answered"/"never closed" up to the capture's last packet.
        self._at_capture_end = False
        limits = self.options.limits
        self._timeline = (limits.timeline_head, limits.timeline_tail)  # for each TlsStream
        # Bound once: `self._new_stream` makes a new method object at each use, and every flow
        # would hold its own.
        self._make_stream: Callable[[], TlsStream] = self._new_stream

    def _stores_flows(self) -> bool:
        """A batch analysis of a whole capture: finished flows go to a `FlowStore`, each with
        its timeline packed beside it (see `_flow_result`); so does a shard given a store, and
        a streamed analysis (`on_flow`: live capture, hours of it), each flow as it was given
        to `on_flow`. Only a caller that chooses what is kept (`retain`) gets a list."""
        if self._retain is not None:
            return False
        return self._shard is None or self._given_store is not None

    @property
    def flows_open(self) -> int:
        return len(self._table)

    @property
    def flows_done(self) -> int:
        return len(self._results)

    # -- feeding -------------------------------------------------------------------------------

    def feed(self, raw: RawPacket) -> None:
        self.packets += 1
        if not self.packets & _GC_CHECK_MASK:
            self._gc_safety()
        ts = raw.ts_ns
        if self._first_ns is None:
            self._first_ns = ts
        self._last_ns = ts
        if raw.linktype not in self._linktypes:
            self._linktypes.add(raw.linktype)
        if ts >= self._next_expire_ns:
            self._table.frame = raw.frame
            self._table.expire(ts / 1e9)
            self._next_expire_ns = ts + _EXPIRE_EVERY_NS
        rec = self._decoder.decode(raw)
        if rec is None:
            return
        kind = type(rec)
        if kind is Segment:
            self.tcp_packets += 1
            seg: Segment = rec  # type: ignore[assignment]
            if self._shard is not None:
                index, count = self._shard
                if shard_of(seg.src, seg.sport, seg.dst, seg.dport, count) != index:
                    return
            self._table.add(seg)
        elif kind is IcmpError:
            err: IcmpError = rec  # type: ignore[assignment]
            if self._shard is None or (
                shard_of(err.src, err.sport, err.dst, err.dport, self._shard[1]) == self._shard[0]
            ):
                self._context.add_icmp(err)
        elif kind is ArpPacket and (self._shard is None or self._shard[0] == 0):
            self._context.add_arp(rec)  # type: ignore[arg-type]

    def _gc_safety(self) -> None:
        """Collect cyclic garbage if the heap grew enough for it to matter (`_GC_FLOOR`)."""
        if gc.isenabled():  # an embedding program runs the collector itself
            return
        grown = gc.get_count()[0]
        if grown > _GC_FLOOR and grown > self._gc_live:
            self._gc_live += grown - gc.collect()

    def feed_all(self, packets: Iterable[RawPacket]) -> None:
        if self._stop_on_eviction:
            for raw in packets:
                self.feed(raw)
                self._check_evictions()
            return
        for raw in packets:
            self.feed(raw)

    def _check_evictions(self) -> None:
        if self._table.evictions:
            raise FlowTableOverflow(self._table.evictions)

    def feed_capture(self, capture: Capture) -> None:
        """Every packet of `capture`, in order: in blocks decoded in C when the extension is
        built (`decode.scan`), else one `feed` at a time. The two give the same result."""
        blocks = open_blocks(capture, self._decoder.stats, self._expiry_ns, self._shard or (0, 1))
        if blocks is None:
            self.feed_all(capture)
            return
        for block in blocks:
            self._feed_block(block)
            if self._stop_on_eviction:
                self._check_evictions()
        self._linktypes |= capture.linktypes

    def feed_records(self, records: bytes, frame: int, linktype: int) -> None:
        """A live capture's packets as whole little-endian nanosecond pcap records
        (`capture/ring.py`), numbered from `frame` + 1: in blocks decoded in C when the
        extension is built, else one `feed` at a time. The two give the same result."""
        blocks = record_blocks(records, frame, linktype, self._decoder.stats, self._expiry_ns)
        if blocks is None:
            for raw in raw_packets(records, frame, linktype):
                self.feed(raw)
            return
        self._linktypes.add(linktype)
        for block in blocks:
            self._feed_block(block)

    def _expiry_ns(self) -> int:
        return self._next_expire_ns

    def _feed_block(self, block: Block) -> None:
        """What `feed` does, for a block: Segments decoded in C go straight to the flow table
        (no record in the block reaches the next expiry time; a shard's block holds only its
        own flows' Segments, the others are counted in `block.segments`; IP packets of other
        protocols only in `block.others`); RawPackets take `feed`."""
        segments = block.segments
        counted = segments + block.others
        if counted:
            before = self.packets
            self.packets += counted
            self.tcp_packets += segments
            if (before | _GC_CHECK_MASK) < self.packets:
                self._gc_safety()  # the check of `feed`, once per 2^16 packets
            if self._first_ns is None:
                self._first_ns = block.first_ns
        items = block.items
        add_run = self._table.add_run
        n = len(items)
        i = add_run(items, 0)
        while i < n:
            self.feed(items[i])  # type: ignore[arg-type]
            i = add_run(items, i + 1)
        self._last_ns = block.last_ns

    def tick(self, now: float) -> None:
        """Expire flows idle at `now` (seconds). Live capture calls this when traffic is quiet."""
        self._table.expire(now)

    # -- flow lifecycle ------------------------------------------------------------------------

    def _flow_opened(self, flow: Flow) -> None:
        flow.make_consumer = self._make_stream  # at the flow's first payload byte

    def _new_stream(self) -> TlsStream:
        return TlsStream(timeline=self._timeline)

    def _flow_closed(self, flow: Flow) -> None:
        result, packed_timeline = self._flow_result(flow)
        results = self._results
        if self._on_flow is None and self._retain is None:
            frames = self.first_frames
            if frames is not None:
                _note_first_frame(frames, result)
            if not self._quota.keep(result):
                self._release(result)
            elif not isinstance(results, FlowStore):  # a shard without a store
                results.append(result)
                if self.finish_keys is not None:
                    self.finish_keys.append(self._finish_key(flow))
            elif frames is None:
                results.add(result, packed_timeline)
            else:  # a shard's store: what the merge needs to apply the report quota
                results.add(result, packed_timeline, self._finish_key(flow), problem_flow(result))
            return
        if self._on_flow is not None:
            result.verdict = verdict(result)
            self._on_flow(result)
            # The live report keeps what it printed; drop the timeline of a healthy flow now so
            # hours of capture do not accumulate packet rows.
            if not self.options.keep_all_timelines and not problem_flow(result):
                result.timeline = None
        if (self._retain is not None and not self._retain(result)) or not self._quota.keep(result):
            self._release(result)
            return
        if isinstance(results, FlowStore):  # streamed: the rows it was given, if any
            results.add(result)
        else:
            results.append(result)

    def _finish_key(self, flow: Flow) -> tuple[int, int]:
        """Where a flow was finished in the order of the whole capture: (the frame of the
        record being read, then the order within it). A sweep finishes the closed flows, then
        the idle ones, each by last activity; the end of the capture, by id (first frame)."""
        if self._at_capture_end:
            return (_END_OF_CAPTURE, flow.first_frame)
        return (self._table.frame, (0 if flow.closed else 1 << 62) + flow.last_frame)

    def _release(self, result: FlowResult) -> None:
        """Not kept for the report: counted in the summary, then forgotten."""
        self._released += 1
        for finding in result.findings:
            self._released_findings[finding.name] = self._released_findings.get(finding.name, 0) + 1

    def _flow_result(self, flow: Flow) -> tuple[FlowResult, bytes | None]:
        """The flow's result, and for a stored batch analysis its timeline packed instead of
        built (`_finish_flow` builds the rows when the flow is read, if the report shows
        them)."""
        result = flow.to_result(flow.id, with_timeline=False)
        timeline = flow.timeline_state()
        # The capture's last packet time is the same in every shard, so sharded runs agree.
        now = self._last_ns / 1e9 if self._at_capture_end and self._last_ns is not None else None
        findings = tcp_rules.diagnose(flow, self.options.thresholds, now=now, timeline=timeline)
        stream = flow.consumer
        labels: tuple[SideLabels, SideLabels] | None = None
        if isinstance(stream, TlsStream) and stream.is_tls:
            result.tls = stream.summary()
            findings.extend(tls_rules.diagnose(stream, tcp_rules.tls_context(flow)))
            if self.options.timelines:
                labels = stream.label_state()
        flow.consumer = None
        result.findings = _ordered(findings)
        self._context.add_flow(flow, result)
        if not self.options.timelines:
            # The report shows no timeline: none to build, none to pack into the store.
            result.timeline_skipped = timeline[6]
            return result, None
        if timeline[0] and self._on_flow is None and isinstance(self._results, FlowStore):
            # The store keeps the timeline packed (~1.5 KB instead of ~30 KB of row objects
            # per flow, and pickling a hundred rows into the store and back cost more than
            # building them). `_finish_flow` builds the rows when the flow is read, only for
            # the flows whose timeline the report shows: problem flows (some become problems
            # only through a capture-level rule), or all with `keep_all_timelines`. (Sharded
            # runs build the rows: `merge_shards` makes a new PartialCapture.) The TLS labels
            # go in as the stream keeps them, and are put in frame order only then; when they
            # outnumber the rows kept, only those of the rows' frames go in.
            kept = timeline_kept(timeline)
            parked: _ParkedLabels = labels
            if labels is not None and labels[0][3] + labels[1][3] > kept:
                by_frame = labels_from_state(labels)
                parked = {f: by_frame[f] for f in timeline_frames(timeline) if f in by_frame}
            result.timeline_skipped = timeline[6] - kept
            return result, _park(timeline, parked)
        if self._on_flow is not None and not self.options.keep_all_timelines:
            worst = result.max_severity
            if worst is None or worst < Severity.WARNING:
                # Streamed (live), a flow without a warning never shows its timeline: the
                # caller drops it (`cli/live.py`), so its rows are not built (a live capture
                # spent a fifth of its time building them).
                result.timeline_skipped = timeline[6] - timeline_kept(timeline)
                return result, None
        rows, result.timeline_skipped = timeline_rows(timeline)
        if labels is not None:
            _label_rows(rows, labels_from_state(labels))
        result.timeline = rows
        return result, None

    # -- the end -------------------------------------------------------------------------------

    def close(self, reader: Capture | None = None) -> PartialCapture:
        """Close every flow; what is known before the capture-level rules."""
        self._at_capture_end = True
        self._table.finish()
        table = self._table
        if table.evictions:
            self._context.add_evictions(table.evictions, self.options.limits.max_flows)
        if table.late_after_early_close:
            self._context.add_late_after_early_close(
                table.late_after_early_close,
                table.late_after_early_close_frames,
                self.options.limits.max_closed_flows,
            )
        damaged = False
        if reader is not None:
            self._context.add_capture_notes(reader.notes)
            for damage in reader.damage:
                damaged = True
                self._context.add_damage(damage.offset, damage.reason, reader.frames_read)
        return PartialCapture(
            path=self.path,
            info=reader.info if reader is not None else None,
            packets=self.packets,
            tcp_packets=self.tcp_packets,
            first_ns=self._first_ns,
            last_ns=self._last_ns,
            linktypes=set(reader.linktypes) if reader is not None else set(self._linktypes),
            damaged=damaged,
            flows=self._results,
            context=self._context,
            decode_stats=self._decoder.stats,
            flows_released=self._released,
            released_findings=dict(self._released_findings),
            first_frames=self.first_frames,
            finish_keys=self.finish_keys,
        )

    def finish(self, reader: Capture | None = None) -> CaptureResult:
        return conclude(self.close(reader), self.options)


def conclude(part: PartialCapture, options: AnalysisOptions) -> CaptureResult:
    """Capture-level rules, verdicts and ordering: the last step of every analysis."""
    flows: list[FlowResult] | FlowStore
    if isinstance(part.flows, FlowStore):
        flows = part.flows
        capture_findings = _conclude_store(flows, part, options)
    else:
        flows = sorted(part.flows, key=lambda r: r.id)
        capture_findings = capture_rules.attach(
            flows,
            capture_rules.diagnose_capture(
                flows, part.context, options.thresholds, part.decode_stats
            ),
        )
        for flow in flows:
            _finish_flow(flow, None, options)
    if part.flows_released:
        capture_findings.append(_report_limit(part, options))
    info = part.info
    return CaptureResult(
        path=part.path,
        format=info.format if info is not None else "pcap",
        link_types=sorted({linktype_name(lt) for lt in part.linktypes}),
        packets=part.packets,
        tcp_packets=part.tcp_packets,
        first_time=part.first_ns / 1e9 if part.first_ns is not None else None,
        last_time=part.last_ns / 1e9 if part.last_ns is not None else None,
        damaged=part.damaged,
        compression=info.compression if info is not None else None,
        flows=flows,
        findings=_ordered(capture_findings),
        flows_released=part.flows_released,
        released_findings=dict(sorted(part.released_findings.items())),
    )


def _conclude_store(
    store: FlowStore, part: PartialCapture, options: AnalysisOptions
) -> list[Finding]:
    """`conclude` for stored flows: capture-rule findings of a flow become amendments of the
    store, and each flow gets its last touches (`_finish_flow`) whenever it is read."""
    capture_level: list[Finding] = []
    pairs = capture_rules.diagnose_capture(
        store, part.context, options.thresholds, part.decode_stats
    )
    for flow_id, finding in pairs:
        if flow_id is None:
            capture_level.append(finding)
        else:
            store.amend(flow_id, finding, capture_rules.superseded_by(finding))
    store.seal(lambda flow, packed: _finish_flow(flow, packed, options))
    return sorted(capture_level, key=Finding.sort_key)


# The "frame" at which the flows still open at the end of the capture are finished.
_END_OF_CAPTURE: Final = 1 << 62


def _note_first_frame(frames: array[int], flow: FlowResult) -> None:
    """`frames[flow.id - 1] = flow.first_frame`, growing `frames` with -1 (flows end in any
    order). One append per flow in all: `extend(repeat(-1, n))` for a gap of one or two cost
    ~2,800 instructions a flow, compiled."""
    index = flow.id - 1
    while len(frames) <= index:
        frames.append(-1)
    frames[index] = flow.first_frame


def _finish_flow(flow: FlowResult, packed_timeline: bytes | None, options: AnalysisOptions) -> None:
    """Findings in report order, the verdict, and a timeline only for a problem flow (or for
    every flow when asked)."""
    flow.findings = _ordered(flow.findings)
    flow.verdict = verdict(flow)
    if not options.keep_all_timelines and not problem_flow(flow):
        flow.timeline = None
    elif flow.timeline is None and packed_timeline is not None:
        flow.timeline = _unpark(packed_timeline)


# A stored flow's TLS labels (`Engine._flow_result`): as the stream keeps them, by frame (only
# those of the timeline's frames, when there were more labels than rows), or none.
_ParkedLabels = tuple[SideLabels, SideLabels] | dict[int, list[str]] | None


def _park(timeline: TimelineState, labels: _ParkedLabels) -> bytes:
    # marshal: ~3 us per flow. Not compressed: zlib took ten times as long to save ~900 bytes
    # per flow of a store that moves to a temporary file beyond a few MB anyway.
    return marshal.dumps((timeline, labels), MARSHAL_VERSION)


def _unpark(blob: bytes) -> list[TimelineRow]:
    timeline, labels = marshal.loads(blob)
    rows, _ = timeline_rows(timeline)
    if labels is not None:
        _label_rows(rows, labels if isinstance(labels, dict) else labels_from_state(labels))
    return rows


def _label_rows(rows: list[TimelineRow], labels: dict[int, list[str]]) -> None:
    for row in rows:
        row.tls = labels.get(row.frame, [])


def _report_limit(part: PartialCapture, options: AnalysisOptions) -> Finding:
    limit = options.limits.max_report_flows
    worst = ", ".join(f"{name} {n}" for name, n in sorted(part.released_findings.items()))
    released = part.flows_released
    if released == 1:
        what, they, their = "1 more flow was analysed but is not listed", "it counts", "its"
    else:
        what, they, their = (
            f"{released:,} more flows were analysed but are not listed",
            "they count",
            "their",
        )
    return make_finding(
        "capture-report-limit",
        f"{what}: the report keeps at most {limit:,} flows (--max-report-flows; half healthy, half "
        f"with problems) so memory stays bounded; {they} in the summary"
        + (f" ({their} findings: {worst})" if worst else ""),
        frames=(),
        count=released,
    )


def _ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=Finding.sort_key)


@contextlib.contextmanager
def gc_tuned() -> Iterator[None]:
    """No automatic cyclic GC for the length of a batch analysis (see `_GC_CHECK_MASK`);
    the collector's state comes back after.

    `gc.freeze()` moves what exists now (modules, registries, options) out of the collector's
    sight, so a safety collection only walks objects created by the analysis.
    """
    global _gc_depth, _gc_was_enabled
    with _gc_lock:  # analyses may run in threads (Dask workers): the outermost one decides
        _gc_depth += 1
        if _gc_depth == 1:
            _gc_was_enabled = gc.isenabled()
            if _gc_was_enabled:  # disabled on purpose by the caller: leave it so
                gc.freeze()
                gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()
                gc.unfreeze()


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = False


def analyze_partial(
    path: str, options: AnalysisOptions | None = None, shard: Shard | None = None
) -> PartialCapture:
    """Read one capture (or one shard of its flows) up to, not including, the capture rules."""
    options = options or AnalysisOptions()
    with gc_tuned(), open_capture(path, max_input_bytes=options.limits.max_input_bytes) as reader:
        engine = Engine(options, path=path, shard=shard)
        engine.feed_capture(reader)
        return engine.close(reader)


class FlowTableOverflow(Exception):
    """An engine made with `stop_on_eviction` had to evict a flow (`Limits.max_flows`)."""

    def __init__(self, evictions: int) -> None:
        super().__init__(f"the flow table evicted {evictions} flows")
        self.evictions = evictions


# Compiled, a class can derive from few built-in types; this one stays a Python class.
@mypyc_attr(native_class=False)
class AnalysisInterrupted(KeyboardInterrupt):
    """Ctrl-C during an analysis: `partial` holds what the packets read so far show."""

    def __init__(self, partial: CaptureResult) -> None:
        super().__init__()
        self.partial = partial


def analyze_capture(
    path: str, options: AnalysisOptions | None = None, on_flow: FlowCallback | None = None
) -> CaptureResult:
    """Open, read and analyse one capture (raises CaptureError if it cannot be read at all;
    AnalysisInterrupted, carrying the result so far marked incomplete, on Ctrl-C)."""
    options = options or AnalysisOptions()
    with gc_tuned(), open_capture(path, max_input_bytes=options.limits.max_input_bytes) as reader:
        engine = Engine(options, path=path, on_flow=on_flow)
        try:
            engine.feed_capture(reader)
        except KeyboardInterrupt:
            partial = engine.finish(reader)
            partial.incomplete = True
            raise AnalysisInterrupted(partial) from None
        return engine.finish(reader)
