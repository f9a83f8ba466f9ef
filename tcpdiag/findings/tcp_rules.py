"""TCP rules: one closed `Flow` in, its connection-level and per-packet findings out.

Each rule is a small function for one family of findings, citing the row of
the table of diagnoses it implements. Rules read only the public attributes documented in the
`Flow` class docstring (`tcpdiag/flow/flow.py`) and `Endpoint` (`tcpdiag/flow/endpoint.py`).
Messages read "facts — meaning": concrete values first (addresses, frames, delays, bytes),
then what they mean in plain words; `verdict.headline()` relies on the " — ".

`now` is the capture time at which the flow was finalised (the capture's last packet for flows
still open at the end); it lets "never answered" and "never closed" be measured to the end of
the capture rather than to the flow's own last packet.
"""

from __future__ import annotations

import statistics
import struct
from collections.abc import Iterable
from itertools import pairwise
from typing import Final

from tcpdiag.config import Thresholds
from tcpdiag.findings.context import fmt_bytes, fmt_duration, fmt_frames, grouped, plural
from tcpdiag.findings.registry import make_finding
from tcpdiag.findings.tls_rules import (
    SideClose,
    TcpContext,
    alert_before_reset,
    closing_alert,
    handshake_failure_reported,
)
from tcpdiag.flow.endpoint import Endpoint
from tcpdiag.flow.flow import (
    Burst,
    Flow,
    FlowEvent,
    TimelineState,
    timeline_frames,
    timeline_views,
)
from tcpdiag.flow.rows import ROW_SIZE, capture_duplicates
from tcpdiag.flow.seq import seq_gt
from tcpdiag.model import ACK, FIN, PSH, RST, SYN, URG, Direction, format_endpoint
from tcpdiag.result import Finding, Severity, TimelineRow

# Shortest retransmission timeout a real stack uses for a SYN or SYN/ACK (RFC 6298 allows 1 s
# initially; Linux's floor is 200 ms): copies closer together are capture duplicates.
MIN_SYN_RTO = 0.2

# Idle times a NAT, firewall or load balancer commonly uses (seconds): an idle period this close
# to one of them before a reset is worth naming.
ROUND_TIMEOUTS = (30, 60, 90, 120, 180, 240, 300, 600, 900, 1200, 1800, 3600, 7200, 7440)


class _Facts:
    """Per-flow values several rules need, computed once."""

    def __init__(
        self,
        flow: Flow,
        thresholds: Thresholds,
        now: float | None,
        timeline: TimelineState | None = None,
    ) -> None:
        self.flow = flow
        self.th = thresholds
        self.now = max(flow.end, now if now is not None else flow.end)
        self._timeline = timeline
        self._rows: list[TimelineRow] | None = None
        # `_resets` and `_reset_ignored` both need these: computed once (see _ignored_resets).
        self.ignored_resets: list[tuple[FlowEvent, int, str]] | None = None
        # `_retransmission`, `_per_packet` and `_capture_copies` read these (`copies`).
        self._copies: tuple[set[int], float | None] | None = None

    def name(self, d: Direction | int) -> str:
        ep = self.flow.endpoint(d)
        return format_endpoint(ep.addr, ep.port)

    @property
    def client(self) -> str:
        return self.name(Direction.CLIENT)

    @property
    def server(self) -> str:
        return self.name(Direction.SERVER)

    def rows(self) -> list[TimelineRow]:
        """The flow's capped timeline (head and tail packets). Built only for the flows whose
        rules need it (a few in ten): it is the costliest part of judging a flow."""
        if self._rows is None:
            self._rows = timeline_views(self.timeline_state())
        return self._rows

    def timeline_state(self) -> TimelineState:
        timeline = self._timeline
        if timeline is None:
            timeline = self._timeline = self.flow.timeline_state()
        return timeline

    def frames(self) -> list[int]:
        """The frames of `rows()`, without making the rows."""
        if self._rows is not None:
            return [r.frame for r in self._rows]
        return timeline_frames(self.timeline_state())

    def events(self, kind: str) -> list[FlowEvent]:
        return [e for e in self.flow.events if e.kind == kind]

    def copies(self) -> tuple[set[int], float | None]:
        """`_capture_duplicates`, once per flow."""
        copies = self._copies
        if copies is None:
            copies = self._copies = _capture_duplicates(self)
        return copies

    def established(self) -> bool:
        """The connection got past the handshake (or was already open when the capture began)."""
        f = self.flow
        hs = f.handshake
        return bool(
            hs.ack
            or f.c.first_data_frame is not None
            or f.s.first_data_frame is not None
            or (not hs.syn and not hs.syn_ack)
        )


def _num(value: object, default: float = 0.0) -> float:
    # A tuple, not `int | float`: compiled, the union is a new object built at every call
    # (~1,000 instructions), the tuple two type checks.
    return float(value) if isinstance(value, (int, float)) else default


def _intervals(times: list[float]) -> list[float]:
    return [b - a for a, b in pairwise(times)]


def _backoff(intervals: list[float]) -> str:
    """': exponential back-off' / ': evenly spaced...' / '' for SYN retry intervals."""
    if len(intervals) < 2:
        return ""
    ratios = [b / a for a, b in pairwise(intervals) if a > 0]
    if ratios and all(1.7 <= r <= 2.3 for r in ratios):
        return ": exponential back-off"
    if ratios and all(0.8 <= r <= 1.25 for r in ratios):
        return ": evenly spaced, as with Linux net.ipv4.tcp_syn_linear_timeouts"
    return ""


def _near_round(idle: float, thresholds: Thresholds) -> int | None:
    if idle < thresholds.idle_notable:
        return None
    for t in ROUND_TIMEOUTS:
        if abs(idle - t) <= max(1.0, 0.02 * t):
            return t
    return None


def _span(values: list[float]) -> str:
    lo, hi = fmt_duration(min(values)), fmt_duration(max(values))
    return lo if lo == hi else f"{lo}–{hi}"


def _first(a: int | None, b: int | None) -> int | None:
    """The earlier of two frames, either of which may be absent (two parameters, not `*frames`:
    compiled, a call is then a C call, not a tuple, a list and `min`)."""
    if a is None:
        return b
    return a if b is None or a <= b else b


# -- connection set-up (Connection set-up) ---------------------------------------


def _connection_refused(x: _Facts) -> list[Finding]:
    # Row: "client SYN, answered by RST/ACK from the server address".
    f = x.flow
    hs = f.handshake
    if not hs.syn or hs.syn_ack or f.s.syn_count or f.s.rst_frame is None:
        return []
    rst = next((e for e in x.events("rst") if e.direction == Direction.SERVER), None)
    rst_frame = f.s.rst_frame
    rst_time = _num(f.s.rst_time, f.end)
    syns = [(fr, t) for fr, t in zip(hs.syn_frames, hs.syn_times, strict=False) if fr < rst_frame]
    if not syns:
        return []
    # A refusal is the server's answer to the SYN: nothing from the server before its RST. A
    # server that acknowledged the client's data or sent its own first had accepted the
    # connection (its SYN/ACK is just missing from the capture): judged by the reset rules.
    # (When every server packet is a RST, the first of them is rst_frame: no row to look at.)
    if f.s.packets != f.s.rst_count and any(
        r.sender == "server" and r.frame < rst_frame for r in x.rows()
    ):
        return []
    delay = rst_time - syns[-1][1]
    kind = "RST/ACK" if rst is None or rst.details.get("has_ack", True) else "RST"
    tries = f" (the client had sent {plural(len(syns), 'SYN')})" if len(syns) > 1 else ""
    return [
        make_finding(
            "connection-refused",
            f"connection refused by {x.server}: {kind} {fmt_duration(delay)} after the SYN "
            f"(frame {rst_frame}){tries} — the host is up but nothing listens on that port, "
            "or a firewall rejects with a reset (client saw ECONNREFUSED)"
            + (
                "; but a RST without the ACK flag does not acknowledge the SYN, and a stack "
                "that sent the SYN ignores it (RFC 9293 section 3.10.7.3): a Linux server "
                "answers a closed port with RST/ACK, so suspect a middlebox or crafted reset, "
                "and check whether the client retried"
                if kind == "RST"
                else ""
            ),
            frames=[*(fr for fr, _ in syns), rst_frame],
            time=rst_time,
            flow=f.id,
        )
    ]


def _syn_unanswered(x: _Facts) -> list[Finding]:
    # Rows: "client SYN repeated, no answer at all" (the "server up but dropping SYNs" context
    # is added by capture_rules, which sees the other flows).
    f = x.flow
    hs = f.handshake
    if not hs.syn or hs.syn_ack or f.s.packets:
        return []
    n = len(hs.syn_frames)
    times = list(hs.syn_times)
    gaps = _intervals(times)
    msg = f"no answer from {x.server} to {plural(n, 'SYN')}"
    if n > 1:
        retries = ", ".join(fmt_duration(g) for g in gaps)
        msg += (
            f" sent over {fmt_duration(times[-1] - times[0])} (retries after {retries}"
            f"{_backoff(gaps)})"
        )
    waited = x.now - times[-1]
    frames = list(hs.syn_frames)
    gave_up = _first(f.c.rst_frame, f.c.fin_frame)
    gave_up_time = _num(f.c.rst_time if gave_up == f.c.rst_frame else f.c.fin_time, f.end)
    if gave_up is not None and gave_up_time - times[-1] < MIN_SYN_RTO:
        # The client abandoned the attempt before any retry was due: nobody had a chance to
        # answer, so this says nothing about the server.
        how = "RST" if gave_up == f.c.rst_frame else "FIN"
        return [
            make_finding(
                "syn-unanswered",
                f"{x.client} abandoned its connection attempt to {x.server} ({how}, frame "
                f"{gave_up}) {fmt_duration(gave_up_time - times[-1])} after its "
                f"{'only SYN' if n == 1 else 'last SYN'}, before an answer was due — the "
                "client gave up (a very short connect timeout, a cancelled connect, or a "
                "port scan), which says nothing about the server",
                frames=[*frames, gave_up],
                time=times[0],
                flow=f.id,
                severity=Severity.WARNING,
            )
        ]
    if f.c.rst_frame is not None:
        msg += f"; the client then gave up (RST, frame {f.c.rst_frame})"
        frames.append(f.c.rst_frame)
    elif f.c.fin_frame is not None:
        msg += f"; the client then gave up (FIN, frame {f.c.fin_frame})"
        frames.append(f.c.fin_frame)
    elif waited > 0:
        msg += f", nothing in the {fmt_duration(waited)} after the last one"
    msg += " — the host is down or unreachable, or a firewall silently drops the SYNs"
    return [make_finding("syn-unanswered", msg, frames=frames, time=times[0], flow=f.id)]


def _handshake_aborted(x: _Facts) -> list[Finding]:
    # Row: "SYN answered by SYN/ACK, then the client sends RST".
    f = x.flow
    hs = f.handshake
    c = f.c
    if not (hs.syn and hs.syn_ack) or c.rst_frame is None or c.first_data_frame:
        return []
    if hs.ack and not _connect_then_reset(x):
        return []
    if not hs.syn_ack_frames or c.rst_frame < hs.syn_ack_frames[0]:
        return []
    sa_frame, sa_time = hs.syn_ack_frames[0], hs.syn_ack_times[0]
    if hs.ack:
        # The kernel completed the handshake and the client reset it at once, nothing sent
        # either way: connect() succeeded, then close() with SO_LINGER 0 (a connect scan).
        ack_frame = next((e.frame for e in x.events("handshake-ack")), None)
        rst_time = _num(c.rst_time, f.end)
        acked = f" (ACK, frame {ack_frame})" if ack_frame is not None else ""
        return [
            make_finding(
                "handshake-aborted-by-client",
                f"{x.client} completed the handshake with {x.server}{acked} and reset the "
                f"connection (frame {c.rst_frame}) {fmt_duration(rst_time - sa_time)} after "
                "the SYN/ACK, before either side sent any data — a TCP connect scan or health "
                "check (connect(), then close() with SO_LINGER 0), or a client that gave up at "
                "once; the port is open",
                frames=[*hs.syn_frames, sa_frame, *([ack_frame] if ack_frame else []), c.rst_frame],
                time=rst_time,
                flow=f.id,
            )
        ]
    prior = [t for fr, t in zip(hs.syn_frames, hs.syn_times, strict=False) if fr < sa_frame]
    rst_time = _num(c.rst_time, f.end)
    late = ""
    if prior:
        synack_delay = sa_time - prior[-1]
        late = f", which came {fmt_duration(synack_delay)} after the SYN"
        if synack_delay >= 1.0:
            late += " (late: the client had likely timed out)"
    return [
        make_finding(
            "handshake-aborted-by-client",
            f"{x.client} reset the connection (frame {c.rst_frame}) "
            f"{fmt_duration(rst_time - sa_time)} after {x.server}'s SYN/ACK (frame {sa_frame})"
            f"{late} — the client no longer wanted the connection: its connect() timed out, "
            "the socket was closed, or it was a port scan",
            frames=[*hs.syn_frames, sa_frame, c.rst_frame],
            time=rst_time,
            flow=f.id,
        )
    ]


def _connect_then_reset(x: _Facts) -> bool:
    """The client completed the handshake and its RST is the next thing it did: no data from
    either side, no FIN, and no RST from the server before."""
    f = x.flow
    c, s = f.c, f.s
    return bool(
        f.handshake.ack
        and c.rst_frame is not None
        and c.first_data_frame is None
        and s.first_data_frame is None
        and c.fin_frame is None
        and s.fin_frame is None
        and (s.rst_frame is None or s.rst_frame > c.rst_frame)
    )


def _synack_retransmitted(x: _Facts) -> list[Finding]:
    # Row: "SYN/ACK retransmitted by the server".
    f = x.flow
    hs = f.handshake
    if hs.syn_ack_retransmissions <= 0 or len(hs.syn_ack_frames) < 2:
        return []
    if all(g < MIN_SYN_RTO for g in _intervals(list(hs.syn_ack_times))):
        return []  # the same SYN/ACK captured several times (SPAN, stacked VLANs), not resent
    n = len(hs.syn_ack_frames)
    gaps = ", ".join(fmt_duration(g) for g in _intervals(list(hs.syn_ack_times)))
    second = hs.syn_ack_frames[1]
    ack = next((e for e in x.events("handshake-ack")), None)
    syn_again = [fr for fr in hs.syn_frames if fr > hs.syn_ack_frames[0]]
    if ack is not None and ack.frame < second:
        why = (
            f"the client's ACK (frame {ack.frame}) is in the capture before the retransmission "
            "— the server dropped it: its accept queue was likely full (listen backlog, "
            "net.core.somaxconn)"
        )
    elif syn_again:
        why = (
            f"the client sent its SYN again (frame {syn_again[0]}) — the SYN/ACK was lost on "
            "the way to the client"
        )
    else:
        why = (
            "the client's ACK never reached the server — it was lost, or the server dropped it "
            "because its accept queue was full"
        )
    return [
        make_finding(
            "synack-retransmitted",
            f"{x.server} sent its SYN/ACK {plural(n, 'time')} (again after {gaps}); {why}",
            frames=hs.syn_ack_frames,
            time=hs.syn_ack_times[1],
            flow=f.id,
            count=n - 1,
        )
    ]


def _no_response(x: _Facts) -> list[Finding]:
    # Row: "handshake completes, client sends a request, server ACKs it at TCP level but never
    # sends data back; ends in client timeout (FIN/RST)".
    f = x.flow
    c, s = f.c, f.s
    if not f.handshake.syn_ack or c.first_data_frame is None or s.first_data_frame is not None:
        return []
    c_end = _first(c.fin_frame, c.rst_frame)
    s_end = _first(s.fin_frame, s.rst_frame)
    if s_end is not None and (c_end is None or s_end < c_end):
        return []  # the server closed first: an answer of sorts, judged by the close rules
    last_data_time = _num(c.last_data_time, f.start)
    if c_end is not None:
        end_time = _num(c.fin_time if c_end == c.fin_frame else c.rst_time, f.end)
    else:
        end_time = x.now
    wait = end_time - last_data_time
    if wait < x.th.no_response_wait:
        return []
    if c_end is None:
        ending = "the connection was still open when the capture ended"
    elif c_end == c.rst_frame:
        ending = f"the client then reset the connection (RST, frame {c_end})"
    else:
        ending = f"the client then closed (FIN, frame {c_end})"
    request = c.unique_bytes
    frames = [c.first_data_frame, *([c_end] if c_end is not None else [])]
    if c.base is not None and s.acked >= request > 0:
        ack_row = next(
            (
                r
                for r in x.rows()
                if r.sender == "server"
                and r.flags & ACK
                and r.frame > c.first_data_frame
                and r.ack >= request + (1 if f.handshake.syn else 0)
            ),
            None,
        )
        acked = ""
        if ack_row is not None:
            frames.append(ack_row.frame)
            acked = (
                f" in frame {ack_row.frame} ({fmt_duration(ack_row.time - last_data_time)} later)"
            )
        msg = (
            f"{x.server} acknowledged the client's request of {fmt_bytes(request)}{acked} but sent "
            f"no data in {fmt_duration(wait)}; {ending} — the server's kernel accepted the "
            "connection and the request, the application never answered (hung, not calling "
            "accept() or read(), or waiting for more input)"
        )
    else:
        msg = (
            f"{x.server} completed the handshake but neither acknowledged nor answered the "
            f"client's request of {fmt_bytes(request)} in {fmt_duration(wait)}; {ending} — the "
            "server (or the path to it) went silent after the handshake"
        )
    return [make_finding("no-response", msg, frames=frames, time=end_time, flow=f.id)]


# -- teardown (Teardown) ---------------------------------------------------------


def _resets(x: _Facts) -> list[Finding]:
    # Rows: "connection ends with RST instead of FIN" (abortive-close); "RST in answer to data
    # that arrived after that side's FIN, or RST right after receiving data it never answered"
    # (reset-with-unread-data); "RST in the middle of a transfer, with data in flight, no FIN
    # before" (reset-mid-stream). Only the first RST is judged; resets answering a SYN are
    # connection-refused / handshake-aborted-by-client.
    #
    # Linux acknowledges unread bytes in the RST it sends when close() finds them (ack =
    # rcv_nxt), so "unread" is read from the conversation, not from the RST's ACK number: the
    # peer's data came after the resetter's FIN, or the server resets right after a request it
    # never answered. A request after a long silence answered by a reset is rather a lost
    # NAT/firewall mapping or a restarted server: reset-mid-stream, with the idle time.
    f = x.flow
    resets = x.events("rst")
    if not resets or not x.established() or _connect_then_reset(x):
        return []  # most flows end without a RST: nothing to judge
    ignored = {id(e) for e, _, _ in _ignored_resets(x)}
    rst = next((e for e in resets if id(e) not in ignored), None)
    if rst is None or rst.direction is None:
        return []
    d = rst.direction
    sender, other = f.endpoint(d), f.endpoint(d.other)
    in_flight = int(_num(rst.details.get("bytes_in_flight")))
    never_acked = int(_num(rst.details.get("unread_data")))
    own_fin = bool(rst.details.get("after_own_fin"))
    peer_fin = bool(rst.details.get("after_peer_fin"))
    last = next((b for b in reversed(f.bursts) if b.first_frame < rst.frame), None)
    if last is not None and last.last_frame > rst.frame:
        last = _cut_at(x, last, rst.frame)
    peer_last = last if last is not None and last.direction == d.other else None
    silent = peer_last.gap_before if peer_last is not None and peer_last.gap_before else 0.0

    # One root cause per flow: a reset right after a TLS alert (the resetter's own, or the
    # peer's as the last data before it) is that alert's consequence; the tls-alert finding
    # reports it in its TCP context ("then RST from the server 58 µs later (frame 10)"). So
    # is a reset that ends a TLS handshake that never completed: the TLS finding (no
    # ServerHello, incomplete handshake...) says how the connection ended.
    stream = getattr(f, "consumer", None)
    if (
        alert_before_reset(stream, _side(d), rst.frame) is not None
        or (peer_last is not None and alert_before_reset(stream, _side(d.other), rst.frame))
        or handshake_failure_reported(stream)
    ):
        return []
    # A reset whose own IP header says another box sent it: that box cut the connection,
    # whatever the conversation before it suggests of the endpoint it claims to be.
    origin, evidence = _rst_origin(x, rst)
    if origin:
        return [_injected_reset(x, rst, origin, evidence, peer_last)]

    if (
        own_fin
        and sender.fin_frame is not None
        and peer_last is not None
        and peer_last.last_frame > sender.fin_frame
    ):
        late = _bytes_between(x, d.other, sender.fin_frame, rst.frame) or peer_last.bytes
        alert = closing_alert(stream, _side(d.other), sender.fin_frame, late)
        if alert is not None:
            return [_closing_alert_reset(x, rst, alert, sender.fin_frame, peer_last.last_frame)]
        return [_unread(x, rst, late, peer_last.last_frame, "after_fin")]
    if own_fin and peer_fin:
        frames = [rst.frame, *(fr for fr in (sender.fin_frame, other.fin_frame) if fr)]
        return [
            make_finding(
                "abortive-close",
                f"{x.name(d)} sent a RST (frame {rst.frame}) after both sides had sent FIN — "
                "the data was delivered; the reset only cut the close short (no TIME_WAIT: "
                "SO_LINGER 0 or an application abort)",
                frames=frames,
                time=rst.time,
                flow=f.id,
                severity=Severity.INFO,
            )
        ]
    if not own_fin and not peer_fin:
        if peer_last is not None and silent >= x.th.idle_notable:
            return [_mid_stream(x, rst, in_flight, peer_last.bytes, silent, peer_last.last_frame)]
        if never_acked > 0:
            frame = peer_last.last_frame if peer_last is not None else None
            return [_unread(x, rst, never_acked, frame, "never_acked")]
        if in_flight > 0:
            return [_mid_stream(x, rst, in_flight, 0, _num(rst.details.get("idle")), None)]
        if peer_last is not None and d == Direction.SERVER:
            return [_unread(x, rst, peer_last.bytes, peer_last.last_frame, "unanswered")]
        if peer_last is None and last is not None and last.direction == d:
            if d == Direction.SERVER:
                writes = _pipelined_writes(x, f, last)
                if writes >= 2:
                    return [_unread(x, rst, writes, None, "pipelined")]
            else:
                # The client's own data was acknowledged but not answered, and it gave up.
                waited = rst.time - last.last_time
                return [_mid_stream(x, rst, 0, 0, waited, last.last_frame, waiting=True)]
    elif never_acked > 0 and peer_last is not None:
        return [_unread(x, rst, never_acked, peer_last.last_frame, "never_acked")]
    kind = "RST/ACK" if rst.details.get("has_ack") else "a bare RST"
    stray = _stray_probe(x, rst)
    if stray is not None:
        return [stray]
    before = ""
    frames = [rst.frame]
    if peer_fin and not own_fin and other.fin_frame is not None:
        before = f" in answer to {x.name(d.other)}'s FIN (frame {other.fin_frame})"
        frames.append(other.fin_frame)
    elif own_fin and sender.fin_frame is not None:
        before = f" after its own FIN (frame {sender.fin_frame})"
        frames.append(sender.fin_frame)
    return [
        make_finding(
            "abortive-close",
            f"{x.name(d)} ended the connection with {kind} (frame {rst.frame}){before} instead "
            "of a FIN exchange — an abort: SO_LINGER 0, a killed or crashed process, or close() "
            "with unread data; data still queued on that side is lost",
            frames=frames,
            time=rst.time,
            flow=f.id,
        )
    ]


def _cut_at(x: _Facts, burst: Burst, frame: int) -> Burst:
    """The part of `burst` sent before `frame` (a burst can go on after a RST that crossed
    it on the wire): bytes, segments and last frame from the kept timeline."""
    sender = _side(burst.direction)
    rows = [
        r
        for r in x.rows()
        if r.sender == sender
        and burst.first_frame <= r.frame < frame
        and r.length
        and "retransmission" not in r.notes
    ]
    if not rows:
        return burst
    cut = Burst(burst.direction, burst.first_frame, burst.first_time, burst.gap_before)
    cut.last_frame, cut.last_time = rows[-1].frame, rows[-1].time
    cut.bytes = sum(r.length for r in rows)
    cut.segments = len(rows)
    return cut


_FLAG_WORDS = ((SYN, "SYN"), (FIN, "FIN"), (PSH, "PSH"), (URG, "URG"), (ACK, "ACK"))


def _stray_probe(x: _Facts, rst: FlowEvent) -> Finding | None:
    """No handshake in the capture, one packet from one side and a RST from the other in
    answer: the receiver has no connection for that packet (RFC 9293 §3.10.7.1: a segment
    to a closed port gets a reset). Not an abort of a connection that was running: a
    FIN/NULL/Xmas port scan against a closed port, or a connection the host had forgotten."""
    f = x.flow
    hs = f.handshake
    if hs.syn or hs.syn_ack or rst.direction is None:
        return None
    d = rst.direction
    prober = f.endpoint(d.other)
    if prober.packets != 1 or f.endpoint(d).packets != 1 or prober.first_data_frame is not None:
        return None
    probe = next((r for r in x.rows() if r.frame < rst.frame), None)
    if probe is None:
        return None
    flags = "/".join(w for bit, w in _FLAG_WORDS if probe.flags & bit) or "no flags at all"
    scan = {"FIN": "a FIN scan", "no flags at all": "a NULL scan", "FIN/PSH/URG": "an Xmas scan"}
    kind = scan.get(flags, "a probe")
    return make_finding(
        "abortive-close",
        f"{x.name(d)} answered the only packet seen from {x.name(d.other)} ({flags}, frame "
        f"{probe.frame}; no handshake in the capture) with "
        f"{'RST/ACK' if rst.details.get('has_ack') else 'a bare RST'} "
        f"{fmt_duration(rst.time - probe.time)} later (frame {rst.frame}) — it has no "
        f"connection for that packet: the port is closed ({kind} finds this out without a "
        "handshake), or the connection was forgotten by that host (restart, lost state); no "
        "established connection was aborted here",
        frames=[probe.frame, rst.frame],
        time=rst.time,
        flow=f.id,
    )


def _side(d: Direction) -> str:
    return "client" if d == Direction.CLIENT else "server"


def _ignored_resets(x: _Facts) -> list[tuple[FlowEvent, int, str]]:
    """RSTs the connection did not die of, each with the frame that proves it and why:

    - sent before the SYN/ACK of a handshake that then completed: a RST answering a SYN is
      accepted only if its ACK acknowledges that SYN (RFC 9293 §3.10.7.3), so the client's
      stack ignored it. With the RST's own ACK number (event detail `ack`, raw; the flow
      engine may not record it yet) a RST that does acknowledge the SYN is never ignored;
    - followed by more data or a FIN from the same address: an endpoint's stack sends nothing
      on a connection after resetting it, so the RST came from elsewhere (a middlebox
      spoofing that address) or fell outside the receiver's window."""
    if x.ignored_resets is None:
        x.ignored_resets = _find_ignored_resets(x)
    return x.ignored_resets


def _find_ignored_resets(x: _Facts) -> list[tuple[FlowEvent, int, str]]:
    out: list[tuple[FlowEvent, int, str]] = []
    resets = [e for e in x.events("rst") if e.direction is not None]
    if not resets:
        # Most flows: no RST at all, and the timeline rows (costly to build) are not needed.
        return out
    f = x.flow
    hs = f.handshake
    established = bool(hs.ack or f.c.first_data_frame)
    synack = hs.syn_ack_frames[0] if hs.syn_ack and hs.syn_ack_frames else None
    syn_seq = next((e.details.get("seq") for e in x.events("syn")), None)
    for e in resets:
        assert e.direction is not None
        if synack is not None and established and e.frame < synack:
            ack = e.details.get("ack")
            if not (
                isinstance(ack, int)
                and isinstance(syn_seq, int)
                and ack == (syn_seq + 1) & 0xFFFFFFFF
            ):
                out.append((e, synack, "synack"))
                continue
        last = f.endpoint(e.direction).last_frame
        if last is not None and last <= e.frame:
            continue  # the RST was the last thing that side sent: no row can follow it
        sender = _side(e.direction)
        later = next(
            (
                r.frame
                for r in x.rows()
                if r.sender == sender
                and r.frame > e.frame
                and not r.flags & RST
                and (r.length > 0 or r.flags & (FIN | SYN))
            ),
            None,
        )
        if later is not None:
            out.append((e, later, "went-on"))
    return out


def _reset_ignored(x: _Facts) -> list[Finding]:
    # Not a classic scenario: a RST that did not end the connection (a forged or injected
    # reset, RFC 5961) is reported on its own, so the reset rules judge the reset that did.
    ignored = _ignored_resets(x)
    if not ignored:
        return []
    parts = []
    told = False  # some reset's own header says where it came from
    for e, proof, why in ignored[:3]:
        assert e.direction is not None
        who = x.name(e.direction)
        if why == "synack":
            part = (
                f"{who} sent a RST (frame {e.frame}) before its SYN/ACK (frame {proof}), and the "
                "handshake still completed: the client ignored it, as a stack does with a reset "
                "that does not acknowledge its SYN"
            )
        else:
            part = (
                f"{who} sent a RST (frame {e.frame}) and then went on sending (frame {proof}): "
                "a stack sends nothing on a connection after resetting it, so the reset was "
                "not that endpoint's, or the receiver ignored it (outside its window)"
            )
        origin, _ = _rst_origin(x, e)
        if origin:
            part += f"; {origin}"
            told = True
        parts.append(part)
    more = f" ({len(ignored)} such resets in all)" if len(ignored) > 3 else ""
    frames = [fr for e, proof, _ in ignored for fr in (e.frame, proof)]
    return [
        make_finding(
            "reset-ignored",
            "; ".join(parts) + more + " — a forged reset: injected by a middlebox (IPS, "
            "censorship, a load balancer) or crafted, or stale from an earlier connection"
            + ("" if told else "; compare its TTL and IP ID with that address's other packets"),
            frames=frames,
            time=ignored[0][0].time,
            flow=x.flow.id,
            count=len(ignored),
        )
    ]


def _closing_alert_reset(
    x: _Facts, rst: FlowEvent, alert: str, fin_frame: int, data_frame: int
) -> Finding:
    """The end of a TLS session closed with a bare FIN (no close_notify): the peer's closing
    alert arrives after the socket is closed and is answered with a RST. Info: the data
    exchanged before was delivered; this is an artefact of the closing
    program (Python's SSLSocket.close()), not a failure."""
    assert rst.direction is not None
    who, peer = x.name(rst.direction), x.name(rst.direction.other)
    return make_finding(
        "reset-with-unread-data",
        f"{who} closed the connection with a bare FIN (frame {fin_frame}) and no TLS "
        f"close_notify before it; {peer} answered with {alert}, which arrived after the socket "
        f"was closed, so {who}'s kernel reset the connection (frame {rst.frame}) — the usual "
        "end of a TLS session whose side closes without close_notify (Python's "
        "SSLSocket.close() does this): the data exchanged before was delivered, only the "
        "closing alert was discarded; send close_notify (SSLSocket.unwrap()) before close() "
        "for a clean end",
        frames=[fin_frame, data_frame, rst.frame],
        time=rst.time,
        flow=x.flow.id,
        severity=Severity.INFO,
    )


def _pipelined_writes(x: _Facts, f: Flow, answer: Burst) -> int:
    """Separate small writes in the client burst that the server's last answer followed: two
    or more suggest pipelined requests, of which the server may have answered only the first.
    """
    before = next(
        (
            b
            for b in reversed(f.bursts)
            if b.direction == Direction.CLIENT and b.last_frame < answer.first_frame
        ),
        None,
    )
    if before is None or before.segments < 2:
        return 0
    mss = f.c.mss or 536
    rows = [
        r
        for r in x.rows()
        if r.sender == "client"
        and before.first_frame <= r.frame <= before.last_frame
        and r.length
        and "retransmission" not in r.notes
    ]
    return sum(1 for r in rows if r.length < mss)


def _bytes_between(x: _Facts, d: Direction, after: int, before: int) -> int:
    """New payload bytes `d` sent strictly between two frames (from the kept timeline)."""
    sender = "client" if d == Direction.CLIENT else "server"
    return sum(
        r.length
        for r in x.rows()
        if r.sender == sender and after < r.frame < before and "retransmission" not in r.notes
    )


def _rst_origin(x: _Facts, rst: FlowEvent) -> tuple[str, list[int]]:
    """What the reset's own IP header says of where it came from, as a clause ("" when nothing
    stands out) and the frames it compares the reset with, from the kept timeline around it:
    a TTL other than that of its sender's nearest packet (before it, else after it: it crossed
    another number of hops, so another box sent it in that address's name), and an IP ID
    copied from the peer's packet it answers while the sender's own packets never carry it
    (boxes that inject resets build them from the packet they saw; a stack numbers its own
    packets). Only the rows next to the reset are read, unless its IP ID is the answered
    packet's."""
    assert rst.direction is not None
    packed = x.timeline_state()[0]
    rows = len(packed) // ROW_SIZE
    sender = 0 if rst.direction == Direction.CLIENT else 1
    at = rows - 1  # the reset's row: mostly the last, or nearly
    while at >= 0 and _origin_fields(packed, at)[0] != rst.frame:
        at -= 1
    if at < 0:
        return "", []  # not among the kept rows
    _, _, _, ip_id, ttl = _origin_fields(packed, at)
    own = answered = -1  # rows: the sender's nearest non-RST packet, the peer's before it
    i = at - 1
    while i >= 0 and (own < 0 or answered < 0):
        _, d, flags, _, _ = _origin_fields(packed, i)
        if d != sender:
            if answered < 0:
                answered = i
        elif own < 0 and not flags & RST:
            own = i
        i -= 1
    i = at + 1
    while own < 0 and i < rows:
        _, d, flags, _, _ = _origin_fields(packed, i)
        if d == sender and not flags & RST:
            own = i
        i += 1
    if own < 0:
        return "", []  # nothing of the sender's own to compare with
    clauses = []
    frames = []
    own_frame, _, _, _, own_ttl = _origin_fields(packed, own)
    if own_ttl != ttl:
        frames.append(own_frame)
        where = "before" if own_frame < rst.frame else "after"
        clauses.append(
            f"its TTL ({ttl}) is not that of {x.name(rst.direction)}'s packet {where} it "
            f"(frame {own_frame}, TTL {own_ttl})"
        )
    if ip_id and answered >= 0:
        answered_frame, _, _, answered_id, _ = _origin_fields(packed, answered)
        if answered_id == ip_id and not _sends_ip_id(packed, rows, sender, ip_id):
            frames.append(answered_frame)
            clauses.append(
                f"its IP ID (0x{ip_id:04x}) is that of the packet of "
                f"{x.name(rst.direction.other)} it answers (frame {answered_frame})"
            )
    return "; ".join(clauses), frames


# What `_rst_origin` reads of a packed timeline row (`flow/rows.py`): frame, direction, flags,
# IP ID, TTL.
_ORIGIN_FIELDS: Final = struct.Struct("<q8xBH16xH2xB")


def _origin_fields(packed: bytes, row: int) -> tuple[int, int, int, int, int]:
    """Frame, direction (0 client), flags, IP ID and TTL of row `row` of packed rows."""
    frame: int
    d: int
    flags: int
    ip_id: int
    ttl: int
    frame, d, flags, ip_id, ttl = _ORIGIN_FIELDS.unpack_from(packed, row * ROW_SIZE)
    return frame, d, flags, ip_id, ttl


def _sends_ip_id(packed: bytes, rows: int, sender: int, ip_id: int) -> bool:
    """Some non-RST packet of `sender` among the rows carries `ip_id` (a stack that sends
    one constant ID, or a crafting tool: a reset with the peer's ID then copied nothing)."""
    for i in range(rows):
        _, d, flags, row_ip_id, _ = _origin_fields(packed, i)
        if d == sender and not flags & RST and row_ip_id == ip_id:
            return True
    return False


def _injected_reset(
    x: _Facts, rst: FlowEvent, origin: str, evidence: list[int], peer_last: Burst | None
) -> Finding:
    """`reset-injected`: the reset that ended the connection was not its claimed sender's
    (`_rst_origin` says why). Error: a box on the path cut the connection; warning when both
    sides had sent their FIN before it (the data was delivered)."""
    assert rst.direction is not None
    who, peer = x.name(rst.direction), x.name(rst.direction.other)
    after = ""
    frames = [rst.frame, *evidence]
    if peer_last is not None:
        after = (
            f" {fmt_duration(max(0.0, rst.time - peer_last.last_time))} after "
            f"{fmt_bytes(peer_last.bytes)} from {peer} (frame {peer_last.last_frame})"
        )
        frames.append(peer_last.last_frame)
    closed = bool(rst.details.get("after_own_fin")) and bool(rst.details.get("after_peer_fin"))
    return make_finding(
        "reset-injected",
        f"a box on the path, not {who}, reset the connection in {who}'s name (frame "
        f"{rst.frame}){after}: {origin} — a firewall, IPS, load balancer or NAT sent it; "
        f"{peer} sees ECONNRESET, and {who} may never have received what {peer} sent last nor "
        "learnt of the reset; look for a rule or a timeout on the path that rejects this "
        "traffic with resets",
        frames=sorted(set(frames)),
        time=rst.time,
        flow=x.flow.id,
        severity=Severity.WARNING if closed else Severity.ERROR,
    )


def _unread(x: _Facts, rst: FlowEvent, nbytes: int, data_frame: int | None, why: str) -> Finding:
    assert rst.direction is not None
    who, peer = x.name(rst.direction), x.name(rst.direction.other)
    got = f"{fmt_bytes(nbytes)} from {peer}" + (f" (frame {data_frame})" if data_frame else "")
    if why == "after_fin":
        facts = f"{who} reset the connection (frame {rst.frame}) after {got} arrived following "
        facts += "its own FIN"
        meaning = "the socket was already closed, so the data could not be read"
    elif why == "never_acked":
        facts = f"{who} reset the connection (frame {rst.frame}) without acknowledging {got}"
        meaning = "it closed the socket with data still unread"
    elif why == "pipelined":
        facts = (
            f"{who} answered and then reset the connection (frame {rst.frame}) instead of "
            f"closing with a FIN, after {peer} had sent {nbytes} separate writes before that "
            "answer"
        )
        meaning = (
            "a pipelined request was probably still unread when it closed the socket (heuristic)"
        )
    else:
        # Measured from the data, not from the previous packet of the flow (an ACK of it may
        # have come in between).
        data_time = next(
            (r.time for r in x.rows() if r.frame == data_frame),
            rst.time - _num(rst.details.get("idle")),
        )
        facts = (
            f"{who} reset the connection (frame {rst.frame}) "
            f"{fmt_duration(max(0.0, rst.time - data_time))} after receiving {got} that it "
            "never answered"
        )
        meaning = "it closed the socket with that data unread (or crashed on it)"
    return make_finding(
        "reset-with-unread-data",
        f"{facts} — {meaning}; the kernel sends a reset instead of a FIN, and {peer} sees "
        "ECONNRESET on its next send() or recv()",
        frames=[rst.frame, *([data_frame] if data_frame else [])],
        time=rst.time,
        flow=x.flow.id,
    )


def _mid_stream(
    x: _Facts,
    rst: FlowEvent,
    in_flight: int,
    unanswered: int,
    idle: float,
    data_frame: int | None,
    waiting: bool = False,
) -> Finding:
    assert rst.direction is not None
    who, peer = x.name(rst.direction), x.name(rst.direction.other)
    round_t = _near_round(idle, x.th)
    if waiting:
        facts = (
            f"{who} reset the connection (frame {rst.frame}) {fmt_duration(idle)} after its "
            f"last data (frame {data_frame}), which {peer} had acknowledged but not yet answered"
        )
    elif unanswered:
        facts = (
            f"a reset from {who} (frame {rst.frame}) answered {fmt_bytes(unanswered)} that "
            f"{peer} sent (frame {data_frame}) after {fmt_duration(idle)} of silence"
        )
    else:
        facts = (
            f"{who} reset the connection (frame {rst.frame}) {fmt_duration(idle)} after the "
            "previous packet"
        )
    if in_flight:
        facts += f", with {fmt_bytes(in_flight)} it had sent still unacknowledged"
    if waiting:
        meaning = (
            "it gave up in the middle of the exchange (an application timeout or abort, "
            "SO_LINGER 0); whatever it was still sending or expecting is lost"
        )
    elif round_t is not None:
        meaning = (
            f"an idle time this close to {round_t} s suggests a NAT or firewall idle timeout "
            "dropped the connection's state; use keep-alives shorter than that"
        )
    elif unanswered:
        meaning = (
            "after that long a silence the connection's state was lost on the way (NAT, "
            "firewall, load balancer) or the server restarted; the client sees ECONNRESET"
        )
    else:
        meaning = (
            "the transfer was cut short: the application aborted or crashed, or a middlebox "
            f"reset the connection; {peer} sees ECONNRESET"
        )
    frames = [rst.frame, *([data_frame] if data_frame else [])]
    return make_finding(
        "reset-mid-stream",
        f"{facts} — {meaning}",
        frames=frames,
        time=rst.time,
        flow=x.flow.id,
    )


def _close_wait_and_half_close(x: _Facts) -> list[Finding]:
    # Rows: "one side's FIN is ACKed, the other side sends nothing and sends its own FIN late
    # or never" (close-wait); "one side sends FIN, the other keeps sending data" (half-close).
    f = x.flow
    out: list[Finding] = []
    c_fin, s_fin = f.c.fin_frame, f.s.fin_frame
    if c_fin is None and s_fin is None:
        return []
    # the side that sent the first FIN (the client, if both came in one frame)
    client_first = s_fin is None or (c_fin is not None and c_fin <= s_fin)
    a = Direction.CLIENT if client_first else Direction.SERVER
    b = a.other
    ea, eb = f.endpoint(a), f.endpoint(b)
    fin_frame = ea.fin_frame
    fin_time = _num(ea.fin_time, f.end)
    assert fin_frame is not None
    sent_later = any(br.direction == b and br.last_frame > fin_frame for br in f.bursts)
    rows_after = [
        r
        for r in (x.rows() if sent_later else [])
        if r.sender == ("client" if b == Direction.CLIENT else "server")
        and r.frame > fin_frame
        and r.length
        and "retransmission" not in r.notes
    ]
    sent_after = sum(r.length for r in rows_after)
    if sent_later and f.timeline_total > len(x.rows()):
        # The timeline lost its middle: whole bursts after the FIN are a lower bound too.
        later = [br for br in f.bursts if br.direction == b and br.first_frame > fin_frame]
        sent_after = max(sent_after, sum(br.bytes for br in later))
    segments_after = len(rows_after)
    if sent_later and f.timeline_total > len(x.rows()):
        later_bursts = [br for br in f.bursts if br.direction == b and br.first_frame > fin_frame]
        segments_after = max(segments_after, sum(br.segments for br in later_bursts))
    if sent_after > 0 and not _closing_reply(x, a, rows_after, segments_after, sent_after):
        first_after = rows_after[0].frame if rows_after else eb.last_data_frame
        last_after = eb.last_data_frame
        span = (
            f"frame {first_after}"
            if first_after == last_after
            else (f"frames {first_after}–{last_after}")
        )
        out.append(
            make_finding(
                "half-close",
                f"{x.name(a)} closed its side (FIN, frame {fin_frame}); {x.name(b)} kept "
                f"sending {fmt_bytes(sent_after)} afterwards ({span})"
                " — a half-close (shutdown(SHUT_WR)): legal, but surprising to applications "
                "that treat EOF as the end of the whole connection",
                frames=[fin_frame, *(fr for fr in (first_after,) if fr is not None)],
                time=fin_time,
                flow=f.id,
            )
        )
        return out
    if sent_after > 0 and ea.rst_frame is not None and ea.rst_frame > fin_frame:
        return out  # the reset rules judge data that arrived after a close
    acked = ea.fin_seq is not None and eb.highest_ack >= 0 and seq_gt(eb.highest_ack, ea.fin_seq)
    if not acked or (
        ea.rst_frame is not None and ea.rst_frame > fin_frame and eb.fin_frame is None
    ):
        return out
    b_close = _first(eb.fin_frame, eb.rst_frame)
    b_time = 0.0
    if b_close is not None:
        b_time = _num(eb.fin_time if b_close == eb.fin_frame else eb.rst_time, f.end)
        if b_time - fin_time <= x.th.close_wait_delay:
            # `since` below is never before the FIN (the FIN's own row counts), so the delay
            # is at most this: b closed in time, and the timeline rows are not needed.
            return out
    # CLOSE_WAIT starts when b's stack could take the FIN: a FIN behind lost data is
    # delivered only with the retransmission that fills the hole (the last data or FIN
    # segment from a before b acknowledged the FIN), not when it was first sent.
    ack_row = _fin_ack_row(x, a, fin_frame)
    since = fin_time
    if ack_row is not None:
        a_side = _side(a)
        since = max(
            (
                r.time
                for r in x.rows()
                if r.sender == a_side
                and fin_frame <= r.frame < ack_row.frame
                and (r.length or r.flags & FIN)
            ),
            default=fin_time,
        )
    got = (
        f", delivered only with the retransmission {fmt_duration(since - fin_time)} later"
        if since - fin_time > x.th.close_wait_delay
        else ""
    )
    if b_close is not None:
        delay = b_time - since
        if delay <= x.th.close_wait_delay:
            return out
        how = "FIN" if b_close == eb.fin_frame else "RST"
        late = f"sent its own {how} only {fmt_duration(delay)} later (frame {b_close})"
        frames = [fin_frame, b_close]
    else:
        # "or never before the capture ends": no delay threshold, the capture is all we have.
        delay = x.now - since
        late = f"never closed in the {fmt_duration(delay)} until the end of the capture"
        frames = [fin_frame]
    out.append(
        make_finding(
            "close-wait",
            f"{x.name(a)} closed (FIN, frame {fin_frame}{got}) and {x.name(b)} acknowledged it, "
            f"but {late} — {x.name(b)}'s application got EOF (recv() returned 0) and did not "
            "close the socket: it sat in CLOSE_WAIT",
            frames=frames,
            time=fin_time,
            flow=f.id,
        )
    )
    return out


def _fin_ack_row(x: _Facts, a: Direction, fin_frame: int) -> TimelineRow | None:
    """The first packet from `a.other` acknowledging `a`'s FIN (from the kept timeline)."""
    a_side, b_side = _side(a), _side(a.other)
    fin_row = next((r for r in x.rows() if r.frame == fin_frame and r.sender == a_side), None)
    if fin_row is None:
        return None
    end = (fin_row.seq + fin_row.length + 1) & 0xFFFFFFFF
    return next(
        (
            r
            for r in x.rows()
            if r.sender == b_side
            and r.frame > fin_frame
            and r.flags & ACK
            and not seq_gt(end, r.ack & 0xFFFFFFFF)
        ),
        None,
    )


# A reply to a FIN this small, in one segment, followed by the replier's own close, answers
# the close (a TLS alert, a goodbye line) rather than going on with the conversation.
CLOSING_REPLY_MAX = 256


def _closing_reply(
    x: _Facts, a: Direction, rows_after: list[TimelineRow], segments: int, nbytes: int
) -> bool:
    """Whether what `a.other` sent after `a`'s FIN is not the half-close pattern of
    ("one side sends FIN, the other keeps sending data"):

    - `a` reset the connection after that data arrived: it had closed, not shut down its
      sending side (the reset rules report data arriving after a close);
    - or it was a single small segment (at most CLOSING_REPLY_MAX bytes) after which `a.other`
      closed too (FIN or RST) within `close_wait_delay`: a reply to the close, such as the
      7-byte TLS alert OpenSSL sends when a peer's FIN cuts a handshake short.

    A half-close needs the peer to keep sending: more than one data segment, or more bytes,
    or staying open afterwards."""
    f = x.flow
    ea, eb = f.endpoint(a), f.endpoint(a.other)
    first = rows_after[0].frame if rows_after else None
    if ea.rst_frame is not None and first is not None and ea.rst_frame > first:
        return True
    if segments != 1 or nbytes > CLOSING_REPLY_MAX or not rows_after:
        return False
    reply = rows_after[0]
    closes = [
        (fr, t)
        for fr, t in ((eb.fin_frame, eb.fin_time), (eb.rst_frame, eb.rst_time))
        if fr is not None and fr >= reply.frame
    ]
    if not closes:
        return False
    _, when = min(closes)
    return _num(when, f.end) - reply.time <= x.th.close_wait_delay


def _port_reuse(x: _Facts) -> list[Finding]:
    # Rows: "a new SYN on the same 4-tuple shortly after the previous connection closed"
    # (port-reused), "a segment whose sequence number belongs to the previous incarnation"
    # (stale-segment).
    f = x.flow
    out: list[Finding] = []
    if f.port_reused and f.reuse_frame is not None:
        if f.prev_close_time is None:
            out.append(
                make_finding(
                    "port-reused",
                    f"{x.client} → {x.server} started a new connection (frame {f.reuse_frame}) "
                    "while the previous one on these ports had not closed — a new incarnation "
                    "replaced it (the old connection was abandoned or its end not captured)",
                    frames=[f.reuse_frame],
                    time=f.start,
                    flow=f.id,
                )
            )
        else:
            gap = f.start - f.prev_close_time
            if gap < x.th.time_wait:
                out.append(
                    make_finding(
                        "port-reused",
                        f"{x.client} → {x.server} reused {fmt_duration(gap)} after the "
                        f"previous connection on these ports ended (frame {f.reuse_frame}) — "
                        f"TIME_WAIT ({x.th.time_wait:.0f} s) was skipped or shortened "
                        "(SO_LINGER 0, SO_REUSEADDR, tcp_tw_reuse)",
                        frames=[f.reuse_frame],
                        time=f.start,
                        flow=f.id,
                    )
                )
    stale = x.events("stale-segment")
    if stale:
        senders = sorted({x.name(e.direction) for e in stale if e.direction is not None})
        out.append(
            make_finding(
                "stale-segment",
                f"{plural(len(stale), 'segment')} from {', '.join(senders)} "
                f"({fmt_frames(e.frame for e in stale)}) "
                + ("belongs" if len(stale) == 1 else "belong")
                + " to the previous connection on these ports, not to this one — delayed "
                "segments of the old connection, the danger TIME_WAIT exists to prevent",
                frames=[e.frame for e in stale],
                time=stale[0].time,
                flow=f.id,
                count=len(stale),
            )
        )
    return out


# -- data transfer ("Data transfer" and the zero-window row) -----------------------


def _delayed_ack_stall(x: _Facts) -> list[Finding]:
    # Row: "a data segment arrives, its ACK comes ~40 ms (Linux) or ~200 ms (others) later,
    # while the sender waits with small unacknowledged data". A sample counts when the sender's
    # data burst goes on after the late ACK: it had more to send and sent it only then.
    f = x.flow
    th = x.th
    stalls = []
    for s in f.delayed_ack_samples:
        if not th.stall_min_delay <= s.delay <= th.stall_max_delay:
            continue
        burst = next(
            (
                b
                for b in f.bursts
                if b.direction == s.direction and b.first_frame <= s.data_frame <= b.last_frame
            ),
            None,
        )
        if burst is not None and burst.last_frame > s.ack_frame:
            stalls.append(s)
    if len(stalls) < max(1, th.stall_min_count):
        return []
    delays = [s.delay for s in stalls]
    med = statistics.median(delays)
    senders = sorted({x.name(s.direction) for s in stalls})
    receiver = (
        "a Linux receiver's delayed ACK (~40 ms)"
        if med < 0.1
        else "a ~200 ms delayed ACK (Windows, macOS/BSD and others)"
    )
    frames = [fr for s in stalls for fr in (s.data_frame, s.ack_frame)]
    return [
        make_finding(
            "delayed-ack-stall",
            f"{plural(len(stalls), 'stall')} of {_span(delays)} (median {fmt_duration(med)}, "
            f"{fmt_duration(sum(delays))} in all): {', '.join(senders)} waited for the ACK of "
            "a small segment before sending the next one — Nagle's algorithm meets "
            f"{receiver}; set TCP_NODELAY on the sender or write each request in one call",
            frames=frames,
            time=stalls[0].data_time,
            flow=f.id,
            count=len(stalls),
        )
    ]


def _late_response(x: _Facts) -> list[Finding]:
    # Row: "a request times out at the application, the next request is sent, and the late
    # answer to the first arrives" (heuristic; read from the kept timeline packets only).
    f = x.flow
    delay = x.th.late_response_delay
    # Cheap precheck on the bursts (a client turn that spans the delay, answered afterwards)
    # before reading the timeline packets.
    turns = f.bursts
    if not any(
        b.direction == Direction.CLIENT
        and b.last_time - b.first_time >= delay
        and any(n.direction == Direction.SERVER for n in turns[i + 1 : i + 2])
        for i, b in enumerate(turns)
    ):
        return []
    hits: list[tuple[int, int, int, float]] = []
    req_time: float | None = None
    req_frame = 0
    second: tuple[int, float] | None = None
    for r in x.rows():
        if not r.length or "retransmission" in r.notes or "keep-alive" in r.notes:
            continue
        if "zero-window-probe" in r.notes:
            continue
        if r.sender == "client":
            if req_time is None:
                req_time, req_frame = r.time, r.frame
            elif second is None and r.time - req_time >= delay:
                second = (r.frame, r.time)
        else:
            if req_time is not None and second is not None:
                hits.append((req_frame, second[0], r.frame, r.time - req_time))
            req_time, second = None, None
    if not hits:
        return []
    first_req, next_req, resp, wait = hits[0]
    more = f"; {len(hits)} such answers in all" if len(hits) > 1 else ""
    return [
        make_finding(
            "late-response",
            f"{x.server} answered (frame {resp}) {fmt_duration(wait)} after the request of "
            f"frame {first_req}, only after the client had sent more data (frame {next_req})"
            f"{more} — if the client had given up on the first request and sent a new one, it "
            "may take this late answer for the new request's (heuristic: check that answers "
            "match requests)",
            frames=[fr for h in hits for fr in h[:3]],
            time=None,
            flow=f.id,
            count=len(hits),
        )
    ]


def _zero_window(x: _Facts) -> list[Finding]:
    # Row: "receiver's advertised window falls to 0 and stays there".
    f = x.flow
    frames = f.frames("zero-window")
    if not frames:
        return []
    parts = []
    closing: list[str] = []
    for d in (Direction.CLIENT, Direction.SERVER):
        ep: Endpoint = f.endpoint(d)
        if not ep.zero_windows:
            continue
        sender_fin = f.endpoint(d.other).fin_time
        if sender_fin is not None and _num(ep.zero_window_first) >= _num(sender_fin):
            # The peer had sent its FIN: no data could come any more, so a zero window is
            # the closing socket's (some stacks advertise 0 after close()), not a stall.
            closing.append(
                f"{x.name(d)} advertised a zero window only after "
                f"{x.name(d.other)}'s FIN (frame {f.endpoint(d.other).fin_frame}), when no "
                "more data could come"
            )
            continue
        stall = ep.zero_window_stalled  # the ended periods, in order
        since = ep.zero_window_since
        still = since is not None
        if since is not None:
            stall += x.now - since
        probes = len(f.frames("zero-window-probe"))
        text = (
            f"{x.name(d)} advertised a zero window {plural(ep.zero_window_count, 'time')} "
            f"({plural(ep.zero_windows, 'period')}, {fmt_duration(stall)} in all"
            + (", still zero at the end" if still else "")
            + ")"
        )
        if probes:
            text += f"; {x.name(d.other)} sent {plural(probes, 'window probe')}"
        parts.append(text)
    if not parts:
        return [
            make_finding(
                "zero-window",
                "; ".join(closing) + " — the window of a socket being closed, not a receiver "
                "that stopped reading: nothing had to wait",
                frames=frames,
                flow=f.id,
                count=len(frames),
                severity=Severity.INFO,
            )
        ]
    return [
        make_finding(
            "zero-window",
            "; ".join(parts) + " — the receiving application stopped reading (its socket "
            "receive buffer filled up) and the sender had to wait",
            frames=frames,
            flow=f.id,
            count=len(frames),
        )
    ]


def _data_segments(f: Flow) -> int:
    """Data segments of the flow (new data from the bursts, plus retransmissions)."""
    retrans = len(f.frames("retransmission"))
    if not f.bursts_dropped:
        return sum(b.segments for b in f.bursts) + retrans
    return f.packets


# At least this many lost (non-spurious) retransmissions before the percentage can make a
# warning: one resend in a 10-segment flow is 10 % but says nothing about the path.
MIN_RETRANSMISSIONS_FOR_WARNING = 2
# Copies of earlier packets at the same time offset, from both sides, at least this many: the
# conversation captured a second time (another capture point, VLAN or interface), a fixed
# delay later.
MIN_REPLAYED: Final = 3
# Copies this close to the previous packet of the same side are capture duplicates (seconds).
DUPLICATE_WINDOW: Final = 0.001
# Time offsets of replayed copies are compared at this resolution (seconds).
REPLAY_RESOLUTION: Final = 0.0001


def _capture_duplicates(x: _Facts) -> tuple[set[int], float | None]:
    """Frames that are copies of an earlier packet of the same side made by the capture, and
    the fixed delay of a replayed copy of the conversation (or None).

    Two signatures: a packet repeating the previous packet of the same side exactly (seq,
    ack, flags, length, window, IP ID, SACK edge) less than DUPLICATE_WINDOW later (a mirror
    port or two interfaces of the same host); or packets of both sides repeating earlier ones
    exactly at one and the same time offset (MIN_REPLAYED or more), which real
    retransmissions, timed by each sender's own timers, never do (the same traffic seen on
    several VLANs or capture points, merged into one file). The IP ID and SACK edge (see
    `flow/rows.py`) keep a real resend apart: a train of duplicate ACKs sent back to back
    repeats every TCP field the timeline shows."""
    state = x.timeline_state()
    return capture_duplicates(
        state[0],
        state[1] is not None,
        state[2] is not None,
        DUPLICATE_WINDOW,
        REPLAY_RESOLUTION,
        MIN_REPLAYED,
    )


def _copied(x: _Facts, name: str) -> tuple[list[int], list[int]]:
    """Of the frames flagged `name`: those in the kept timeline (the copy check reads only
    those), and those of them that are copies made by the capture."""
    # A flagged frame has notes in the timeline state exactly when its row is kept (no set of
    # the kept rows' frames to build).
    notes = x.timeline_state()[5]
    seen = [fr for fr in x.flow.frames(name) if fr in notes]
    if not seen:
        return seen, []
    dups, _ = x.copies()
    return seen, [fr for fr in seen if fr in dups]


def _mostly_copies(seen: list[int], copied: list[int]) -> bool:
    """At least half of the flagged frames seen are copies: the flag says nothing about the
    network, and the finding says so."""
    return bool(copied) and len(copied) * 2 >= len(seen)


# The flags that copies made by the capture turn into (name, what they are called).
_COPIED_FLAGS: Final = (
    ("retransmission", "retransmissions"),
    ("duplicate-ack", "duplicate ACKs"),
)


def _capture_copies(x: _Facts) -> list[Finding]:
    """`capture-duplicate-packets`, when most retransmissions or duplicate ACKs seen in the
    kept timeline are copies made by the capture (their findings say so and point here)."""
    f = x.flow
    if not f.analysis:
        return []
    parts: list[str] = []
    copies = 0
    for name, many in _COPIED_FLAGS:
        seen, copied = _copied(x, name)
        if _mostly_copies(seen, copied):
            whose = "the flow's" if not parts else "its"
            parts.append(f"{len(copied)} of {whose} {many}")
            copies += len(copied)
    if not parts:
        return []
    dups, delay = x.copies()
    how = (
        f"repeat the conversation exactly {fmt_duration(delay)} later, from both sides"
        if delay is not None
        else f"repeat the previous packet of the same side exactly, less than "
        f"{fmt_duration(DUPLICATE_WINDOW)} later"
    )
    return [
        make_finding(
            "capture-duplicate-packets",
            f"{plural(len(dups), 'packet')} of {x.client} → {x.server} "
            f"({fmt_frames(sorted(dups))}) {how}; {' and '.join(parts)} "
            f"{'is such a copy' if copies == 1 else 'are such copies'} — the capture saw the "
            "same packets twice (a mirror port, several interfaces or VLANs, or merged "
            "captures), so the retransmissions, duplicate ACKs and keep-alives on these "
            "frames are not network events",
            frames=dups,
            time=f.start,
            flow=f.id,
            count=len(dups),
        )
    ]


def _retransmission(x: _Facts) -> list[Finding]:
    # Per-packet row "retransmission": info, warning above 1 % of the flow's data segments
    # (and at least MIN_RETRANSMISSIONS_FOR_WARNING lost segments: see the finding's docs).
    f = x.flow
    frames = f.frames("retransmission")
    if not frames:
        return []
    hs = f.handshake
    syn_frames = {*hs.syn_frames, *hs.syn_ack_frames}
    data = [fr for fr in frames if fr not in syn_frames]
    segments = _data_segments(f)
    by = ", ".join(
        f"{ep.retransmissions} by {x.name(d)}"
        for d, ep in ((Direction.CLIENT, f.c), (Direction.SERVER, f.s))
        if ep.retransmissions
    )
    severity = Severity.INFO
    seen_resends, resent_dups = _copied(x, "retransmission")
    if _mostly_copies(seen_resends, resent_dups):
        # Most resends seen in the kept timeline are copies made by the capture, not loss
        # (`_capture_copies` lists them).
        return [
            make_finding(
                "retransmission",
                f"{plural(len(frames), 'retransmission')} ({by}), but "
                + _copies_of(frames, seen_resends, resent_dups)
                + " — duplicates made by the capture, not resends on the network",
                frames=frames,
                flow=f.id,
                count=len(frames),
                severity=Severity.INFO,
            )
        ]
    spurious = set(f.frames("spurious-retransmission"))
    lossy = [fr for fr in data if fr not in spurious]
    if data and segments:
        # Spurious retransmissions resend data that arrived: they are not loss.
        ratio = len(lossy) / segments
        msg = (
            f"{plural(len(frames), 'retransmission')} ({by}); {len(data)} of {segments} data "
            f"segments were sent again"
        )
        if len(lossy) != len(data):
            msg += f", {len(data) - len(lossy)} of them needlessly (spurious)"
        msg += f": {ratio:.1%} loss"
        if not lossy:
            msg += " — nothing was actually lost"
        elif (
            ratio > x.th.retransmission_warning_ratio
            and len(lossy) >= MIN_RETRANSMISSIONS_FOR_WARNING
        ):
            severity = Severity.WARNING
            msg += " — packets are being lost on the path, which slows this connection down"
        elif ratio > x.th.retransmission_warning_ratio:
            msg += (
                " — a single lost segment: too few to say the path is lossy (the percentage "
                "of so small a flow means little)"
            )
        else:
            msg += " — a normal amount of loss recovery"
    else:
        msg = (
            f"{plural(len(frames), 'retransmission')} ({by}) of SYN, SYN/ACK or FIN segments "
            "— the connection set-up or close was not answered in time"
        )
    return [
        make_finding(
            "retransmission",
            msg,
            frames=frames,
            flow=f.id,
            count=len(frames),
            severity=severity,
        )
    ]


_PER_PACKET: tuple[tuple[str, str, str, str], ...] = (
    # name, one, many, what it says
    (
        "fast-retransmission",
        "fast retransmission",
        "fast retransmissions",
        "resent after duplicate ACKs: loss recovered quickly",
    ),
    (
        "spurious-retransmission",
        "spurious retransmission",
        "spurious retransmissions",
        "data resent although the receiver had already acknowledged it (the ACK was lost or "
        "delayed on its way back, or the sender's timer fired too early)",
    ),
    (
        "out-of-order",
        "out-of-order segment",
        "out-of-order segments",
        "the network reordered packets",
    ),
    (
        "duplicate-ack",
        "duplicate ACK",
        "duplicate ACKs",
        "the receiver is missing a segment and asks for it again",
    ),
    ("keep-alive", "keep-alive probe", "keep-alive probes", "on an idle connection"),
    (
        "previous-segment-lost",
        "segment after unseen bytes",
        "segments after unseen bytes",
        "bytes lost before the capture point, or missed by the capture",
    ),
    (
        "acked-unseen-segment",
        "ACK for unseen bytes",
        "ACKs for unseen bytes",
        "the receiver got bytes the capture missed: capture loss",
    ),
    (
        "window-full",
        "segment that filled the receiver's window",
        "segments that filled the receiver's window",
        "the receiver limits the transfer (it reads slowly, or its buffer is small)",
    ),
)


def _copies_of(frames: list[int], seen: list[int], copied: list[int]) -> str:
    """How many of the flagged `frames` are copies: "N of the M (kept in the timeline) are
    packets captured twice (frames; see capture-duplicate-packets)"."""
    kept = " kept in the timeline" if len(seen) < len(frames) else ""
    if len(copied) < len(seen):
        which = f"{len(copied)} of the {len(seen)}{kept}"
    elif len(seen) > 1:
        which = f"all {len(seen)}{kept}"
    else:
        which = f"the one{kept}" if kept else "it"
    return (
        f"{which} {'is a packet' if len(copied) == 1 else 'are packets'} captured twice "
        f"({fmt_frames(copied)}; see capture-duplicate-packets)"
    )


def _per_packet(x: _Facts) -> list[Finding]:
    # Row: "usual Wireshark-style anomalies ... each counted per flow with the frames".
    f = x.flow
    if not f.analysis:
        return []  # no packet of the flow was flagged (most flows): nothing to count
    out = []
    for name, one, many, words in _PER_PACKET:
        frames = f.frames(name)
        if frames:
            message = (
                f"{grouped(len(frames))} {one if len(frames) == 1 else many} "
                f"({fmt_frames(frames)}) — {words}"
            )
            if name == "duplicate-ack":
                seen, copied = _copied(x, name)
                if _mostly_copies(seen, copied):
                    # Copies made by the capture (`_capture_copies` lists them).
                    message = (
                        f"{grouped(len(frames))} {one if len(frames) == 1 else many} "
                        f"({fmt_frames(frames)}), but {_copies_of(frames, seen, copied)} — "
                        f"{'a copy' if len(copied) == 1 else 'copies'} made by the capture, not "
                        "a receiver asking for a missing segment"
                    )
            out.append(
                make_finding(
                    name,
                    message,
                    frames=frames,
                    flow=f.id,
                    count=len(frames),
                )
            )
    return out


# -- capture quality (Capture problems; hostile inputs) ---------------------


def _capture_quality(x: _Facts) -> list[Finding]:
    f = x.flow
    hs = f.handshake
    out: list[Finding] = []
    if not hs.syn:
        if hs.syn_ack:
            msg = (
                f"the client's SYN for {x.client} → {x.server} is not in the capture (only the "
                "SYN/ACK): the capture began during the handshake"
            )
        else:
            msg = (
                f"no SYN seen for {x.client} → {x.server}: the connection was already open "
                "when the capture started"
                + (" (client inferred from the first packet)" if f.client_inferred else "")
                + "; relative sequence numbers start at the first packet seen"
            )
        out.append(
            make_finding(
                "capture-started-mid-flow", msg, frames=[f.first_frame], time=f.start, flow=f.id
            )
        )
    # ACKed-unseen: the receiver acknowledged bytes the capture never saw, so they travelled.
    # Holes declared because the reassembly buffer was full are not evidence of that.
    unseen = f.frames("acked-unseen-segment")
    if unseen:
        capped = {e.frame for e in x.events("buffer-cap")}
        holes = [g for g in x.events("gap") if g.frame not in capped]
        missing = sum(int(_num(g.details.get("length"))) for g in holes)
        count = len(holes)
        if not capped:  # every hole: the reassemblers' totals (events may be capped)
            missing, count = f.gap_bytes, f.gaps
        size = f"{fmt_bytes(missing)} of this connection" if missing else "bytes"
        retrans = "" if f.frames("retransmission") else " and nobody retransmitted them"
        out.append(
            make_finding(
                "capture-packet-loss",
                f"the capture missed {size} that the receiver acknowledged "
                f"({plural(len(unseen), 'ACK')} for unseen bytes, {fmt_frames(unseen)})"
                f"{retrans} — capture loss, not network loss",
                frames=[*unseen, *(g.frame for g in holes)],
                flow=f.id,
                count=max(1, count),
            )
        )
    overlaps = x.events("overlap-mismatch")
    if overlaps:
        total = sum(int(_num(e.details.get("length"))) for e in overlaps)
        who = sorted({x.name(e.direction) for e in overlaps if e.direction is not None})
        out.append(
            make_finding(
                "tcp-overlap-inconsistent",
                f"{plural(len(overlaps), 'segment')} from {', '.join(who)} "
                f"({fmt_frames(e.frame for e in overlaps)}) resent {fmt_bytes(total)} with "
                "different contents than the first copy (the first copy is kept) — injection, "
                "a broken middlebox or stack, or a corrupted capture",
                frames=[e.frame for e in overlaps],
                time=overlaps[0].time,
                flow=f.id,
                count=len(overlaps),
            )
        )
    caps = x.events("buffer-cap")
    if caps:
        e = caps[0]
        limit = int(_num(e.details.get("limit")))
        out.append(
            make_finding(
                "reassembly-limit",
                f"{x.name(e.direction) if e.direction is not None else 'one side'}'s stream "
                f"buffered more than {fmt_bytes(limit)} beyond a hole (frame {e.frame}); the "
                "oldest hole was declared a gap — stream analysis (TLS) may be incomplete",
                frames=[ev.frame for ev in caps],
                time=e.time,
                flow=f.id,
                count=len(caps),
            )
        )
    return out


def tls_context(flow: Flow) -> TcpContext:
    """`tls_rules.context_from_flow` for this package's Flow: the same context, read through
    typed attributes (the generic version looks each of its ten attributes up by name, twice,
    for every TLS flow)."""
    c, s = flow.c, flow.s
    return TcpContext(
        flow.id,
        SideClose(c.fin_frame, c.fin_time, c.rst_frame, c.rst_time),
        SideClose(s.fin_frame, s.fin_time, s.rst_frame, s.rst_time),
    )


def diagnose(
    flow: Flow,
    thresholds: Thresholds,
    now: float | None = None,
    timeline: TimelineState | None = None,
) -> list[Finding]:
    """Every TCP finding of one finalised flow, ordered by (first frame, name).

    `timeline` is `flow.timeline_state()` when the caller has it already (it is not computed
    again then)."""
    facts = _Facts(flow, thresholds, now, timeline)
    out: list[Finding] = []
    # The rules by name, not from a tuple of functions: compiled, each is then a direct call,
    # not a generic one whose argument is parsed and checked (15 of them for every flow).
    out.extend(_connection_refused(facts))
    out.extend(_syn_unanswered(facts))
    out.extend(_handshake_aborted(facts))
    out.extend(_synack_retransmitted(facts))
    out.extend(_no_response(facts))
    out.extend(_resets(facts))
    out.extend(_reset_ignored(facts))
    out.extend(_close_wait_and_half_close(facts))
    out.extend(_port_reuse(facts))
    out.extend(_delayed_ack_stall(facts))
    out.extend(_late_response(facts))
    out.extend(_zero_window(facts))
    out.extend(_retransmission(facts))
    out.extend(_per_packet(facts))
    out.extend(_capture_copies(facts))
    out.extend(_capture_quality(facts))
    return sorted(out, key=Finding.sort_key)


def names_emitted() -> Iterable[str]:
    """The finding names these rules can produce (for the registry test)."""
    return (
        "connection-refused",
        "syn-unanswered",
        "handshake-aborted-by-client",
        "synack-retransmitted",
        "no-response",
        "reset-mid-stream",
        "reset-with-unread-data",
        "abortive-close",
        "reset-ignored",
        "reset-injected",
        "close-wait",
        "half-close",
        "port-reused",
        "stale-segment",
        "delayed-ack-stall",
        "late-response",
        "zero-window",
        "retransmission",
        *(row[0] for row in _PER_PACKET),
        "capture-started-mid-flow",
        "capture-packet-loss",
        "tcp-overlap-inconsistent",
        "reassembly-limit",
        "capture-duplicate-packets",
    )
