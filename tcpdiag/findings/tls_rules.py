"""TLS findings for one flow, from its `TlsStream` and the TCP facts around it.

Rules, in the order a reader needs them (one root cause per flow where possible):

    tls-flight-incomplete     a handshake flight lacks messages the protocol requires
    tls-alert                 an alert that matters (not close_notify, not a post-handshake
                              encrypted alert before the close: that is a normal shutdown)
    tls-version-mismatch      alert protocol_version, or a chosen version the client never offered
    tls-no-server-hello       ClientHello, then nothing / FIN / RST / non-TLS bytes from the server
    tls-handshake-incomplete  the handshake stopped and nothing above explains it
    tls-record-malformed      bytes that cannot be a record, or a message that does not parse
    tls-record-truncated      a record cut short by FIN, RST or the end of the capture

Every message puts the TLS event in its TCP context ("then RST from the server 0.2 ms later"),
which is what neither Wireshark nor Zeek says on their own.
"""

from __future__ import annotations

from typing import Any, Final

from tcpdiag.fields import FieldRecord
from tcpdiag.findings.context import plural
from tcpdiag.findings.registry import make_finding
from tcpdiag.model import Direction
from tcpdiag.result import Finding, Severity, TlsAlert
from tcpdiag.tls import TlsStream
from tcpdiag.tls.constants import (
    cipher_suite_name,
    content_type_name,
    is_grease,
    version_name,
)
from tcpdiag.tls.events import TruncatedEvent
from tcpdiag.tls.flights import (
    CCS,
    ENC_HANDSHAKE,
    FlightProblem,
    RecordNote,
    compare,
    encrypted_record_size,
    finished_record_size,
    flight_of,
    hello_retry_client_flight,
    resumed_client_flight,
    tls12_client_flight,
)
from tcpdiag.tls.records import Record
from tcpdiag.tls.stream import TLS13_ALERT_RECORD

MAX_PER_KIND: Final = 5  # malformed/truncated findings per flow


# Plain classes rather than dataclasses: compiled, a dataclass is built through the Python
# `__init__` the dataclasses module writes (~2,500 instructions each, and three are built for
# every TLS flow). They compare like the dataclasses they were.
# (Field names as module constants: a compiled class has no `__slots__` attribute to read.)
_SIDE_FIELDS = ("fin_frame", "fin_time", "rst_frame", "rst_time")


class SideClose(FieldRecord):
    """How one side ended its half of the TCP connection (first FIN / first RST it sent)."""

    __slots__ = _SIDE_FIELDS
    FIELDS = _SIDE_FIELDS

    def __init__(
        self,
        fin_frame: int | None = None,
        fin_time: float | None = None,
        rst_frame: int | None = None,
        rst_time: float | None = None,
    ) -> None:
        self.fin_frame = fin_frame
        self.fin_time = fin_time
        self.rst_frame = rst_frame
        self.rst_time = rst_time


_CONTEXT_FIELDS = ("flow", "client", "server", "client_addr", "server_addr")


class TcpContext(FieldRecord):
    """What the TLS rules know of the TCP connection: its flow id and how each side closed."""

    __slots__ = _CONTEXT_FIELDS
    FIELDS = _CONTEXT_FIELDS

    def __init__(
        self,
        flow: int | None = None,
        client: SideClose | None = None,
        server: SideClose | None = None,
        client_addr: str = "client",
        server_addr: str = "server",
    ) -> None:
        self.flow = flow
        self.client = client if client is not None else SideClose()
        self.server = server if server is not None else SideClose()
        self.client_addr = client_addr
        self.server_addr = server_addr

    def side(self, direction: Direction) -> SideClose:
        return self.client if direction == Direction.CLIENT else self.server

    def closes(self) -> list[tuple[float, str, str, int]]:
        """Every close event as (time, who, "FIN"|"RST", frame), in time order."""
        out: list[tuple[float, str, str, int]] = []
        for who, s in (("client", self.client), ("server", self.server)):
            if s.fin_frame is not None and s.fin_time is not None:
                out.append((s.fin_time, who, "FIN", s.fin_frame))
            if s.rst_frame is not None and s.rst_time is not None:
                out.append((s.rst_time, who, "RST", s.rst_frame))
        return sorted(out)

    def after(self, time: float) -> tuple[float, str, str, int] | None:
        """The first close event at or after `time`."""
        return next((c for c in self.closes() if c[0] >= time), None)

    def how_ended(self) -> str:
        closes = self.closes()
        if not closes:
            return (
                "the TCP connection was neither closed nor reset before the capture ended (the "
                "capture may simply have stopped too early)"
            )
        first = closes[0]
        kinds = {c[2] for c in closes}
        what = "reset" if first[2] == "RST" else "closed"
        text = f"the {first[1]} {what} the TCP connection ({first[2]}, frame {first[3]})"
        if "RST" in kinds and first[2] == "FIN":
            rst = next(c for c in closes if c[2] == "RST")
            text += f", then the {rst[1]} reset it (frame {rst[3]})"
        return text


def _attr(obj: Any, *names: str) -> Any:
    for name in names:
        if obj is not None and hasattr(obj, name):
            return getattr(obj, name)
    return None


def _side_close(endpoint: Any) -> SideClose:
    return SideClose(
        _attr(endpoint, "fin_frame"),
        _attr(endpoint, "fin_time"),
        _attr(endpoint, "rst_frame"),
        _attr(endpoint, "rst_time"),
    )


def context_from_flow(flow: Any) -> TcpContext:
    """Build the TCP context from a `tcpdiag.flow` Flow: its id and each side's endpoint
    (`fin_frame/fin_time/rst_frame/rst_time`, see flow/endpoint.py). Looked up by attribute so
    that the TLS rules do not depend on the Flow class layout."""
    endpoints = _attr(flow, "endpoints", "ends", "sides")
    if endpoints is not None and len(endpoints) == 2:
        client_ep, server_ep = endpoints[0], endpoints[1]
    else:
        client_ep = _attr(flow, "client_end", "client_endpoint", "client")
        server_ep = _attr(flow, "server_end", "server_endpoint", "server")
    return TcpContext(
        flow=_attr(flow, "id"),
        client=_side_close(client_ep),
        server=_side_close(server_ep),
    )


# ------------------------------------------------------------------------------ helpers


def _ms(seconds: float) -> str:
    if seconds < 0.0001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1.0:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def _then(ctx: TcpContext, time: float, exclude_frame: int | None = None) -> str:
    event = ctx.after(time)
    if event is None:
        return ""
    when, who, kind, frame = event
    if frame == exclude_frame:
        return f", with {kind} from the {who} in the same segment"
    return f", then {kind} from the {who} {_ms(when - time)} later (frame {frame})"


def _alert_text(alert: TlsAlert) -> str:
    if alert.encrypted:
        return "an encrypted alert"
    return f"{alert.level} {alert.description}"


def _name(direction: Direction) -> str:
    return "client" if direction == Direction.CLIENT else "server"


def _finding(
    name: str,
    message: str,
    frames: list[int],
    time: float | None,
    ctx: TcpContext,
    severity: Severity | None = None,
) -> Finding:
    return make_finding(name, message, frames=frames, time=time, flow=ctx.flow, severity=severity)


# ------------------------------------------------------------------------------ the rules


def diagnose(stream: TlsStream, ctx: TcpContext) -> list[Finding]:
    stream.finish()
    out: list[Finding] = []
    flight = _flight(stream, ctx)
    if flight is not None:
        out.append(flight)
    alerts = _alerts(stream, ctx)
    out.extend(alerts)
    mismatch = _version_mismatch(stream, ctx)
    if mismatch is not None:
        out.append(mismatch)
    no_sh = _no_server_hello(stream, ctx)
    if no_sh is not None:
        out.append(no_sh)
    fatal = any(f.name == "tls-alert" and f.severity == Severity.ERROR for f in alerts)
    if no_sh is None and flight is None and not fatal and mismatch is None:
        incomplete = _handshake_incomplete(stream, ctx)
        if incomplete is not None:
            out.append(incomplete)
    out.extend(_malformed(stream, ctx))
    out.extend(_truncated(stream, ctx))
    sni = _suspicious_sni(stream, ctx)
    if sni is not None:
        out.append(sni)
    return out


# -- tls-sni-suspicious -------------------------------------------------------------------


def _suspicious_sni(stream: TlsStream, ctx: TcpContext) -> Finding | None:
    hello = stream.client_hello
    if hello is None or not hello.sni_problems:
        return None
    frame = next((m.frame for m in stream.messages if m.type == "ClientHello"), None)
    at = f" (frame {frame})" if frame is not None else ""
    name = f' "{hello.sni}"' if hello.sni else ""
    problems = "; ".join(dict.fromkeys(hello.sni_problems))
    message = (
        f"the client's ClientHello{at} names the server{name} with {problems} — RFC 6066 "
        "does not allow it: a client bug (UTF-8 instead of an xn-- name, a final dot, an "
        "IP address) or probing of how the server and middleboxes pick a name"
    )
    return _finding("tls-sni-suspicious", message, [frame] if frame else [], None, ctx)


# -- tls-flight-incomplete ----------------------------------------------------------------


def _flight(stream: TlsStream, ctx: TcpContext) -> Finding | None:
    if stream.client_hello is None:
        return None
    notes = stream.notes
    if stream.hello_retry_note is not None:
        expected, optional = hello_retry_client_flight()
        after = stream.hello_retry_note
        kind = "answer to a HelloRetryRequest"
    elif stream.server_hello is None or stream.tls13:
        return None
    elif stream.server_hello_done_note is not None:
        expected, optional = tls12_client_flight(stream.cert_requested)
        after = stream.server_hello_done_note
        kind = "second flight"
    elif stream.server_finished_note is not None and stream.sides[1].ccs_frame is not None:
        expected, optional = resumed_client_flight()
        after = stream.server_finished_note
        kind = "flight of a resumed (abbreviated) handshake"
    else:
        return None
    arrived = flight_of(notes, Direction.CLIENT, after)
    sizes = _expected_sizes(stream, expected, arrived)
    problem = compare(Direction.CLIENT, expected, optional, arrived, sizes)
    if problem is None:
        return None
    return _flight_finding(stream, ctx, problem, kind)


def _expected_sizes(
    stream: TlsStream, expected: list[str], arrived: list[RecordNote]
) -> list[int | None]:
    cipher = cipher_suite_name(stream.server_hello.cipher_suite) if stream.server_hello else None
    fin = next((n.size for n in arrived if "Finished*" in n.tokens), None)
    out: list[int | None] = []
    for name in expected:
        if name == "ClientKeyExchange" and stream.ecdhe_point is not None:
            out.append(5 + 4 + 1 + stream.ecdhe_point)
        elif name == CCS:
            out.append(6)
        elif name == "Finished":
            out.append(fin if fin is not None else finished_record_size(cipher))
        else:
            out.append(None)
    return out


def _flight_finding(stream: TlsStream, ctx: TcpContext, p: FlightProblem, kind: str) -> Finding:
    who = _name(p.sender)
    n = len(p.arrived)
    total = "+".join(str(x.got if x.got is not None else x.size) for x in p.arrived)
    records = f"{n} record{'s' if n != 1 else ''} ({total} B)"
    due = ", ".join(p.expected)
    parts = [f"{who} sent {records} where {due} were due: "]
    parts.append(", ".join(x.describe() for x in p.arrived))
    version = version_name(stream.version) if stream.version else "TLS"
    sizes = "+".join(str(s) if s is not None else "?" for s in p.expected_sizes)
    parts.append(f". A {version} {who}'s {kind} must be {due} (here about {sizes} B expected)")
    if p.missing:
        parts.append(f"; missing: {', '.join(p.missing)}")
    if p.reordered:
        parts.append("; the records that did arrive are out of order")
    if any(x.got is not None for x in p.arrived):
        parts.append("; the last record was cut short")
    bare = [x for x in p.arrived if ENC_HANDSHAKE in x.tokens]
    fin_size = p.expected_sizes[-1] if p.expected and p.expected[-1] == "Finished" else None
    if bare:
        parts.append(
            f"; the encrypted Handshake record ({bare[0].size} B) came with no "
            "ChangeCipherSpec before it"
        )
        if fin_size is not None and bare[0].size == fin_size:
            parts.append(", and it has exactly the size of the encrypted Finished")
    last = p.arrived[-1]
    reply = _peer_reply(stream, last, p.sender)
    if reply is not None:
        alert, rec = reply
        parts.append(
            f". The {alert.sender} answered with {_alert_text(alert)} "
            f"({rec.size} B, frame {rec.frame}){_then(ctx, rec.time, rec.frame)}"
        )
    else:
        parts.append(f". Then {ctx.how_ended()}")
    parts.append(
        ". Likely cause: the application lost part of its send buffer (wrong offset or length "
        "in its own send queue), so only part of the flight reached the socket"
    )
    frames = [x.frame for x in p.arrived]
    if reply is not None:
        frames.append(reply[1].frame)
        close = ctx.after(reply[1].time)
        if close is not None:
            frames.append(close[3])
    return _finding("tls-flight-incomplete", "".join(parts), frames, last.time, ctx)


def _peer_reply(
    stream: TlsStream, after: RecordNote, sender: Direction
) -> tuple[TlsAlert, Record] | None:
    for alert, rec in stream.alert_records:
        if alert.sender != _name(sender) and rec.time >= after.time:
            return alert, rec
    return None


# -- tls-alert ----------------------------------------------------------------------------


def _reported(stream: TlsStream, alert: TlsAlert, rec: Record) -> bool:
    """Whether `_alerts` reports this alert as a tls-alert finding."""
    if not alert.encrypted and alert.description == "close_notify":
        return False  # the normal end of a session
    complete = stream.complete_frame
    post_handshake = complete is not None and rec.frame >= complete
    # An encrypted alert after the handshake is close_notify, or a peer's reply to a bare
    # FIN: a normal shutdown. With no ClientHello the capture started mid-session, where the
    # same holds.
    return not (alert.encrypted and (post_handshake or stream.client_hello is None))


def _last_record(stream: TlsStream, sender: str, before_frame: int) -> Record | None:
    side = next((s for s in stream.sides if _name(s.direction) == sender), None)
    rec = side.last_record if side is not None else None
    return rec if rec is not None and rec.frame <= before_frame else None


def alert_before_reset(stream: object, sender: str, rst_frame: int) -> str | None:
    """When `sender`'s last TLS record before its RST (frame `rst_frame`) is an alert that the
    tls-alert rule reports, the alert is the root cause and the RST only its consequence: the
    words naming it ("fatal unknown_ca alert (frame 10)"), else None. TCP rules use this to
    leave the reset to the tls-alert finding (one root cause per flow), which names the RST
    in its TCP context."""
    if not isinstance(stream, TlsStream) or not stream.is_tls:
        return None
    last = _last_record(stream, sender, rst_frame)
    if last is None:
        return None
    for alert, rec in stream.alert_records:
        if alert.sender == sender and rec.offset == last.offset and _reported(stream, alert, rec):
            return f"{_alert_text(alert)} alert (frame {rec.frame})"
    if (
        stream.tls13
        and not stream.handshake_complete
        and last.content_type == 23
        and last.size == TLS13_ALERT_RECORD
    ):
        return f"{last.size} B encrypted record, most likely an alert (frame {last.frame})"
    return None


def handshake_failure_reported(stream: object) -> bool:
    """Whether the TLS rules report a handshake failure for this stream: a ClientHello was
    seen and the handshake never completed (tls-no-server-hello, tls-alert,
    tls-flight-incomplete or tls-handshake-incomplete then fires, each saying how the TCP
    connection ended and listing a RST's frame). TCP rules leave a reset of such a flow to
    that finding: the failed handshake is the root cause, the reset how it ended."""
    return (
        isinstance(stream, TlsStream)
        and stream.is_tls
        and stream.client_hello is not None
        and not stream.handshake_complete
    )


def closing_alert(stream: object, sender: str, after_frame: int, nbytes: int) -> str | None:
    """When the `nbytes` that `sender` sent after frame `after_frame` (its peer's FIN) are
    exactly one TLS alert record that ends a session (plaintext close_notify, or an encrypted
    alert after the handshake), its description ("a 31 B encrypted alert (frame 13), most
    likely close_notify"), else None. Python's SSLSocket.close() sends a bare FIN without
    close_notify; an OpenSSL peer answers with such an alert, which arrives after the socket
    is closed and is answered by an RST: the normal end of such a session, not lost data."""
    if not isinstance(stream, TlsStream) or not stream.is_tls:
        return None
    later = [
        (a, r) for a, r in stream.alert_records if a.sender == sender and r.frame > after_frame
    ]
    if not later and stream.tls13 and stream.handshake_complete:
        # TLS 1.3 carries its alerts in application_data records: 24 B is the size of one.
        last = _last_record(stream, sender, 1 << 62)
        if (
            last is not None
            and last.frame > after_frame
            and last.content_type == 23
            and last.size == TLS13_ALERT_RECORD == nbytes
        ):
            return (
                f"a {last.size} B encrypted record (frame {last.frame}), the size of a TLS 1.3 "
                "alert, most likely close_notify"
            )
    if len(later) != 1:
        return None
    alert, rec = later[0]
    if rec.size != nbytes:
        return None
    if not alert.encrypted:
        if alert.description != "close_notify":
            return None
        return f"a {rec.size} B close_notify alert (frame {rec.frame})"
    if _reported(stream, alert, rec):
        return None
    return f"a {rec.size} B encrypted alert (frame {rec.frame}), most likely close_notify"


def _alerts(stream: TlsStream, ctx: TcpContext) -> list[Finding]:
    out: list[Finding] = []
    complete = stream.complete_frame
    for alert, rec in stream.alert_records:
        if not _reported(stream, alert, rec):
            continue
        if alert.encrypted:
            cipher = (
                cipher_suite_name(stream.server_hello.cipher_suite) if stream.server_hello else None
            )
            fits = encrypted_record_size(cipher, 2) == rec.size
            message = (
                f"{alert.sender} sent an encrypted alert ({rec.size} B record, frame "
                f"{rec.frame}"
                + (f", the size of a 2-byte alert under {cipher}" if fits else "")
                + ") before the handshake completed; its level and description are encrypted, "
                "but an alert at this point ends the handshake"
            )
            severity = Severity.WARNING
        else:
            stage = _stage(stream, rec)
            prior = _peer_close_before(stream, ctx, alert, rec)
            if prior:
                stage = prior
            message = (
                f"{alert.level} {alert.description} alert from the {alert.sender} "
                f"({rec.size} B, frame {rec.frame}){stage}"
            )
            severity = Severity.ERROR if alert.level == "fatal" else Severity.WARNING
            if alert.level == "warning" and complete is not None and rec.frame < complete:
                message += " — the handshake went on and completed (a warning alert is not fatal)"
                if alert.description == "unrecognized_name":
                    message += (
                        ": the server has no certificate configured for the SNI name the "
                        "client sent and used its default one (check its name-based "
                        "virtual hosts)"
                    )
        frames = [rec.frame]
        if severity == Severity.ERROR or complete is None:
            message += _then(ctx, rec.time, rec.frame)
            close = ctx.after(rec.time)
            if close is not None and close[2] == "RST":
                # The reset is this alert's consequence: the TCP rules leave it to this
                # finding (alert_before_reset), so its frame is part of the evidence here.
                frames.append(close[3])
        out.append(_finding("tls-alert", message, frames, rec.time, ctx, severity))
    out.extend(_tls13_inferred_alert(stream, ctx))
    return out


def _encrypted_handshake(stream: TlsStream, note: RecordNote) -> bool:
    """A TLS 1.3 application_data record before the handshake completed: it carries the
    encrypted handshake (EncryptedExtensions, Certificate, CertificateVerify, Finished), not
    application data."""
    complete = stream.complete_frame
    return (
        stream.tls13
        and tuple(note.tokens) == ("ApplicationData",)
        and (complete is None or note.frame < complete)
    )


def _tokens(stream: TlsStream, notes: list[RecordNote]) -> str:
    """The record names of `notes`, TLS 1.3's encrypted handshake records counted as such."""
    out: list[str] = []
    run = 0
    for note in notes:
        if _encrypted_handshake(stream, note):
            run += 1
            continue
        if run:
            out.append(plural(run, "encrypted handshake record"))
            run = 0
        out.extend(note.tokens)
    if run:
        out.append(plural(run, "encrypted handshake record"))
    return ", ".join(_runs(out))


def _runs(tokens: list[str]) -> list[str]:
    """Three or more equal tokens in a row as one, "ApplicationData ×254": a flight can hold
    up to MAX_NOTES records, and the finding and the verdict are read as one line."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and tokens[j] == tokens[i]:
            j += 1
        out.extend([tokens[i]] * (j - i) if j - i < 3 else [f"{tokens[i]} ×{j - i}"])
        i = j
    return out


def _stage(stream: TlsStream, rec: Record) -> str:
    if stream.complete_frame is not None and rec.frame >= stream.complete_frame:
        return " after the handshake completed"
    notes = stream.notes
    at = next(
        (i for i, n in enumerate(notes) if n.offset == rec.offset and n.frame == rec.frame), 0
    )
    if at == 0:
        return ""
    last = notes[at - 1]
    if _encrypted_handshake(stream, last):
        flight = [last]
        for note in reversed(notes[: at - 1]):
            if note.sender != last.sender or not _encrypted_handshake(stream, note):
                break
            flight.insert(0, note)
        size = sum(n.size for n in flight)
        return (
            f" after the {_name(last.sender)}'s encrypted handshake flight "
            f"({plural(len(flight), 'record')}, {size} B, last in frame {last.frame}: "
            "EncryptedExtensions, Certificate, CertificateVerify and Finished, which TLS 1.3 "
            "encrypts)"
        )
    return f" after the {_name(last.sender)}'s {'+'.join(last.tokens) or 'record'}"


def _peer_close_before(stream: TlsStream, ctx: TcpContext, alert: TlsAlert, rec: Record) -> str:
    """When the peer closed its side (FIN/RST) after its last record and before this alert,
    the alert answers that close: say so ("the client gave up without its next flight")."""
    peer = "server" if alert.sender == "client" else "client"
    before = [n for n in stream.notes if n.time <= rec.time and n.offset != rec.offset]
    last = before[-1] if before else None
    last_time = last.time if last is not None else float("-inf")
    for when, who, kind, frame in ctx.closes():
        if who != peer or not last_time <= when <= rec.time:
            continue
        text = f" in answer to the {peer} closing the connection ({kind}, frame {frame})"
        if last is None:
            return text
        what = "+".join(last.tokens) or "record"
        if _name(last.sender) != peer:
            return f"{text} without sending its next flight (the last record was the " + (
                f"{_name(last.sender)}'s {what})"
            )
        if last.got is not None:
            return f"{text} right after a cut-short {what} record ({last.got} of {last.size} B)"
        return f"{text} right after its {what}"
    return ""


def _tls13_inferred_alert(stream: TlsStream, ctx: TcpContext) -> list[Finding]:
    """TLS 1.3 hides alerts after the ServerHello in application_data records. A side whose
    last record, before the handshake completed, is exactly the size of an encrypted alert and
    is followed by its close, almost certainly sent one."""
    if not stream.tls13 or stream.handshake_complete:
        return []
    out: list[Finding] = []
    for side in stream.sides:
        rec = side.last_record
        if rec is None or rec.content_type != 23 or rec.size != TLS13_ALERT_RECORD:
            continue
        close = ctx.after(rec.time)
        if close is None:
            continue
        who = _name(side.direction)
        message = (
            f"{who}'s last record is a {rec.size} B encrypted record (frame {rec.frame}) sent "
            "before the TLS 1.3 handshake completed: the size of an encrypted alert (2 bytes, "
            "content type and a 16-byte tag), most likely a fatal one such as bad_certificate "
            f"or decrypt_error{_then(ctx, rec.time, rec.frame)}"
        )
        out.append(_finding("tls-alert", message, [rec.frame], rec.time, ctx, Severity.WARNING))
    return out


# -- tls-version-mismatch -------------------------------------------------------------------


def _offered(stream: TlsStream) -> list[int]:
    ch = stream.client_hello
    if ch is None:
        return []
    return [v for v in ch.supported_versions if not is_grease(v)] or [ch.legacy_version]


def _version_mismatch(stream: TlsStream, ctx: TcpContext) -> Finding | None:
    offered = _offered(stream)
    offered_text = ", ".join(version_name(v) for v in offered) or "nothing seen"
    for alert, rec in stream.alert_records:
        if alert.description == "protocol_version":
            chosen = (
                f"the server chose {version_name(stream.version)}"
                if stream.version is not None
                else f"the {alert.sender} refused with alert protocol_version"
            )
            message = (
                f"no TLS version in common: the client offered {offered_text}; {chosen} "
                f"(frame {rec.frame}){_then(ctx, rec.time, rec.frame)}"
            )
            return _finding("tls-version-mismatch", message, [rec.frame], rec.time, ctx)
    sh = stream.server_hello
    if sh is not None and offered and sh.version not in offered:
        frame = stream.server_hello_frame or 0
        supported = stream.client_hello and stream.client_hello.supported_versions
        # Without supported_versions the client accepts anything up to its legacy version.
        if supported or sh.version > max(offered):
            message = (
                f"the server chose {version_name(sh.version)}, which the client did not offer "
                f"(it offered {offered_text})"
            )
            return _finding("tls-version-mismatch", message, [frame], None, ctx)
    return None


# -- tls-no-server-hello --------------------------------------------------------------------


def _no_server_hello(stream: TlsStream, ctx: TcpContext) -> Finding | None:
    if stream.client_hello is None or stream.server_hello is not None:
        return None
    if stream.hello_retry is not None:
        return None
    if any(a.sender == "server" for a in stream.alerts):
        return None  # the server answered, with an alert: tls-alert says which
    ch_frame = stream.client_hello_frame or 0
    ch_note = next((n for n in stream.notes if "ClientHello" in n.tokens), None)
    ch_time = ch_note.time if ch_note is not None else 0.0
    frames = [ch_frame]
    sni = f" (SNI {stream.client_hello.sni})" if stream.client_hello.sni else ""
    head = f"the client sent a ClientHello{sni} (frame {ch_frame}) and "
    bad = stream.non_tls_reply
    if bad is not None:
        text = bad.data[:24]
        shown = (
            text.decode("ascii", errors="replace") if _printable(text) else bad.data[:16].hex(" ")
        )
        frames.append(bad.frame)
        message = (
            f"{head}the server answered with non-TLS bytes (frame {bad.frame}): {shown!r}. "
            f"{_plaintext_hint(text)}"
        )
        close = ctx.after(ch_time)
        if close is not None:
            when, who, kind, frame = close
            message += f"; {kind} from the {who} {_ms(when - ch_time)} after the ClientHello"
            message += f" (frame {frame})"
            frames.append(frame)
        return _finding("tls-no-server-hello", message, frames, ch_time, ctx)
    if stream.sides[1].records:
        return None  # the server sent TLS records, just no ServerHello: handshake-incomplete
    event = ctx.after(ch_time)
    if event is None:
        message = f"{head}the server sent nothing back before the capture ended"
    else:
        when, who, kind, frame = event
        frames.append(frame)
        action = "reset" if kind == "RST" else "closed (FIN)"
        message = (
            f"{head}the {who} {action} the connection {_ms(when - ch_time)} later "
            f"(frame {frame}) without a ServerHello"
        )
    message += (
        ". Likely causes: the wrong port or protocol, a server that is not TLS, or a middlebox "
        "dropping or resetting the connection based on the SNI"
    )
    return _finding("tls-no-server-hello", message, frames, ch_time, ctx)


PLAINTEXT_HINTS = (
    (b"220", "That is an SMTP or FTP greeting: the server speaks plaintext first on this port "
     "(upgrading with STARTTLS/AUTH TLS); connect with STARTTLS, or to the port where it runs "
     "implicit TLS (usually 465 for SMTP, 990 for FTP); if this is that port, the server is "
     "configured for plaintext there"),
    (b"HTTP/", "That is plain HTTP: the port serves http://, not https://"),
    (b"SSH-", "That is an SSH server banner"),
    (b"+OK", "That is a POP3 greeting: use STLS, or port 995 for implicit TLS"),
    (b"* OK", "That is an IMAP greeting: use STARTTLS, or port 993 for implicit TLS"),
)  # fmt: skip


def _plaintext_hint(data: bytes) -> str:
    for prefix, hint in PLAINTEXT_HINTS:
        if data.startswith(prefix):
            return hint
    return "The port is served by another protocol, or a proxy answered"


def _printable(data: bytes) -> bool:
    return bool(data) and all(32 <= b < 127 or b in (9, 10, 13) for b in data)


# -- tls-handshake-incomplete --------------------------------------------------------------


def _handshake_incomplete(stream: TlsStream, ctx: TcpContext) -> Finding | None:
    if stream.client_hello is None or stream.handshake_complete:
        return None
    notes = [n for n in stream.notes if n.got is None]
    if not notes:
        return None
    last = notes[-1]
    flight: list[RecordNote] = []
    for note in reversed(notes):
        if note.sender != last.sender:
            break
        flight.insert(0, note)
    who = _name(last.sender)
    waiting = "server" if who == "client" else "client"
    what = _tokens(stream, flight) or "records"
    n = len(flight)
    size = sum(x.size for x in flight)
    head = (
        f"the handshake did not complete: it stopped after the {who}'s flight {what} "
        f"({n} record{'s' if n != 1 else ''}, {size} B, last in frame {last.frame}); "
    )
    gap = next((g for g in stream.gaps if _name(g.sender) == waiting), None)
    cut = next((t for t in stream.truncated if t.how == "eof" and _name(t.sender) == who), None)
    if cut is not None and not ctx.closes():
        p = cut.partial
        got = f"{p.got} of {p.total} B" if p.total is not None else f"{p.got} B"
        return _finding(
            "tls-handshake-incomplete",
            f"{head}the {who}'s flight was still arriving when the capture ended (its next "
            f"record, frame {p.frame}, has {got}): the capture stopped too early to tell "
            "whether the handshake would have completed",
            [last.frame],
            last.time,
            ctx,
        )
    if gap is not None:
        # The waiting side did send something, the capture just missed it.
        message = (
            f"{head}the {waiting}'s next {gap.length} bytes were never captured (stream offset "
            f"{gap.offset})"
        )
        if gap.length == 7:
            message += (
                ": exactly the size of a plaintext alert record, most likely the "
                f"{waiting} rejecting the {who}'s flight with an alert"
            )
        message += f"; {ctx.how_ended()}"
    else:
        message = f"{head}the {waiting} never sent its next flight, and {ctx.how_ended()}"
        gap = next(iter(stream.gaps), None)
        if gap is not None:
            message += (
                f". Note: {gap.length} bytes from the {_name(gap.sender)} were never captured "
                f"(stream offset {gap.offset}), so part of the handshake may be missing from "
                "the capture only"
            )
    frames = [last.frame, *[c[3] for c in ctx.closes() if c[2] == "RST"][:1]]
    return _finding("tls-handshake-incomplete", message, frames, last.time, ctx)


# -- tls-record-malformed / tls-record-truncated ---------------------------------------------


def _malformed(stream: TlsStream, ctx: TcpContext) -> list[Finding]:
    out: list[Finding] = []
    for event in stream.malformed[:MAX_PER_KIND]:
        who = _name(event.sender)
        if event.what == "record header":
            message = (
                f"the {who}'s bytes at stream offset {event.offset} (frame {event.frame}) "
                f"cannot start a TLS record ({event.reason}): {event.hex}; TLS parsing of "
                f"that direction stopped there"
            )
        else:
            message = (
                f"the {who}'s {event.what} (frame {event.frame}) does not parse: {event.reason}"
            )
        out.append(_finding("tls-record-malformed", message, [event.frame], None, ctx))
    return out


def _truncated(stream: TlsStream, ctx: TcpContext) -> list[Finding]:
    out: list[Finding] = []
    events: list[TruncatedEvent] = [t for t in stream.truncated if t.how != "gap"]
    for event in events[:MAX_PER_KIND]:
        p = event.partial
        who = _name(event.sender)
        kind = content_type_name(p.content_type) if p.content_type is not None else "record"
        if p.content_type == 23 and stream.tls13 and not stream.handshake_complete:
            kind = "encrypted handshake (application_data)"
        size = f"{p.got} of {p.total} B" if p.total is not None else f"{p.got} B of its header"
        if event.how == "eof":
            # The capture stopped, not the connection: most likely a capture artefact. The
            # contract keeps this finding at error severity; the message says what to suspect.
            end = "before the capture ended (likely where the capture stopped, not the peer)"
        else:
            by = f" from the {_name(event.by)}" if event.by is not None else ""
            at = f" (frame {event.frame})" if event.frame is not None else ""
            end = f"before {event.how.upper()}{by}{at}"
        message = (
            f"the {who}'s {kind} record at stream offset {p.offset} (frame {p.frame}) is cut "
            f"short: {size} arrived {end}"
        )
        frames = [p.frame] + ([event.frame] if event.frame and event.how != "eof" else [])
        out.append(_finding("tls-record-truncated", message, frames, p.time, ctx))
    return out
