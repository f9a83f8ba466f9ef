"""Wires the stages together: RawPacket in, CaptureResult out.

Theory of operation: the engine is sans-IO. `feed()` takes one RawPacket, decodes it, and hands
TCP segments to the flow table, ICMP errors and ARP packets to the capture context. When the flow
table opens a flow, the engine attaches a TLS stream consumer (which detects TLS by content and
stops wanting bytes when the stream is something else). When the table closes a flow (FIN/RST
and quiet, idle timeout, eviction, end of capture), the engine runs the per-flow rules, turns the
flow into a `FlowResult`, keeps only that summary, and forgets the flow: memory is bounded by the
number of concurrent flows. `finish()` closes what is left, runs the capture-level rules (ICMP and
ARP correlation, "server up but dropping SYNs", capture quality), computes verdicts, and returns
the result ordered by flow id. Time comes only from packet timestamps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from tcpdiag.capture import CaptureReader, open_capture
from tcpdiag.config import AnalysisOptions
from tcpdiag.decode import Decoder
from tcpdiag.findings import capture_rules, tcp_rules, tls_rules
from tcpdiag.findings.context import CaptureContext
from tcpdiag.findings.registry import make_finding
from tcpdiag.findings.verdict import problem_flow, verdict
from tcpdiag.flow import Flow, FlowTable
from tcpdiag.model import ArpPacket, IcmpError, RawPacket, Segment, linktype_name
from tcpdiag.result import CaptureResult, Finding, FlowResult
from tcpdiag.tls import TlsStream

if TYPE_CHECKING:
    from tcpdiag.capture import CaptureInfo

# Expire idle flows at most this often (capture seconds): a scan of the table is not free.
_EXPIRE_EVERY = 1.0

FlowCallback = Callable[[FlowResult], None]


class Engine:
    """Feed RawPackets in capture order, then `finish()` for the CaptureResult."""

    def __init__(
        self,
        options: AnalysisOptions | None = None,
        path: str = "",
        on_flow: FlowCallback | None = None,
    ) -> None:
        self.options = options or AnalysisOptions()
        self.path = path
        self._on_flow = on_flow
        self._decoder = Decoder()
        self._table = FlowTable(self.options, on_open=self._flow_opened, on_close=self._flow_closed)
        self._context = CaptureContext()
        self._results: list[FlowResult] = []
        self._linktypes: set[int] = set()
        self.packets = 0
        self.tcp_packets = 0
        self._first_ns: int | None = None
        self._last_ns: int | None = None
        self._next_expire = 0.0

    # -- feeding -------------------------------------------------------------------------------

    def feed(self, raw: RawPacket) -> None:
        self.packets += 1
        ts = raw.ts_ns
        if self._first_ns is None:
            self._first_ns = ts
        self._last_ns = ts
        if raw.linktype not in self._linktypes:
            self._linktypes.add(raw.linktype)
        rec = self._decoder.decode(raw)
        if rec is None:
            return
        if type(rec) is Segment:
            self.tcp_packets += 1
            self._table.add(rec)
            if rec.time >= self._next_expire:
                self._table.expire(rec.time)
                self._next_expire = rec.time + _EXPIRE_EVERY
        elif type(rec) is IcmpError:
            self._context.add_icmp(rec)
        elif type(rec) is ArpPacket:
            self._context.add_arp(rec)

    def feed_all(self, packets: Iterable[RawPacket]) -> None:
        for raw in packets:
            self.feed(raw)

    def tick(self, now: float) -> None:
        """Expire flows idle at `now` (seconds). Live capture calls this when traffic is quiet."""
        self._table.expire(now)

    # -- flow lifecycle ------------------------------------------------------------------------

    def _flow_opened(self, flow: Flow) -> None:
        flow.consumer = TlsStream()

    def _flow_closed(self, flow: Flow) -> None:
        result = self._flow_result(flow)
        self._results.append(result)
        if self._on_flow is not None:
            result.verdict = verdict(result)
            self._on_flow(result)

    def _flow_result(self, flow: Flow) -> FlowResult:
        result = flow.to_result(flow.id)
        findings = tcp_rules.diagnose(flow, self.options.thresholds)
        stream = flow.consumer
        if isinstance(stream, TlsStream) and stream.is_tls:
            result.tls = stream.summary()
            findings.extend(tls_rules.diagnose(stream, tls_rules.context_from_flow(flow)))
            if result.timeline is not None:
                labels = stream.records_by_frame()
                for row in result.timeline:
                    row.tls = labels.get(row.frame, [])
        flow.consumer = None
        result.findings = _ordered(findings)
        self._context.add_flow(flow, result)
        return result

    # -- the end -------------------------------------------------------------------------------

    def finish(self, reader: CaptureReader | None = None) -> CaptureResult:
        self._table.finish()
        flows = sorted(self._results, key=lambda r: r.id)
        by_id = {f.id: f for f in flows}
        capture_findings: list[Finding] = []
        for flow_id, finding in capture_rules.diagnose_capture(
            flows, self._context, self.options.thresholds, self._decoder.stats
        ):
            target = by_id.get(flow_id) if flow_id is not None else None
            if target is None:
                capture_findings.append(finding)
            else:
                target.findings.append(finding)
        info: CaptureInfo | None = reader.info if reader is not None else None
        if reader is not None:
            capture_findings.extend(_reader_findings(reader))
        keep_all = self.options.keep_all_timelines
        for flow in flows:
            flow.findings = _ordered(flow.findings)
            flow.verdict = verdict(flow)
            if not keep_all and not problem_flow(flow):
                flow.timeline = None
        first = self._first_ns / 1e9 if self._first_ns is not None else None
        last = self._last_ns / 1e9 if self._last_ns is not None else None
        linktypes = reader.linktypes if reader is not None else self._linktypes
        return CaptureResult(
            path=self.path,
            format=info.format if info is not None else "pcap",
            link_types=sorted({linktype_name(lt) for lt in linktypes}),
            packets=self.packets,
            tcp_packets=self.tcp_packets,
            first_time=first,
            last_time=last,
            damaged=bool(reader is not None and reader.damage),
            compression=info.compression if info is not None else None,
            flows=flows,
            findings=_ordered(capture_findings),
        )


def _ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=Finding.sort_key)


def _reader_findings(reader: CaptureReader) -> list[Finding]:
    out: list[Finding] = []
    for damage in reader.damage:
        out.append(
            make_finding(
                "capture-damaged",
                f"the capture is damaged at byte offset {damage.offset}: {damage.reason}; "
                f"the {reader.frames_read} packets before it were analysed",
                frames=(),
            )
        )
    for note in reader.notes:
        out.append(make_finding(note.name, note.message, frames=(), count=note.count))
    return out


def analyze_capture(
    path: str, options: AnalysisOptions | None = None, on_flow: FlowCallback | None = None
) -> CaptureResult:
    """Open, read and analyse one capture (raises CaptureError if it cannot be read at all)."""
    options = options or AnalysisOptions()
    with open_capture(path, max_input_bytes=options.limits.max_input_bytes) as reader:
        engine = Engine(options, path=path, on_flow=on_flow)
        for raw in reader:
            engine.feed(raw)
        return engine.finish(reader)
