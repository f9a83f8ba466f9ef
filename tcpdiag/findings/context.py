"""What the capture-level rules need besides the flows, collected while packets stream by.

Theory of operation: the engine creates one `CaptureContext` per capture and feeds it the
records the TCP engine does not handle (ICMP errors, ARP packets) and what the capture and
decode stages report (notes, damage, decode counters, flow-table evictions). At the end,
`capture_rules.diagnose_capture` reads it. Memory is bounded whatever the capture holds: ICMP
errors are kept per quoted 4-tuple up to `MAX_ICMP_TUPLES`, ARP state per target address up to
`MAX_ARP_TARGETS`, and each keeps at most `MAX_FRAMES` frame numbers (counts keep counting).

The message-formatting helpers at the bottom are shared by every rule module, so all findings
write durations, sizes and frame lists the same way.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from tcpdiag.findings.registry import REGISTRY, sorted_frames
from tcpdiag.flow.flow import Flow
from tcpdiag.flow.table import LATE_FRAMES_KEPT
from tcpdiag.model import ArpPacket, IcmpError, linktype_name
from tcpdiag.result import FlowResult

MAX_ICMP_TUPLES = 4096
MAX_ARP_TARGETS = 4096
MAX_FRAMES = 32
MAX_NOTES = 256

# (src, sport, dst, dport) as quoted by an ICMP error: the original packet's direction.
Tuple4 = tuple[bytes, int, bytes, int]


@dataclass(slots=True)
class ArpTarget:
    """ARP activity about one IPv4 address."""

    requests: int = 0
    request_frames: list[int] = field(default_factory=list)
    first_time: float = 0.0
    last_time: float = 0.0
    requesters: set[bytes] = field(default_factory=set)  # capped like frames
    replied: bool = False
    reply_frame: int | None = None


@dataclass(slots=True)
class Note:
    """A capture-quality remark: `name` is a registered capture finding name."""

    name: str
    message: str
    count: int = 1
    frames: list[int] = field(default_factory=list)


class FlowTimes(MutableMapping[int, float]):
    """flow id -> time, as an array indexed by flow id (ids are dense, from 1): 8 bytes per
    flow where a dict took ~100 (a capture of 40k completed handshakes: 0.3 MB, not 4 MB)."""

    def __init__(self) -> None:
        self._times = array("d")
        self._count = 0

    def __getitem__(self, flow_id: int) -> float:
        if 0 <= flow_id < len(self._times):
            t = self._times[flow_id]
            if not math.isnan(t):
                return t
        raise KeyError(flow_id)

    def __setitem__(self, flow_id: int, time: float) -> None:
        if flow_id < 0 or math.isnan(time):
            raise ValueError(f"flow id {flow_id}, time {time}")
        times = self._times
        if flow_id >= len(times):
            times.extend([math.nan] * (flow_id + 1 - len(times)))
        if math.isnan(times[flow_id]):
            self._count += 1
        times[flow_id] = time

    def __delitem__(self, flow_id: int) -> None:
        if flow_id not in self:
            raise KeyError(flow_id)
        self._times[flow_id] = math.nan
        self._count -= 1

    def __iter__(self) -> Iterator[int]:
        return (i for i, t in enumerate(self._times) if not math.isnan(t))

    def __len__(self) -> int:
        return self._count


class CaptureContext:
    """Capture-wide facts for the capture-level rules (see the module docstring)."""

    def __init__(self) -> None:
        self.icmp: dict[Tuple4, list[IcmpError]] = {}
        self.icmp_dropped = 0  # errors not kept because of the caps
        self.arp: dict[bytes, ArpTarget] = {}
        self.notes: list[Note] = []
        self.evicted_flows = 0
        self.max_flows: int | None = None
        # Connections that sent a packet after the closed-flow cap had finalised them (each was
        # then followed as a new flow), the first of those packets, and the cap.
        self.late_after_early_close = 0
        self.late_after_early_close_frames: list[int] = []
        self.max_closed_flows: int | None = None
        # flow id -> time the server's SYN/ACK was first seen (for "completed meanwhile").
        self.synack_time: MutableMapping[int, float] = FlowTimes()

    # -- feeding ------------------------------------------------------------------------------

    def add_icmp(self, err: IcmpError) -> None:
        key: Tuple4 = (err.src, err.sport, err.dst, err.dport)
        kept = self.icmp.get(key)
        if kept is None:
            if len(self.icmp) >= MAX_ICMP_TUPLES:
                self.icmp_dropped += 1
                return
            kept = self.icmp[key] = []
        if len(kept) < MAX_FRAMES:
            kept.append(err)
        else:
            self.icmp_dropped += 1

    def add_arp(self, pkt: ArpPacket) -> None:
        if pkt.op == 1:
            # Gratuitous ARP (sender = target) and probes (sender 0.0.0.0, RFC 5227) ask nobody.
            if pkt.sender_ip == pkt.target_ip or pkt.sender_ip == b"\0\0\0\0":
                return
            t = self._arp_target(pkt.target_ip)
            if t is None:
                return
            if t.requests == 0:
                t.first_time = pkt.time
            t.requests += 1
            t.last_time = pkt.time
            if len(t.request_frames) < MAX_FRAMES:
                t.request_frames.append(pkt.frame)
            if len(t.requesters) < MAX_FRAMES:
                t.requesters.add(pkt.sender_ip)
        elif pkt.op == 2:
            t = self._arp_target(pkt.sender_ip)
            if t is not None and not t.replied:
                t.replied = True
                t.reply_frame = pkt.frame

    def _arp_target(self, ip: bytes) -> ArpTarget | None:
        t = self.arp.get(ip)
        if t is None:
            if len(self.arp) >= MAX_ARP_TARGETS:
                return None
            t = self.arp[ip] = ArpTarget()
        return t

    def add_flow(self, flow: Flow, result: FlowResult) -> None:
        """A finalised flow and its result: keep the few facts the capture-level rules need
        beyond the `FlowResult` (one float per flow that completed a handshake)."""
        hs = flow.handshake
        if hs.syn_ack and hs.syn_ack_times:
            self.synack_time[result.id] = hs.syn_ack_times[0]

    def add_note(self, name: str, message: str, count: int = 1, frames: Iterable[int] = ()) -> None:
        """A capture-quality remark. `name` may be a registered `capture-*` finding name or one
        of the capture reader's note names (mapped by `note_finding_name`). Notes of the same
        finding name and message are merged."""
        finding = note_finding_name(name)
        for note in self.notes:
            if note.name == finding and note.message == message:
                note.count += count
                room = MAX_FRAMES - len(note.frames)
                note.frames.extend(list(frames)[:room])
                return
        if len(self.notes) < MAX_NOTES:
            self.notes.append(Note(finding, message, count, list(frames)[:MAX_FRAMES]))

    def add_capture_notes(self, notes: Iterable[object]) -> None:
        """The capture reader's `CaptureNote(name, message, count)` objects."""
        for n in notes:
            name = str(getattr(n, "name", "capture-damaged"))
            message = str(getattr(n, "message", name))
            if name == "bogus-snaplen" and " — " not in message:
                message += _ANOMALY_MEANING
            self.add_note(name, message, int(getattr(n, "count", 1)))

    def add_damage(self, offset: int, reason: str, packets_before: int | None = None) -> None:
        before = (
            f"; the {packets_before:,} packets before it were analysed" if packets_before else ""
        )
        self.add_note(
            "capture-damaged", f"capture damaged at byte offset {offset:,}: {reason}{before}"
        )

    def add_decode_stats(self, stats: object) -> None:
        """Counters from the decoder's `DecodeStats` (an object with int attributes, or a
        mapping). Only the counters that say something about the capture's quality become
        notes; ordinary ones (packets, non-IP frames, VLAN tags) do not."""
        counters = _counters(stats)
        for key, (finding, words) in DECODE_COUNTERS.items():
            value = counters.get(key, 0)
            if value > 0:
                self.add_note(finding, f"{plural(value, 'packet')} {words}", count=value)
        linktypes = getattr(stats, "unsupported_linktypes", None)
        if isinstance(stats, Mapping):
            linktypes = stats.get("unsupported_linktypes")
        if isinstance(linktypes, Mapping):
            for linktype, value in sorted(linktypes.items()):
                if isinstance(value, int) and value > 0:
                    self.add_note(
                        "capture-link-unsupported",
                        f"{plural(value, 'packet')} of link type {linktype} "
                        f"({linktype_name(int(linktype))}, not decoded) were "
                        "skipped",
                        count=value,
                    )

    def add_evictions(self, count: int, max_flows: int) -> None:
        self.evicted_flows += count
        self.max_flows = max_flows

    def add_late_after_early_close(
        self, count: int, frames: Sequence[int], max_closed_flows: int
    ) -> None:
        """See `FlowTable.late_after_early_close`."""
        self.late_after_early_close += count
        merged = sorted({*self.late_after_early_close_frames, *frames})
        self.late_after_early_close_frames = merged[:LATE_FRAMES_KEPT]
        self.max_closed_flows = max_closed_flows


# Decoder counters worth a capture-quality note: counter -> (finding, what happened).
DECODE_COUNTERS: dict[str, tuple[str, str]] = {
    "truncated": ("capture-truncated-packets", "shorter than their own headers say: skipped"),
    "too_many_layers": (
        "capture-truncated-packets",
        "with too many encapsulation layers (VLAN/MPLS/tunnels): not decoded",
    ),
    "bad_ip_header": ("capture-truncated-packets", "with an invalid IP header: skipped"),
    "ip_length_exceeds_frame": (
        "capture-snaplen-truncated",
        "announce more bytes in their IP header than the frame holds: the capture cut them "
        "(a snap length, with the cut size recorded as the packet's length, as some tools "
        "write it), or, more rarely, their IP length field is wrong (a crafted or corrupted "
        "packet); their TCP payload is incomplete either way, so sequence gaps that follow "
        "them (previous-segment-lost, capture-packet-loss) are bytes the capture did not "
        "keep, not bytes lost on the network",
    ),
    "bad_tcp_header": ("capture-truncated-packets", "with an invalid TCP header: skipped"),
    "bad_tcp_options": (
        "capture-truncated-packets",
        "with malformed TCP options (option walk stopped)",
    ),
    "wscale_clamped": (
        "capture-truncated-packets",
        "with a window scale above 14, clamped to 14 (RFC 7323 §2.3)",
    ),
    "fragments_skipped": (
        "capture-truncated-packets",
        "were IP fragments (not reassembled: the TCP inside was not analysed)",
    ),
    "snaplen_truncated": (
        "capture-snaplen-truncated",
        "had their TCP payload cut by the snap length: payload analysis (TLS) is limited",
    ),
}


# -- mapping of other stages' note names to finding names ----------------------------------------

_NOTE_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("timestamp", "capture-timestamps-invalid"),
    ("time", "capture-timestamps-invalid"),
    ("unsupported", "capture-link-unsupported"),
    ("link", "capture-link-unsupported"),
    ("non_ip", "capture-link-unsupported"),
    ("non-ip", "capture-link-unsupported"),
    ("layers", "capture-truncated-packets"),
    ("truncat", "capture-truncated-packets"),
    ("short", "capture-truncated-packets"),
    ("bad", "capture-truncated-packets"),
    ("malformed", "capture-truncated-packets"),
    ("fragment", "capture-truncated-packets"),
    ("overlap", "tcp-overlap-inconsistent"),
    ("snaplen_cut", "capture-snaplen-truncated"),
)


# Reader notes about unusual header values that did not stop reading or skip a record: not
# damage (capture-damaged is for files whose reading stopped early or skipped records).
_HEADER_ANOMALIES = frozenset(
    {
        "bogus-snaplen",
        "caplen-exceeds-snaplen",
        "caplen-exceeds-length",
        "linktype-reserved-bits",
        "pcap-variant",
        "pcapng-bad-option",
    }
)
# What a header anomaly means for the analysis, appended to the reader's own words.
_ANOMALY_MEANING = (
    " — an unusual header value, not damage: every record was read with its own captured length"
)


def note_finding_name(name: str) -> str:
    """The registered finding a note name belongs to (unknown ones: capture-damaged)."""
    if name in REGISTRY:
        return name
    low = name.lower()
    if low in _HEADER_ANOMALIES:
        return "capture-header-anomaly"
    if low.startswith(("pcap", "caplen", "bogus", "input", "linktype-reserved")):
        return "capture-damaged"
    for word, finding in _NOTE_KEYWORDS:
        if word in low:
            return finding
    return "capture-damaged"


def _counters(stats: object) -> dict[str, int]:
    if isinstance(stats, Mapping):
        items = list(stats.items())
    else:
        names: list[str] = []
        for cls in type(stats).__mro__:
            names.extend(getattr(cls, "__slots__", ()))
        names.extend(getattr(stats, "__dict__", {}).keys())
        items = [(n, getattr(stats, n, None)) for n in names if not n.startswith("_")]
    out: dict[str, int] = {}
    for key, value in items:
        if isinstance(value, int) and not isinstance(value, bool):
            out[str(key)] = value
    return out


# -- formatting shared by the rule modules -------------------------------------------------------


def fmt_duration(seconds: float) -> str:
    """'17 µs', '1.3 ms', '41 ms', '2.0 s', '300 s (5.0 min)'. Never negative."""
    s = max(0.0, seconds)
    if s < 0.0001:
        return f"{units(s * 1e6)} µs"
    if s < 0.010:
        return f"{tenths(s * 1000)} ms"
    if s < 1.0:
        return f"{units(s * 1000)} ms"
    if s < 120.0:
        return f"{tenths(s)} s"
    return f"{units(s)} s ({tenths(s / 60)} min)"


# `units` and `tenths` give the text of `f"{x:.0f}"` and `f"{x:.1f}"` by float and int
# arithmetic: compiled, a format spec is parsed and applied by `float.__format__` (dtoa in its
# fixed-point mode), ~3,000 instructions, and the messages of a failed connection give several
# durations (a port scan's report: ~13,000 instructions of each flow's ~200,000). Python
# rounds the exact binary value half to even; so do these, and they leave to the format what
# they cannot do exactly. Below 2^52, `floor` and the subtraction are exact.
_EXACT_BELOW: Final = 2.0**52
# `tenths` multiplies by ten, which rounds: within this of a tie it cannot tell the side of
# the exact product (below 2^30 the product is off by less than 2^-23).
_TIE_MARGIN: Final = 2.0**-20
_TENTHS_BELOW: Final = 2.0**30


def units(x: float) -> str:
    """`f"{x:.0f}"` (for any x: what is not above 0 and below 2^52, -0.0 and NaN included, goes
    to the format)."""
    if 0.0 < x < _EXACT_BELOW:
        whole = math.floor(x)
        fraction = x - whole
        if fraction > 0.5 or (fraction == 0.5 and whole % 2 == 1):
            whole += 1
        return str(whole)
    return f"{x:.0f}"


def tenths(x: float) -> str:
    """`f"{x:.1f}"`, as `units`."""
    scaled = x * 10.0
    if 0.0 < scaled < _TENTHS_BELOW:
        whole = math.floor(scaled)
        fraction = scaled - whole
        if abs(fraction - 0.5) > _TIE_MARGIN:
            if fraction > 0.5:
                whole += 1
            return f"{whole // 10}.{whole % 10}"
    return f"{x:.1f}"


def grouped(n: int) -> str:
    """`f"{n:,}"`, digits in groups of three: below 1,000 (most counts) `str(n)`, which is the
    same text. (Compiled, the format spec is parsed and applied through `int.__format__` on a
    boxed int, ~4,000 instructions; `str` is a tenth of that, and the rules of a failed
    connection count things several times.)"""
    return str(n) if -1000 < n < 1000 else f"{n:,}"


def fmt_bytes(n: int) -> str:
    """'1 byte', '78 bytes', '12.3 KB', '4.0 MB' (decimal units, like the verdicts)."""
    if n == 1:
        return "1 byte"
    if n < 10_000:
        return f"{grouped(n)} bytes"
    if n < 10_000_000:
        return f"{tenths(n / 1000)} KB"
    return f"{tenths(n / 1_000_000)} MB"


def fmt_frames(frames: Iterable[int], limit: int = 6) -> str:
    """'frame 2', 'frames 1, 2, 3', 'frames 1, 2, 3, … (12 in all)'."""
    fs = sorted_frames(frames)
    if not fs:
        return "no frame"
    if len(fs) == 1:
        return f"frame {fs[0]}"
    shown = ", ".join(str(f) for f in fs[:limit])
    if len(fs) > limit:
        return f"frames {shown}, … ({len(fs)} in all)"
    return f"frames {shown}"


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{grouped(n)} {word if n == 1 else (words or word + 's')}"
