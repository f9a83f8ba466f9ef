"""TLS findings in their TCP context, with a near miss for each where normal traffic could be
mistaken for a failure."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from test_tls_memorybio import (
    C,
    Feeder,
    S,
    _step,
    context_for,
    contexts,
    feed_flights,
    full_session,
    handshake,
    new_session,
    split_records,
)

from tcpdiag.findings import tls_rules
from tcpdiag.result import Severity
from tcpdiag.tls import TlsStream
from tcpdiag.tls import stream as tls_stream


def names(stream: TlsStream, ctx: tls_rules.TcpContext | None = None) -> list[str]:
    return [f.name for f in tls_rules.diagnose(stream, ctx or tls_rules.TcpContext(flow=1))]


def test_warning_alert_unrecognized_name_is_a_warning() -> None:
    session = full_session(ssl.TLSVersion.TLSv1_2)
    flights = list(session.flights)
    feeder = Feeder()
    feeder.send(*flights[0])
    feeder.send(S, bytes.fromhex("150303000201 70".replace(" ", "")))  # warning 112
    for f in flights[1:]:
        feeder.send(*f)
    findings = tls_rules.diagnose(feeder.stream, tls_rules.TcpContext(flow=1))
    assert [(f.name, f.severity) for f in findings] == [("tls-alert", Severity.WARNING)]
    assert "warning unrecognized_name alert from the server" in findings[0].message
    assert feeder.stream.summary().handshake_complete


def test_protocol_version_alert_gives_alert_and_version_mismatch() -> None:
    client_ctx, server_ctx = contexts(ssl.TLSVersion.TLSv1_2)
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    server_ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    session = new_session(client_ctx, server_ctx)
    _step(session.client)
    hello = session.c_out.read()
    session.s_in.write(hello)
    with pytest.raises(ssl.SSLError):
        session.server.do_handshake()
    alert = session.s_out.read()
    assert alert[-2:] == b"\x02\x46"
    feeder = Feeder()
    feeder.send(C, hello)
    feeder.send(S, alert)
    fin = feeder.end(S, "fin")
    findings = tls_rules.diagnose(feeder.stream, context_for(feeder, {"sfin": fin}))
    assert [f.name for f in findings] == ["tls-alert", "tls-version-mismatch"]
    assert "client offered TLS1.2" in findings[1].message
    assert "FIN from the server" in findings[1].message


def test_client_rejects_certificate_unknown_ca() -> None:
    client_ctx, server_ctx = contexts(ssl.TLSVersion.TLSv1_2)
    client_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx.load_default_certs()
    session = new_session(client_ctx, server_ctx)
    with pytest.raises(ssl.SSLError):
        handshake(session)
    rest = session.c_out.read()
    feeder = feed_flights(session.flights)
    if rest:
        feeder.send(C, rest)
    rst = feeder.end(C, "rst")
    findings = tls_rules.diagnose(feeder.stream, context_for(feeder, {"crst": rst}))
    alert = next(f for f in findings if f.name == "tls-alert")
    assert alert.severity == Severity.ERROR
    assert "from the client" in alert.message
    assert "tls-handshake-incomplete" not in [f.name for f in findings]


def test_resumed_tls12_handshake_is_normal() -> None:
    client_ctx, server_ctx = contexts(ssl.TLSVersion.TLSv1_2)
    first = new_session(client_ctx, server_ctx)
    handshake(first)
    again = client_ctx.wrap_bio(
        ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="x", session=first.client.session
    )
    del again
    second = new_session(client_ctx, server_ctx)
    second.client = client_ctx.wrap_bio(
        second.c_in, second.c_out, server_hostname="x", session=first.client.session
    )
    handshake(second)
    assert second.client.session_reused
    feeder = feed_flights(second.flights)
    stream = feeder.stream
    types = [(m.sender, m.type) for m in stream.summary().messages]
    assert ("server", "Certificate") not in types
    assert stream.summary().handshake_complete
    assert names(stream) == []


def test_resumed_handshake_client_flight_without_ccs() -> None:
    client_ctx, server_ctx = contexts(ssl.TLSVersion.TLSv1_2)
    first = new_session(client_ctx, server_ctx)
    handshake(first)
    second = new_session(client_ctx, server_ctx)
    second.client = client_ctx.wrap_bio(
        second.c_in, second.c_out, server_hostname="x", session=first.client.session
    )
    handshake(second)
    flights = list(second.flights)
    last_client = flights[2][1]
    records = split_records(last_client)
    assert records[0][0] == 20  # CCS, then Finished
    feeder = feed_flights(flights[:2])
    feeder.send(C, records[-1])
    found = names(feeder.stream)
    assert "tls-flight-incomplete" in found


def test_tls13_encrypted_alert_inferred_from_size() -> None:
    session = full_session(ssl.TLSVersion.TLSv1_3)
    flights = session.flights
    feeder = feed_flights(flights[:2])
    # The client answers the server's flight with one 24-byte encrypted record and resets.
    feeder.send(C, b"\x17\x03\x03\x00\x13" + b"\xaa" * 19)
    rst = feeder.end(C, "rst")
    findings = tls_rules.diagnose(feeder.stream, context_for(feeder, {"crst": rst}))
    alert = next(f for f in findings if f.name == "tls-alert")
    assert alert.severity == Severity.WARNING
    assert "the size of an encrypted alert" in alert.message


def test_tls12_encrypted_alert_during_handshake_is_reported() -> None:
    session = full_session(ssl.TLSVersion.TLSv1_2)
    flights = session.flights
    feeder = feed_flights(flights[:3])  # ClientHello, server flight, client second flight
    feeder.send(S, b"\x14\x03\x03\x00\x01\x01")  # server CCS
    feeder.send(S, b"\x15\x03\x03\x00\x1a" + b"\x55" * 26)  # encrypted alert, GCM: 31 B
    fin = feeder.end(S, "fin")
    findings = tls_rules.diagnose(feeder.stream, context_for(feeder, {"sfin": fin}))
    alert = next(f for f in findings if f.name == "tls-alert")
    assert "encrypted alert" in alert.message and "before the handshake completed" in alert.message
    assert "the size of a 2-byte alert under TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" in (
        alert.message
    )


def test_plaintext_close_notify_is_not_reported() -> None:
    session = full_session(ssl.TLSVersion.TLSv1_3)
    feeder = feed_flights(session.flights)
    feeder.send(C, bytes.fromhex("15030300020100"))
    assert names(feeder.stream) == []


def test_version_chosen_but_not_offered() -> None:
    from test_tls_handshake import client_hello_body, ext, hs, record, u16, vec

    stream = TlsStream()
    body = client_hello_body([0x1301], ext(43, vec(1, u16(0x0304))))
    stream.on_data(C, 0, record(22, hs(1, body), 0x0301), 4, 1.0)
    sh = u16(0x0301) + b"\x33" * 32 + vec(1, b"") + u16(0x002F) + b"\x00"
    stream.on_data(S, 0, record(22, hs(2, sh)), 5, 1.1)
    findings = tls_rules.diagnose(stream, tls_rules.TcpContext(flow=1))
    mismatch = next(f for f in findings if f.name == "tls-version-mismatch")
    assert "chose TLS1.0, which the client did not offer (it offered TLS1.3)" in mismatch.message


def test_mid_stream_capture_has_no_handshake_findings() -> None:
    stream = TlsStream()
    stream.on_data(C, 0, b"\x17\x03\x03\x00\x20" + b"\x01" * 32, 4, 1.0)
    stream.on_data(S, 0, b"\x17\x03\x03\x00\x40" + b"\x02" * 64, 5, 1.1)
    assert stream.is_tls
    assert names(stream) == []
    assert stream.summary().records_client == 1


def test_client_hello_then_silence_until_capture_end() -> None:
    session = new_session(*contexts())
    _step(session.client)
    feeder = Feeder()
    feeder.send(C, session.c_out.read())
    findings = tls_rules.diagnose(feeder.stream, tls_rules.TcpContext(flow=1))
    assert [f.name for f in findings] == ["tls-no-server-hello"]
    assert "sent nothing back before the capture ended" in findings[0].message


def test_repeated_records_of_a_flight_are_counted_not_listed() -> None:
    # The server went on sending while the client never sent its second flight: the flight
    # names its records once with a count ("ApplicationData ×6"), not six times.
    session = full_session(ssl.TLSVersion.TLSv1_2)
    feeder = feed_flights(session.flights[:2])
    for _ in range(6):
        feeder.send(S, bytes([23, 3, 3, 0, 30]) + bytes(30))
    fin = feeder.end(S, "fin")
    (finding,) = tls_rules.diagnose(feeder.stream, context_for(feeder, {"sfin": fin}))
    assert "ServerHelloDone, ApplicationData ×6 (10 records, " in finding.message


def test_records_after_the_handshake_keep_few_notes() -> None:
    # A long connection: the handshake's notes, then only the last few records' (the rules
    # read the record before a late alert); 600 records once made 256 notes.
    session = full_session(ssl.TLSVersion.TLSv1_2)
    feeder = feed_flights(session.flights)
    handshake_notes = len(feeder.stream.notes)
    assert feeder.stream.handshake_complete
    for i in range(600):
        feeder.send(C if i % 2 else S, bytes([23, 3, 3, 0, 30]) + bytes(30))
    notes = feeder.stream.notes
    assert len(notes) == handshake_notes + tls_stream.NOTES_AFTER_HANDSHAKE
    assert notes[-1].frame == feeder.frame and notes[-1].sender == C
    assert tls_rules.diagnose(feeder.stream, tls_rules.TcpContext(flow=1)) == []


def test_tcp_context_how_ended() -> None:
    ctx = tls_rules.TcpContext(
        client=tls_rules.SideClose(fin_frame=10, fin_time=2.0),
        server=tls_rules.SideClose(rst_frame=11, rst_time=2.5),
    )
    assert ctx.how_ended() == (
        "the client closed the TCP connection (FIN, frame 10), then the server reset it (frame 11)"
    )
    assert tls_rules.TcpContext().how_ended().startswith("the TCP connection was neither")


def test_context_from_flow_reads_endpoint_attributes() -> None:
    class End:
        def __init__(self, fin: int | None, rst: int | None) -> None:
            self.fin_frame, self.fin_time = fin, 1.0 if fin else None
            self.rst_frame, self.rst_time = rst, 2.0 if rst else None

    class Flow:
        id = 7
        endpoints = (End(5, None), End(None, 6))

    ctx = tls_rules.context_from_flow(Flow())
    assert ctx.flow == 7 and ctx.client.fin_frame == 5 and ctx.server.rst_frame == 6


def test_typed_context_equals_the_generic_one_on_real_flows() -> None:
    """The engine builds the context with `tcp_rules.tls_context` (typed attribute reads); it
    must be what `context_from_flow` reads by name, on flows closed every way."""
    from tcpdiag.findings.tcp_rules import tls_context
    from tests.flows import flows_of

    compared, closes = 0, set()
    for path in sorted(Path(__file__).parents[2].joinpath("captures").glob("*.pcap*")):
        for flow in flows_of(path):
            typed, generic = tls_context(flow), tls_rules.context_from_flow(flow)
            assert typed == generic, (path.name, flow.id)
            compared += 1
            closes.update(kind for _, _, kind, _ in typed.closes())
    assert compared > 40 and closes == {"FIN", "RST"}


def test_hello_retry_request_answered_without_a_second_client_hello() -> None:
    client_ctx, server_ctx = contexts(ssl.TLSVersion.TLSv1_3)
    server_ctx.set_ecdh_curve("secp384r1")
    session = new_session(client_ctx, server_ctx)
    handshake(session)
    flights = session.flights
    assert flights[1][0] == S  # the HelloRetryRequest flight
    feeder = feed_flights(flights[:2])
    feeder.send(C, b"\x17\x03\x03\x00\x40" + b"\x07" * 64)  # encrypted data instead
    rst = feeder.end(S, "rst")
    findings = tls_rules.diagnose(feeder.stream, context_for(feeder, {"srst": rst}))
    flight = next(f for f in findings if f.name == "tls-flight-incomplete")
    assert "answer to a HelloRetryRequest" in flight.message
    assert "missing: ClientHello" in flight.message


def test_uncaptured_alert_sized_bytes_are_named() -> None:
    session = full_session(ssl.TLSVersion.TLSv1_2)
    feeder = feed_flights(session.flights[:2])
    feeder.stream.on_gap(C, feeder.offsets[C], 7, feeder.frame + 1)
    rst = feeder.end(C, "rst")
    findings = tls_rules.diagnose(feeder.stream, context_for(feeder, {"crst": rst}))
    assert [f.name for f in findings] == ["tls-handshake-incomplete"]
    assert "the client's next 7 bytes were never captured" in findings[0].message
    assert "size of a plaintext alert record" in findings[0].message


def test_client_gives_up_and_the_server_answers_the_fin() -> None:
    from test_tls_memorybio import _seed_session

    session, _second = _seed_session()
    session.s_in.write_eof()
    with pytest.raises(ssl.SSLError):
        session.server.do_handshake()
    alert = session.s_out.read()
    feeder = feed_flights(session.flights)
    fin = feeder.end(C, "fin")
    feeder.send(S, alert or bytes.fromhex("15030300020232"))
    findings = tls_rules.diagnose(feeder.stream, context_for(feeder, {"cfin": fin}))
    assert [f.name for f in findings] == ["tls-alert"]
    assert "in answer to the client closing the connection (FIN" in findings[0].message
    assert "without sending its next flight" in findings[0].message


def test_encrypted_record_sizes_match_real_records() -> None:
    from tcpdiag.tls.flights import encrypted_record_size, finished_record_size

    gcm = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
    cbc = "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"  # tls12-ecdhe-full: Finished* 69, Alert* 53
    assert finished_record_size(gcm) == 45
    assert (finished_record_size(cbc), encrypted_record_size(cbc, 2)) == (69, 53)
    assert encrypted_record_size("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 2) == 23
    assert encrypted_record_size(None, 2) is None


def _lab_flow(name: str):  # type: ignore[no-untyped-def]
    from pathlib import Path

    from tcpdiag.config import AnalysisOptions
    from tcpdiag.engine import analyze_capture

    path = Path(__file__).resolve().parents[2] / "captures" / name
    (flow,) = analyze_capture(str(path), AnalysisOptions()).flows
    return flow


def test_tls13_alert_after_the_encrypted_handshake_flight_is_named_so() -> None:
    # tls-unknown-ca: TLS 1.3 hides EncryptedExtensions..Finished in application_data records;
    # "after the server's ApplicationData" misled: no application data was ever sent.
    flow = _lab_flow("tls-unknown-ca.pcap")
    alert = next(f for f in flow.findings if f.name == "tls-alert")
    assert "after the server's encrypted handshake flight (4 records, 638 B" in alert.message
    assert "ApplicationData" not in alert.message


def test_near_miss_tls12_alert_names_the_plain_message() -> None:
    flow = _lab_flow("tls-no-shared-cipher.pcap")
    alert = next(f for f in flow.findings if f.name == "tls-alert")
    assert "after the client's ClientHello" in alert.message
    assert "encrypted handshake" not in alert.message


def test_verdict_says_the_client_gave_up_first() -> None:
    # tls-client-gives-up: the client's FIN (frame 8) came first; the alert only answers it.
    flow = _lab_flow("tls-client-gives-up.pcap")
    assert flow.verdict == (
        "TLS handshake abandoned by the client (FIN, frame 8) before its next flight; the "
        "server answered with fatal decode_error"
    )


def test_near_miss_incomplete_flight_verdict_blames_the_flight() -> None:
    flow = _lab_flow("tls-half-record.pcap")
    assert flow.verdict == (
        "TLS handshake failed: fatal decode_error from server after client's incomplete flight"
    )


def test_incomplete_handshake_verdict_is_one_line_with_the_ending() -> None:
    flow = _lab_flow("tls-server-stalls.pcap")
    assert flow.verdict.startswith("TLS handshake stopped after the client's flight")
    assert flow.verdict.endswith("then closed by both sides (first FIN, frame 10)")


def test_reset_ending_a_failed_handshake_is_left_to_the_tls_finding() -> None:
    # tls-no-server-hello: the server's RST after the ClientHello is how the failure ended.
    flow = _lab_flow("tls-no-server-hello.pcap")
    assert [f.name for f in flow.findings] == ["tls-no-server-hello"]
    assert 6 in flow.findings[0].frames


def test_near_miss_reset_after_a_completed_handshake_stays_a_tcp_finding() -> None:
    flow = _lab_flow("tls-rst-mid-record.pcap")
    assert "reset-mid-stream" in {f.name for f in flow.findings}


def test_warning_alert_before_a_completed_handshake_says_it_went_on() -> None:
    # tls-early-alert-unrecognized-name (public): warning unrecognized_name, then the
    # handshake completes: say so, and what the alert means.
    from pathlib import Path

    from tcpdiag.config import AnalysisOptions
    from tcpdiag.engine import analyze_capture

    path = Path(__file__).resolve().parents[3] / "shared/captures/public"
    path /= "tls-early-alert-unrecognized-name.pcap"
    if not path.is_file():
        pytest.skip("public capture corpus not available")
    (flow,) = analyze_capture(str(path), AnalysisOptions()).flows
    alert = next(f for f in flow.findings if f.name == "tls-alert")
    assert "the handshake went on and completed" in alert.message
    assert "no certificate configured for the SNI name" in alert.message
    assert flow.verdict.endswith("after the client's ClientHello")


def test_near_miss_fatal_alert_does_not_say_the_handshake_went_on() -> None:
    flow = _lab_flow("tls-no-shared-cipher.pcap")
    alert = next(f for f in flow.findings if f.name == "tls-alert")
    assert "went on" not in alert.message
