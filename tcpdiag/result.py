"""What an analysis produces: the data behind every report format.

The shapes mirror the JSON contract in the project's `spec/report.md` (FLOW, FINDING and the
capture object); `report/json.py` turns them into that JSON, the other renderers read them too.
Like `model.py`, this module is a shared leaf: every stage may import it, it imports no stage.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

_T = TypeVar("_T")


def _field_values(cls: type[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving an instance's field values in field order (what `cls(*values)`
    takes), in C (`operator.attrgetter`)."""
    names = [f.name for f in dataclasses.fields(cls)]
    get: Callable[[Any], Any] = operator.attrgetter(*names)
    if len(names) == 1:
        single = get
        get = lambda obj: (single(obj),)  # noqa: E731 - attrgetter of one name gives no tuple
    return get


def _field_index(cls: type[Any], name: str) -> int:
    return [f.name for f in dataclasses.fields(cls)].index(name)


def _pickled_by_fields(cls: type[_T]) -> type[_T]:
    """Pickle instances as (class, field values): results cross process boundaries
    (`analyze --jobs`, Dask shards) by the thousand; the dataclass default (a state dict built
    by Python code per object) took twice the time and twice the bytes."""
    get = _field_values(cls)

    def reduce(self: _T) -> tuple[type[_T], tuple[Any, ...]]:
        return (cls, get(self))

    setattr(cls, "__reduce__", reduce)  # noqa: B010 - mypy refuses assigning a method
    return cls


class Severity(enum.IntEnum):
    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r} (info, warning, error)") from None


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class Finding:
    """One diagnosis. Per-packet analyses (retransmission...) appear once per flow with `count`
    and every frame they apply to; other findings list the frames that prove them."""

    name: str
    severity: Severity
    message: str
    frames: tuple[int, ...] = ()
    time: float | None = None
    flow: int | None = None
    count: int = 1

    def sort_key(self) -> tuple[int, str]:
        return (self.frames[0] if self.frames else 0, self.name)


@_pickled_by_fields
@dataclass(slots=True)
class Handshake:
    syn: bool = False
    syn_ack: bool = False
    ack: bool = False
    rtt: float | None = None
    syn_retransmissions: int = 0
    syn_ack_retransmissions: int = 0
    # Evidence kept for the diagnoses (not in the contract's JSON, but in ours as extras).
    syn_frames: list[int] = field(default_factory=list)
    syn_times: list[float] = field(default_factory=list)
    syn_ack_frames: list[int] = field(default_factory=list)
    syn_ack_times: list[float] = field(default_factory=list)


@_pickled_by_fields
@dataclass(slots=True)
class Close:
    kind: str = "none"  # "fin" | "rst" | "none"
    by: str | None = None  # "client" | "server" | "both" | None
    frame: int | None = None


@_pickled_by_fields
@dataclass(slots=True)
class RttStats:
    min: float
    median: float
    max: float
    samples: int


@_pickled_by_fields
@dataclass(slots=True)
class TcpCounters:
    retransmissions: int = 0
    fast_retransmissions: int = 0
    spurious_retransmissions: int = 0
    out_of_order: int = 0
    lost_segments: int = 0
    acked_unseen: int = 0
    duplicate_acks: int = 0
    zero_windows: int = 0
    zero_window_probes: int = 0
    window_full: int = 0
    keep_alives: int = 0
    rtt: RttStats | None = None


@_pickled_by_fields
@dataclass(slots=True)
class TlsMessage:
    sender: str  # "client" | "server"  (JSON key "from")
    frame: int
    type: str
    length: int


@_pickled_by_fields
@dataclass(slots=True)
class TlsAlert:
    sender: str
    frame: int
    level: str | None
    description: str | None
    encrypted: bool


@_pickled_by_fields
@dataclass(slots=True)
class TlsSummary:
    versions_offered: list[str] = field(default_factory=list)
    version: str | None = None
    sni: str | None = None
    alpn: list[str] = field(default_factory=list)
    cipher_suite: str | None = None
    handshake_complete: bool = False
    records_client: int = 0
    records_server: int = 0
    messages: list[TlsMessage] = field(default_factory=list)
    alerts: list[TlsAlert] = field(default_factory=list)
    ja3: str | None = None
    ja4: str | None = None
    starttls: str | None = None  # "smtp", "imap"... when TLS followed a plaintext upgrade
    # Sizes (bytes) of the certificates in the server's plaintext Certificate message, in chain
    # order; empty when none was seen (TLS 1.3 sends it encrypted).
    certificates: list[int] = field(default_factory=list)


@_pickled_by_fields
@dataclass(slots=True)
class TimelineRow:
    """One packet of a flow as the annotated timeline shows it."""

    frame: int
    time: float
    sender: str  # "client" | "server"
    flags: int
    seq: int  # relative
    ack: int  # relative (0 when the ACK flag is unset)
    length: int
    window: int  # scaled when the scale is known, else raw
    tls: list[str] = field(default_factory=list)  # e.g. ["ClientKeyExchange 75", "Finished* 45"]
    notes: list[str] = field(default_factory=list)  # finding names that apply to this frame


@_pickled_by_fields
@dataclass(slots=True)
class FlowResult:
    id: int
    client: str
    server: str
    ip_version: int
    client_inferred: bool
    first_frame: int
    last_frame: int
    start: float
    end: float
    packets_client: int = 0
    packets_server: int = 0
    bytes_client: int = 0
    bytes_server: int = 0
    state: str = "OTH"
    history: str = ""
    handshake: Handshake = field(default_factory=Handshake)
    close: Close = field(default_factory=Close)
    tcp: TcpCounters = field(default_factory=TcpCounters)
    tls: TlsSummary | None = None
    findings: list[Finding] = field(default_factory=list)
    verdict: str = ""
    # A capped view of the packets (head and tail), kept for problem flows or when asked.
    timeline: list[TimelineRow] | None = None
    timeline_skipped: int = 0  # packets elided from the middle of `timeline`

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def max_severity(self) -> Severity | None:
        # A plain loop: reports of a million flows ask this for every flow, most of which have
        # no finding or one (max() over a generator costs several times more).
        worst: Severity | None = None
        for finding in self.findings:
            if worst is None or finding.severity > worst:
                worst = finding.severity
        return worst


# -- a FlowResult as plain values ---------------------------------------------------------------
# The flow store (`store.py`) writes every finished flow and reads it back for the report. As
# nested lists and tuples of plain values (no class, no enum) through `marshal`, a flow costs
# about half what pickling its objects did: pickle names the class of each of a flow's ~15
# objects and looks every name up again when loading. `flow_from_plain` is the exact inverse of
# `flow_to_plain`.

_FLOW = _field_values(FlowResult)
_HANDSHAKE = _field_values(Handshake)
_CLOSE = _field_values(Close)
_TCP = _field_values(TcpCounters)
_RTT = _field_values(RttStats)
_TLS = _field_values(TlsSummary)
_TLS_MESSAGE = _field_values(TlsMessage)
_TLS_ALERT = _field_values(TlsAlert)
_FINDING = _field_values(Finding)
_ROW = _field_values(TimelineRow)
# Where the values that are objects themselves sit among their owner's field values.
_AT_HANDSHAKE = _field_index(FlowResult, "handshake")
_AT_CLOSE = _field_index(FlowResult, "close")
_AT_TCP = _field_index(FlowResult, "tcp")
_AT_TLS = _field_index(FlowResult, "tls")
_AT_FINDINGS = _field_index(FlowResult, "findings")
_AT_TIMELINE = _field_index(FlowResult, "timeline")
_AT_RTT = _field_index(TcpCounters, "rtt")
_AT_MESSAGES = _field_index(TlsSummary, "messages")
_AT_ALERTS = _field_index(TlsSummary, "alerts")
_AT_ID = _field_index(FlowResult, "id")
_AT_SEVERITY = _field_index(Finding, "severity")
_AT_FINDING_FLOW = _field_index(Finding, "flow")
_SEVERITIES = {int(s): s for s in Severity}


def flow_to_plain(flow: FlowResult) -> list[Any]:
    """The flow's field values, its objects turned into lists of their own (see above)."""
    values = list(_FLOW(flow))
    values[_AT_HANDSHAKE] = _HANDSHAKE(flow.handshake)
    values[_AT_CLOSE] = _CLOSE(flow.close)
    values[_AT_TCP] = _tcp_to_plain(flow.tcp)
    if flow.tls is not None:
        values[_AT_TLS] = _tls_to_plain(flow.tls)
    values[_AT_FINDINGS] = [_finding_to_plain(f) for f in flow.findings]
    if flow.timeline is not None:
        values[_AT_TIMELINE] = [_ROW(row) for row in flow.timeline]
    return values


def flow_from_plain(values: list[Any], new_id: int | None = None) -> FlowResult:
    """The `FlowResult` that `flow_to_plain` turned into `values` (which it reuses); with
    `new_id`, the flow gets that id, and so do its findings about it (merged shards)."""
    if new_id is not None:
        old_id = values[_AT_ID]
        values[_AT_ID] = new_id
        for finding in values[_AT_FINDINGS]:
            if finding[_AT_FINDING_FLOW] == old_id:
                finding[_AT_FINDING_FLOW] = new_id
    values[_AT_HANDSHAKE] = Handshake(*values[_AT_HANDSHAKE])
    values[_AT_CLOSE] = Close(*values[_AT_CLOSE])
    values[_AT_TCP] = _tcp_from_plain(values[_AT_TCP])
    if values[_AT_TLS] is not None:
        values[_AT_TLS] = _tls_from_plain(values[_AT_TLS])
    values[_AT_FINDINGS] = [_finding_from_plain(f) for f in values[_AT_FINDINGS]]
    if values[_AT_TIMELINE] is not None:
        values[_AT_TIMELINE] = [TimelineRow(*row) for row in values[_AT_TIMELINE]]
    return FlowResult(*values)


def _tcp_to_plain(tcp: TcpCounters) -> list[Any]:
    values = list(_TCP(tcp))
    if tcp.rtt is not None:
        values[_AT_RTT] = _RTT(tcp.rtt)
    return values


def _tcp_from_plain(values: list[Any]) -> TcpCounters:
    if values[_AT_RTT] is not None:
        values[_AT_RTT] = RttStats(*values[_AT_RTT])
    return TcpCounters(*values)


def _tls_to_plain(tls: TlsSummary) -> list[Any]:
    values = list(_TLS(tls))
    values[_AT_MESSAGES] = [_TLS_MESSAGE(m) for m in tls.messages]
    values[_AT_ALERTS] = [_TLS_ALERT(a) for a in tls.alerts]
    return values


def _tls_from_plain(values: list[Any]) -> TlsSummary:
    values[_AT_MESSAGES] = [TlsMessage(*m) for m in values[_AT_MESSAGES]]
    values[_AT_ALERTS] = [TlsAlert(*a) for a in values[_AT_ALERTS]]
    return TlsSummary(*values)


def _finding_to_plain(finding: Finding) -> list[Any]:
    values = list(_FINDING(finding))
    values[_AT_SEVERITY] = int(finding.severity)
    return values


def _finding_from_plain(values: list[Any]) -> Finding:
    values[_AT_SEVERITY] = _SEVERITIES[values[_AT_SEVERITY]]
    return Finding(*values)


@dataclass(slots=True)
class CaptureResult:
    path: str
    format: str  # "pcap" | "pcapng"
    link_types: list[str] = field(default_factory=list)
    packets: int = 0
    tcp_packets: int = 0
    first_time: float | None = None
    last_time: float | None = None
    damaged: bool = False
    compression: str | None = None  # "gzip" | "zstd" | None
    # In flow-id order. A list, or for a batch analysis a `store.FlowStore` that reads each flow
    # from a temporary file when asked (iterate it; do not hold all flows at once).
    flows: Sequence[FlowResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # capture-level findings
    # Live capture over hours releases healthy flows once reported (memory stays bounded); they
    # still count in the summary: how many, and their findings per name.
    flows_released: int = 0
    released_findings: dict[str, int] = field(default_factory=dict)
    # The analysis was interrupted (Ctrl-C): what was read so far, analysed as if it ended there.
    incomplete: bool = False

    def all_findings(self) -> list[Finding]:
        return list(self.iter_findings())

    def iter_findings(self) -> Iterator[Finding]:
        """Capture-level findings, then each flow's, reading one flow at a time."""
        yield from self.findings
        for flow in self.flows:
            yield from flow.findings


@dataclass(slots=True)
class AnalysisResult:
    version: str
    captures: list[CaptureResult] = field(default_factory=list)
