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
from typing import Any, Final


def _field_values(cls: type[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving an instance's field values in field order (what `cls(*values)`
    takes), in C (`operator.attrgetter`)."""
    names = [f.name for f in dataclasses.fields(cls)]
    get: Callable[[Any], Any] = operator.attrgetter(*names)
    if len(names) == 1:
        single = get
        get = lambda obj: (single(obj),)  # noqa: E731 - attrgetter of one name gives no tuple
    return get


class Severity(enum.IntEnum):
    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        # Indexed, not `self.name.lower()`: an enum's `name` is a property in Python code, and
        # the JSON report asks for every finding.
        return _SEVERITY_LABELS[self]

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r} (info, warning, error)") from None


# `Severity.label`, by value (0 is no severity).
_SEVERITY_LABELS: Final = ("", "info", "warning", "error")


# -- the result classes -------------------------------------------------------------------------
# Dataclasses (fields, equality, repr, `dataclasses.replace`) whose `__init__` is written out:
# compiled with mypyc they are native classes, and the engine builds several for every flow;
# the `__init__` the dataclasses module would generate is interpreted (~4,000 instructions an
# object, called from compiled code through the type's generic init), the one below is compiled.
# `tests/unit/test_result.py` checks each against the dataclass `__init__` it stands for (the
# fields by position and by name, the same defaults, fresh lists). Instances pickle as (class,
# field values): results cross process boundaries (`analyze --jobs`, Dask shards) by the
# thousand, and the dataclass default (a state dict built by Python code per object) took twice
# the time and the bytes.
# (Compiled, a `float` field keeps an int given to it as a float, as the engine's compiled
# classes always have; the producers give floats, and tests/unit/test_compiled_equivalence.py
# compares compiled and pure reports of every capture byte for byte.)


@dataclass(frozen=True, slots=True)
class Finding:
    """One diagnosis. Per-packet analyses (retransmission...) appear once per flow with `count`
    and every frame they apply to; other findings list the frames that prove them.

    (Frozen: its `__init__` is the generated one; `new_finding`, which builds nearly all of
    them, fills the fields directly.)"""

    name: str
    severity: Severity
    message: str
    frames: tuple[int, ...] = ()
    time: float | None = None
    flow: int | None = None
    count: int = 1

    def sort_key(self) -> tuple[int, str]:
        return (self.frames[0] if self.frames else 0, self.name)

    def __reduce__(self) -> tuple[type[Finding], tuple[Any, ...]]:
        return (Finding, _FINDING(self))


# A Finding is built field by field through its slots, not through `Finding(...)`: the frozen
# dataclass's generated `__init__` sets each field with `object.__setattr__` from interpreted
# code, ~13,000 instructions a finding, ~6,500 through the slots' own setters (callgrind; the
# rules make one for every problem, the report again for every finding it reads from the flow
# store). The same object, field for field (`tests/unit/test_registry.py`, which also checks
# that these are all of Finding's fields, in order). Compiled, Finding is a native class: its
# fields are getset descriptors instead of slots (set the same way), and only its own `__new__`
# may make one.
FINDING_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Finding))
_SLOT_SETTERS: Final[dict[str, Callable[[Any, Any], None]]] = {
    name: vars(Finding)[name].__set__ for name in FINDING_FIELDS
}
_NEW_FINDING: Final = Finding.__new__
_SET_NAME: Final = _SLOT_SETTERS["name"]
_SET_SEVERITY: Final = _SLOT_SETTERS["severity"]
_SET_MESSAGE: Final = _SLOT_SETTERS["message"]
_SET_FRAMES: Final = _SLOT_SETTERS["frames"]
_SET_TIME: Final = _SLOT_SETTERS["time"]
_SET_FLOW: Final = _SLOT_SETTERS["flow"]
_SET_COUNT: Final = _SLOT_SETTERS["count"]


def new_finding(
    name: str,
    severity: Severity,
    message: str,
    frames: tuple[int, ...],
    time: float | None,
    flow: int | None,
    count: int,
) -> Finding:
    """`Finding(name, severity, message, frames, time, flow, count)`, made without the frozen
    dataclass's slow `__init__` (see above)."""
    finding = _NEW_FINDING(Finding)
    _SET_NAME(finding, name)
    _SET_SEVERITY(finding, severity)
    _SET_MESSAGE(finding, message)
    _SET_FRAMES(finding, frames)
    _SET_TIME(finding, time)
    _SET_FLOW(finding, flow)
    _SET_COUNT(finding, count)
    return finding


@dataclass(slots=True, init=False)
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

    def __init__(
        self,
        syn: bool = False,
        syn_ack: bool = False,
        ack: bool = False,
        rtt: float | None = None,
        syn_retransmissions: int = 0,
        syn_ack_retransmissions: int = 0,
        syn_frames: list[int] | None = None,
        syn_times: list[float] | None = None,
        syn_ack_frames: list[int] | None = None,
        syn_ack_times: list[float] | None = None,
    ) -> None:
        self.syn = syn
        self.syn_ack = syn_ack
        self.ack = ack
        self.rtt = rtt
        self.syn_retransmissions = syn_retransmissions
        self.syn_ack_retransmissions = syn_ack_retransmissions
        self.syn_frames = [] if syn_frames is None else syn_frames
        self.syn_times = [] if syn_times is None else syn_times
        self.syn_ack_frames = [] if syn_ack_frames is None else syn_ack_frames
        self.syn_ack_times = [] if syn_ack_times is None else syn_ack_times

    def __reduce__(self) -> tuple[type[Handshake], tuple[Any, ...]]:
        return (Handshake, _HANDSHAKE(self))


@dataclass(slots=True, init=False)
class Close:
    kind: str = "none"  # "fin" | "rst" | "none"
    by: str | None = None  # "client" | "server" | "both" | None
    frame: int | None = None

    def __init__(self, kind: str = "none", by: str | None = None, frame: int | None = None) -> None:
        self.kind = kind
        self.by = by
        self.frame = frame

    def __reduce__(self) -> tuple[type[Close], tuple[Any, ...]]:
        return (Close, _CLOSE(self))


@dataclass(slots=True, init=False)
class RttStats:
    min: float
    median: float
    max: float
    samples: int

    def __init__(self, min: float, median: float, max: float, samples: int) -> None:
        self.min = min
        self.median = median
        self.max = max
        self.samples = samples

    def __reduce__(self) -> tuple[type[RttStats], tuple[Any, ...]]:
        return (RttStats, _RTT(self))


@dataclass(slots=True, init=False)
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

    def __init__(
        self,
        retransmissions: int = 0,
        fast_retransmissions: int = 0,
        spurious_retransmissions: int = 0,
        out_of_order: int = 0,
        lost_segments: int = 0,
        acked_unseen: int = 0,
        duplicate_acks: int = 0,
        zero_windows: int = 0,
        zero_window_probes: int = 0,
        window_full: int = 0,
        keep_alives: int = 0,
        rtt: RttStats | None = None,
    ) -> None:
        self.retransmissions = retransmissions
        self.fast_retransmissions = fast_retransmissions
        self.spurious_retransmissions = spurious_retransmissions
        self.out_of_order = out_of_order
        self.lost_segments = lost_segments
        self.acked_unseen = acked_unseen
        self.duplicate_acks = duplicate_acks
        self.zero_windows = zero_windows
        self.zero_window_probes = zero_window_probes
        self.window_full = window_full
        self.keep_alives = keep_alives
        self.rtt = rtt

    def __reduce__(self) -> tuple[type[TcpCounters], tuple[Any, ...]]:
        return (TcpCounters, _TCP(self))


@dataclass(slots=True, init=False)
class TlsMessage:
    sender: str  # "client" | "server"  (JSON key "from")
    frame: int
    type: str
    length: int

    def __init__(self, sender: str, frame: int, type: str, length: int) -> None:
        self.sender = sender
        self.frame = frame
        self.type = type
        self.length = length

    # (`type` is a field here, hence `Callable`)
    def __reduce__(self) -> tuple[Callable[..., TlsMessage], tuple[Any, ...]]:
        return (TlsMessage, _TLS_MESSAGE(self))


@dataclass(slots=True, init=False)
class TlsAlert:
    sender: str
    frame: int
    level: str | None
    description: str | None
    encrypted: bool

    def __init__(
        self, sender: str, frame: int, level: str | None, description: str | None, encrypted: bool
    ) -> None:
        self.sender = sender
        self.frame = frame
        self.level = level
        self.description = description
        self.encrypted = encrypted

    def __reduce__(self) -> tuple[type[TlsAlert], tuple[Any, ...]]:
        return (TlsAlert, _TLS_ALERT(self))


@dataclass(slots=True, init=False)
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

    def __init__(
        self,
        versions_offered: list[str] | None = None,
        version: str | None = None,
        sni: str | None = None,
        alpn: list[str] | None = None,
        cipher_suite: str | None = None,
        handshake_complete: bool = False,
        records_client: int = 0,
        records_server: int = 0,
        messages: list[TlsMessage] | None = None,
        alerts: list[TlsAlert] | None = None,
        ja3: str | None = None,
        ja4: str | None = None,
        starttls: str | None = None,
        certificates: list[int] | None = None,
    ) -> None:
        self.versions_offered = [] if versions_offered is None else versions_offered
        self.version = version
        self.sni = sni
        self.alpn = [] if alpn is None else alpn
        self.cipher_suite = cipher_suite
        self.handshake_complete = handshake_complete
        self.records_client = records_client
        self.records_server = records_server
        self.messages = [] if messages is None else messages
        self.alerts = [] if alerts is None else alerts
        self.ja3 = ja3
        self.ja4 = ja4
        self.starttls = starttls
        self.certificates = [] if certificates is None else certificates

    def __reduce__(self) -> tuple[type[TlsSummary], tuple[Any, ...]]:
        return (TlsSummary, _TLS(self))


@dataclass(slots=True, init=False)
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

    def __init__(
        self,
        frame: int,
        time: float,
        sender: str,
        flags: int,
        seq: int,
        ack: int,
        length: int,
        window: int,
        tls: list[str] | None = None,
        notes: list[str] | None = None,
    ) -> None:
        self.frame = frame
        self.time = time
        self.sender = sender
        self.flags = flags
        self.seq = seq
        self.ack = ack
        self.length = length
        self.window = window
        self.tls = [] if tls is None else tls
        self.notes = [] if notes is None else notes

    def __reduce__(self) -> tuple[type[TimelineRow], tuple[Any, ...]]:
        return (TimelineRow, _ROW(self))


@dataclass(slots=True, init=False)
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

    def __init__(
        self,
        id: int,
        client: str,
        server: str,
        ip_version: int,
        client_inferred: bool,
        first_frame: int,
        last_frame: int,
        start: float,
        end: float,
        packets_client: int = 0,
        packets_server: int = 0,
        bytes_client: int = 0,
        bytes_server: int = 0,
        state: str = "OTH",
        history: str = "",
        handshake: Handshake | None = None,
        close: Close | None = None,
        tcp: TcpCounters | None = None,
        tls: TlsSummary | None = None,
        findings: list[Finding] | None = None,
        verdict: str = "",
        timeline: list[TimelineRow] | None = None,
        timeline_skipped: int = 0,
    ) -> None:
        self.id = id
        self.client = client
        self.server = server
        self.ip_version = ip_version
        self.client_inferred = client_inferred
        self.first_frame = first_frame
        self.last_frame = last_frame
        self.start = start
        self.end = end
        self.packets_client = packets_client
        self.packets_server = packets_server
        self.bytes_client = bytes_client
        self.bytes_server = bytes_server
        self.state = state
        self.history = history
        self.handshake = Handshake() if handshake is None else handshake
        self.close = Close() if close is None else close
        self.tcp = TcpCounters() if tcp is None else tcp
        self.tls = tls
        self.findings = [] if findings is None else findings
        self.verdict = verdict
        self.timeline = timeline
        self.timeline_skipped = timeline_skipped

    def __reduce__(self) -> tuple[type[FlowResult], tuple[Any, ...]]:
        return (FlowResult, _FLOW(self))

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


# What each class's `__reduce__` pickles: its field values, in field order.
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


# -- a FlowResult as plain values ---------------------------------------------------------------
# The flow store (`store.py`) writes every finished flow and reads it back for the report. As
# nested lists and tuples of plain values (no class, no enum) through `marshal`, a flow costs
# about half what pickling its objects did: pickle names the class of each of a flow's ~15
# objects and looks every name up again when loading. `flow_from_plain` is the exact inverse of
# `flow_to_plain`. Each object becomes its field values in field order (a finding's severity as
# its number): a list, or a tuple where nothing is changed on the way back.

_SEVERITIES = {int(s): s for s in Severity}


def flow_to_plain(flow: FlowResult) -> list[Any]:
    """The flow's field values, its objects turned into lists and tuples of their own (see
    above). Field by field, in field order (`tests/unit/test_store.py` checks it against the
    fields): compiled, each is a read of the native object, where `operator.attrgetter` went
    through the generic attribute lookup."""
    tls = flow.tls
    timeline = flow.timeline
    return [
        flow.id,
        flow.client,
        flow.server,
        flow.ip_version,
        flow.client_inferred,
        flow.first_frame,
        flow.last_frame,
        flow.start,
        flow.end,
        flow.packets_client,
        flow.packets_server,
        flow.bytes_client,
        flow.bytes_server,
        flow.state,
        flow.history,
        _handshake_to_plain(flow.handshake),
        _close_to_plain(flow.close),
        _tcp_to_plain(flow.tcp),
        None if tls is None else _tls_to_plain(tls),
        [_finding_to_plain(f) for f in flow.findings],
        flow.verdict,
        None if timeline is None else [_row_to_plain(row) for row in timeline],
        flow.timeline_skipped,
    ]


def flow_from_plain(values: list[Any], new_id: int | None = None) -> FlowResult:
    """The `FlowResult` that `flow_to_plain` turned into `values`; with `new_id`, the flow gets
    that id, and so do its findings about it (merged shards)."""
    old_id: int = values[0]
    if new_id is not None:
        for finding in values[19]:  # its flow, as `_finding_to_plain` lists a finding's values
            if finding[5] == old_id:
                finding[5] = new_id
    tls = values[18]
    timeline = values[21]
    return FlowResult(
        old_id if new_id is None else new_id,
        values[1],
        values[2],
        values[3],
        values[4],
        values[5],
        values[6],
        values[7],
        values[8],
        values[9],
        values[10],
        values[11],
        values[12],
        values[13],
        values[14],
        _handshake_from_plain(values[15]),
        _close_from_plain(values[16]),
        _tcp_from_plain(values[17]),
        None if tls is None else _tls_from_plain(tls),
        [_finding_from_plain(f) for f in values[19]],
        values[20],
        None if timeline is None else [_row_from_plain(row) for row in timeline],
        values[22],
    )


def _handshake_to_plain(h: Handshake) -> tuple[Any, ...]:
    return (
        h.syn,
        h.syn_ack,
        h.ack,
        h.rtt,
        h.syn_retransmissions,
        h.syn_ack_retransmissions,
        h.syn_frames,
        h.syn_times,
        h.syn_ack_frames,
        h.syn_ack_times,
    )


def _handshake_from_plain(v: Sequence[Any]) -> Handshake:
    return Handshake(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9])


def _close_to_plain(close: Close) -> tuple[Any, ...]:
    return (close.kind, close.by, close.frame)


def _close_from_plain(v: Sequence[Any]) -> Close:
    return Close(v[0], v[1], v[2])


def _tcp_to_plain(tcp: TcpCounters) -> list[Any]:
    rtt = tcp.rtt
    return [
        tcp.retransmissions,
        tcp.fast_retransmissions,
        tcp.spurious_retransmissions,
        tcp.out_of_order,
        tcp.lost_segments,
        tcp.acked_unseen,
        tcp.duplicate_acks,
        tcp.zero_windows,
        tcp.zero_window_probes,
        tcp.window_full,
        tcp.keep_alives,
        None if rtt is None else (rtt.min, rtt.median, rtt.max, rtt.samples),
    ]


def _tcp_from_plain(v: Sequence[Any]) -> TcpCounters:
    rtt = v[11]
    return TcpCounters(
        v[0],
        v[1],
        v[2],
        v[3],
        v[4],
        v[5],
        v[6],
        v[7],
        v[8],
        v[9],
        v[10],
        None if rtt is None else RttStats(rtt[0], rtt[1], rtt[2], rtt[3]),
    )


def _tls_to_plain(tls: TlsSummary) -> list[Any]:
    return [
        tls.versions_offered,
        tls.version,
        tls.sni,
        tls.alpn,
        tls.cipher_suite,
        tls.handshake_complete,
        tls.records_client,
        tls.records_server,
        [(m.sender, m.frame, m.type, m.length) for m in tls.messages],
        [(a.sender, a.frame, a.level, a.description, a.encrypted) for a in tls.alerts],
        tls.ja3,
        tls.ja4,
        tls.starttls,
        tls.certificates,
    ]


def _tls_from_plain(v: Sequence[Any]) -> TlsSummary:
    return TlsSummary(
        v[0],
        v[1],
        v[2],
        v[3],
        v[4],
        v[5],
        v[6],
        v[7],
        [TlsMessage(m[0], m[1], m[2], m[3]) for m in v[8]],
        [TlsAlert(a[0], a[1], a[2], a[3], a[4]) for a in v[9]],
        v[10],
        v[11],
        v[12],
        v[13],
    )


def _finding_to_plain(f: Finding) -> list[Any]:
    return [f.name, int(f.severity), f.message, f.frames, f.time, f.flow, f.count]


def _finding_from_plain(v: Sequence[Any]) -> Finding:
    return new_finding(v[0], _SEVERITIES[v[1]], v[2], v[3], v[4], v[5], v[6])


def _row_to_plain(row: TimelineRow) -> tuple[Any, ...]:
    return (
        row.frame,
        row.time,
        row.sender,
        row.flags,
        row.seq,
        row.ack,
        row.length,
        row.window,
        row.tls,
        row.notes,
    )


def _row_from_plain(v: Sequence[Any]) -> TimelineRow:
    return TimelineRow(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9])


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
