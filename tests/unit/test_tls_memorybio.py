"""Real OpenSSL handshakes, in memory (`ssl.MemoryBIO` + `SSLObject`, no sockets), fed to
`TlsStream`; plus the truncated-flight case (an incomplete client flight) reproduced the same way.

The helpers at the top are imported by the other `test_tls_*` modules.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tcpdiag.findings import tls_rules
from tcpdiag.model import Direction
from tcpdiag.tls import TlsStream

C, S = Direction.CLIENT, Direction.SERVER
SNI = "test.example"


@functools.cache
def cert_files() -> tuple[str, str]:
    """A throwaway self-signed P-256 certificate (made once per process with the openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    tmp = Path(tempfile.mkdtemp(prefix="tcpdiag-tls-"))
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
            "-subj", f"/CN={SNI}", "-days", "2",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def contexts(
    version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    alpn: list[str] | None = None,
    curve: str | None = "prime256v1",
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = cert_files()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    server.maximum_version = version
    if curve is not None and version == ssl.TLSVersion.TLSv1_2:
        server.set_ecdh_curve(curve)  # P-256: a 75-byte ClientKeyExchange
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    if alpn:
        client.set_alpn_protocols(alpn)
        server.set_alpn_protocols(alpn)
    return client, server


@dataclass
class Session:
    client: ssl.SSLObject
    server: ssl.SSLObject
    c_in: ssl.MemoryBIO
    c_out: ssl.MemoryBIO
    s_in: ssl.MemoryBIO
    s_out: ssl.MemoryBIO
    flights: list[tuple[Direction, bytes]] = field(default_factory=list)


def new_session(
    client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, sni: str | None = SNI
) -> Session:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=sni)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    return Session(client, server, c_in, c_out, s_in, s_out)


def _step(obj: ssl.SSLObject) -> bool:
    try:
        obj.do_handshake()
        return True
    except ssl.SSLWantReadError:
        return False


def handshake(session: Session, max_rounds: int = 10) -> list[tuple[Direction, bytes]]:
    """Run the handshake; return every flight as (sender, bytes), in order."""
    c_done = s_done = False
    for _ in range(max_rounds):
        c_done = _step(session.client) or c_done
        out = session.c_out.read()
        if out:
            session.flights.append((C, out))
            session.s_in.write(out)
        s_done = _step(session.server) or s_done
        out = session.s_out.read()
        if out:
            session.flights.append((S, out))
            session.c_in.write(out)
        if c_done and s_done and not session.c_out.pending and not session.s_out.pending:
            break
    return session.flights


def split_records(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 5 <= len(data):
        n = 5 + int.from_bytes(data[pos + 3 : pos + 5], "big")
        out.append(data[pos : pos + n])
        pos += n
    return out


@dataclass
class Feeder:
    """Feeds a TlsStream like the flow stage would: segments of at most `mss` bytes, one frame
    each, with increasing times."""

    stream: TlsStream = field(default_factory=TlsStream)
    mss: int = 1448
    frame: int = 3  # frames 1-3 are the TCP handshake
    time: float = 1000.0
    offsets: list[int] = field(default_factory=lambda: [0, 0])
    frames: list[tuple[Direction, int, bytes]] = field(default_factory=list)

    def send(self, direction: Direction, data: bytes) -> list[int]:
        used = []
        for i in range(0, len(data), self.mss) or [0]:
            chunk = data[i : i + self.mss]
            self.frame += 1
            self.time += 0.001
            self.stream.on_data(direction, self.offsets[direction], chunk, self.frame, self.time)
            self.offsets[direction] += len(chunk)
            self.frames.append((direction, self.frame, chunk))
            used.append(self.frame)
        return used

    def end(self, direction: Direction, how: str) -> tuple[int, float]:
        self.frame += 1
        self.time += 0.0002
        self.stream.on_end(direction, how, self.frame, self.time)
        return self.frame, self.time


def context_for(feeder: Feeder, closes: dict[str, tuple[int, float]]) -> tls_rules.TcpContext:
    def side(prefix: str) -> tls_rules.SideClose:
        fin = closes.get(prefix + "fin")
        rst = closes.get(prefix + "rst")
        return tls_rules.SideClose(
            fin[0] if fin else None, fin[1] if fin else None, rst[0] if rst else None,
            rst[1] if rst else None,
        )  # fmt: skip

    return tls_rules.TcpContext(flow=1, client=side("c"), server=side("s"))


def full_session(
    version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2, alpn: list[str] | None = None
) -> Session:
    client_ctx, server_ctx = contexts(version, alpn)
    session = new_session(client_ctx, server_ctx)
    handshake(session)
    return session


def feed_flights(flights: list[tuple[Direction, bytes]], feeder: Feeder | None = None) -> Feeder:
    feeder = feeder or Feeder()
    for direction, data in flights:
        feeder.send(direction, data)
    return feeder


# ---------------------------------------------------------------------------------- tests


def test_tls12_full_handshake_parsed_field_by_field() -> None:
    session = full_session(ssl.TLSVersion.TLSv1_2, alpn=["h2", "http/1.1"])
    feeder = feed_flights(session.flights)
    stream = feeder.stream
    summary = stream.summary()
    assert stream.is_tls
    assert summary.version == "TLS1.2"
    assert summary.sni == SNI
    assert summary.alpn == ["h2", "http/1.1"]
    assert summary.cipher_suite == "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
    assert summary.handshake_complete
    assert "TLS1.3" in summary.versions_offered and "TLS1.2" in summary.versions_offered
    types = [(m.sender, m.type) for m in summary.messages]
    assert types[:5] == [
        ("client", "ClientHello"),
        ("server", "ServerHello"),
        ("server", "Certificate"),
        ("server", "ServerKeyExchange"),
        ("server", "ServerHelloDone"),
    ]
    assert ("client", "ClientKeyExchange") in types
    assert ("client", "Finished") in types and ("server", "Finished") in types
    assert summary.ja3 is not None and len(summary.ja3) == 32
    assert summary.ja4 is not None and summary.ja4.startswith("t13d")
    assert summary.alerts == []
    labels = [label for row in stream.records_by_frame().values() for label in row]
    assert "ClientKeyExchange 75" in labels
    assert "ChangeCipherSpec 6" in labels
    assert "Finished* 45" in labels
    ch = stream.client_hello
    assert ch is not None and ch.sni == SNI and 0x0304 in ch.supported_versions
    assert 29 in ch.supported_groups and ch.key_share_groups
    assert ch.signature_algorithms
    assert tls_rules.diagnose(stream, tls_rules.TcpContext(flow=1)) == []


def test_tls13_handshake_complete_from_encrypted_flights() -> None:
    session = full_session(ssl.TLSVersion.TLSv1_3, alpn=["h2"])
    feeder = feed_flights(session.flights)
    summary = feeder.stream.summary()
    assert summary.version == "TLS1.3"
    assert summary.cipher_suite is not None and summary.cipher_suite.startswith("TLS_AES")
    assert summary.handshake_complete
    assert [m.type for m in summary.messages] == ["ClientHello", "ServerHello"]
    assert feeder.stream.server_hello is not None
    assert feeder.stream.server_hello.selected_version == 0x0304
    assert tls_rules.diagnose(feeder.stream, tls_rules.TcpContext(flow=1)) == []


def test_tls13_hello_retry_request() -> None:
    client_ctx, server_ctx = contexts(ssl.TLSVersion.TLSv1_3)
    # Server only accepts P-384, client's first key share is x25519: HelloRetryRequest.
    server_ctx.set_ecdh_curve("secp384r1")
    session = new_session(client_ctx, server_ctx)
    handshake(session)
    feeder = feed_flights(session.flights)
    stream = feeder.stream
    assert stream.hello_retry is not None
    types = [m.type for m in stream.summary().messages]
    assert types[:3] == ["ClientHello", "HelloRetryRequest", "ClientHello"]
    assert stream.summary().handshake_complete
    assert tls_rules.diagnose(stream, tls_rules.TcpContext(flow=1)) == []


def _seed_session() -> tuple[Session, list[bytes]]:
    client_ctx, server_ctx = contexts(ssl.TLSVersion.TLSv1_2)
    session = new_session(client_ctx, server_ctx)
    # ClientHello -> server flight -> client's second flight (not yet given to the server).
    _step(session.client)
    hello = session.c_out.read()
    session.flights.append((C, hello))
    session.s_in.write(hello)
    _step(session.server)
    flight = session.s_out.read()
    session.flights.append((S, flight))
    session.c_in.write(flight)
    _step(session.client)
    second = session.c_out.read()
    return session, split_records(second)


def _server_reply(session: Session, data: bytes) -> bytes:
    session.s_in.write(data)
    with pytest.raises(ssl.SSLError):
        session.server.do_handshake()
    return session.s_out.read()


def test_seed_truncated_flight_only_last_record() -> None:
    session, second = _seed_session()
    assert [len(r) for r in second] == [75, 6, 45]
    alert = _server_reply(session, second[-1])
    assert alert == bytes.fromhex("15030300020 20a".replace(" ", ""))
    feeder = feed_flights(session.flights)
    feeder.send(C, second[-1])
    alert_frame = feeder.send(S, alert)[0]
    rst = feeder.end(S, "rst")
    stream = feeder.stream
    findings = tls_rules.diagnose(stream, context_for(feeder, {"srst": rst}))
    names = [f.name for f in findings]
    assert names[0] == "tls-flight-incomplete"
    flight = findings[0]
    assert flight.message.startswith(
        "client sent 1 record (45 B) where ClientKeyExchange, ChangeCipherSpec, Finished were due"
    )
    assert "75+6+45" in flight.message
    assert "missing: ClientKeyExchange, ChangeCipherSpec" in flight.message
    assert "exactly the size of the encrypted Finished" in flight.message
    assert "fatal unexpected_message" in flight.message
    assert "RST from the server 0.2 ms later" in flight.message
    assert alert_frame in flight.frames
    assert "tls-alert" in names
    assert "tls-handshake-incomplete" not in names
    labels = stream.records_by_frame()
    assert labels[alert_frame] == ["Alert(fatal unexpected_message) 7"]
    assert any("EncryptedHandshake* 45" in v for v in labels.values())
    summary = stream.summary()
    assert not summary.handshake_complete
    assert summary.alerts[0].description == "unexpected_message"


def test_seed_variant_reversed_flight() -> None:
    session, second = _seed_session()
    reversed_flight = b"".join(reversed(second))
    alert = _server_reply(session, reversed_flight)
    # Fatal; which one depends on the first byte the server reads as a message type: the
    # encrypted Finished's explicit nonce, random in OpenSSL (mostly unexpected_message).
    assert alert[-2] == 2
    feeder = feed_flights(session.flights)
    feeder.send(C, reversed_flight)
    feeder.send(S, alert)
    rst = feeder.end(S, "rst")
    findings = tls_rules.diagnose(feeder.stream, context_for(feeder, {"srst": rst}))
    flight = next(f for f in findings if f.name == "tls-flight-incomplete")
    assert "3 records (45+6+75 B)" in flight.message
    assert "out of order" in flight.message


def test_seed_variant_ccs_first() -> None:
    session, second = _seed_session()
    data = second[1] + second[0] + second[2]
    feeder = feed_flights(session.flights)
    feeder.send(C, data)
    findings = tls_rules.diagnose(feeder.stream, tls_rules.TcpContext(flow=1))
    flight = next(f for f in findings if f.name == "tls-flight-incomplete")
    assert "ChangeCipherSpec 6 B, ClientKeyExchange 75 B, Finished* 45 B" in flight.message
    assert "out of order" in flight.message


def test_seed_variant_half_record_then_fin() -> None:
    session, second = _seed_session()
    half = second[0][:40]
    session.s_in.write(half)
    session.s_in.write_eof()
    with pytest.raises(ssl.SSLError):
        session.server.do_handshake()
    alert = session.s_out.read()
    feeder = feed_flights(session.flights)
    feeder.send(C, half)
    fin = feeder.end(C, "fin")
    feeder.send(S, alert or bytes.fromhex("1503030002 0232".replace(" ", "")))
    findings = tls_rules.diagnose(feeder.stream, context_for(feeder, {"cfin": fin}))
    names = [f.name for f in findings]
    assert "tls-record-truncated" in names
    truncated = next(f for f in findings if f.name == "tls-record-truncated")
    assert "40 of 75 B arrived before FIN" in truncated.message
    assert "tls-flight-incomplete" in names
    labels = [x for v in feeder.stream.records_by_frame().values() for x in v]
    assert "Handshake 75 (partial: 40 of 75 B)" in labels


def test_complete_handshake_then_encrypted_alert_and_fin_is_normal() -> None:
    session = full_session(ssl.TLSVersion.TLSv1_2)
    feeder = feed_flights(session.flights)
    # close_notify from the client, encrypted after the handshake, then FIN.
    with contextlib.suppress(ssl.SSLWantReadError):
        session.client.unwrap()
    notify = session.c_out.read()
    assert notify[0] == 21
    feeder.send(C, notify)
    fin = feeder.end(C, "fin")
    findings = tls_rules.diagnose(feeder.stream, context_for(feeder, {"cfin": fin}))
    assert findings == []
    alerts = feeder.stream.summary().alerts
    assert len(alerts) == 1 and alerts[0].encrypted


def test_client_hello_then_rst() -> None:
    session = new_session(*contexts())
    _step(session.client)
    feeder = Feeder()
    frame = feeder.send(C, session.c_out.read())[0]
    rst = feeder.end(S, "rst")
    findings = tls_rules.diagnose(feeder.stream, context_for(feeder, {"srst": rst}))
    assert [f.name for f in findings] == ["tls-no-server-hello"]
    assert "reset the connection" in findings[0].message
    assert findings[0].frames == (frame, rst[0])


def test_client_hello_then_http_answer() -> None:
    session = new_session(*contexts())
    _step(session.client)
    feeder = Feeder()
    feeder.send(C, session.c_out.read())
    feeder.send(S, b"HTTP/1.1 400 Bad Request\r\n\r\n")
    fin = feeder.end(S, "fin")
    findings = tls_rules.diagnose(feeder.stream, context_for(feeder, {"sfin": fin}))
    assert [f.name for f in findings] == ["tls-no-server-hello"]
    assert "non-TLS bytes" in findings[0].message and "HTTP/1.1 400" in findings[0].message


def test_server_flight_then_silence_is_handshake_incomplete() -> None:
    session, _second = _seed_session()
    feeder = feed_flights(session.flights)
    fin = feeder.end(C, "fin")
    findings = tls_rules.diagnose(feeder.stream, context_for(feeder, {"cfin": fin}))
    assert [f.name for f in findings] == ["tls-handshake-incomplete"]
    assert "after the server's flight ServerHello, Certificate, ServerKeyExchange, " in (
        findings[0].message
    )
    assert "the client closed the TCP connection (FIN" in findings[0].message


def test_byte_by_byte_gives_same_result() -> None:
    session = full_session(ssl.TLSVersion.TLSv1_2)
    whole = feed_flights(session.flights).stream
    tiny = feed_flights(session.flights, Feeder(mss=1)).stream
    a, b = whole.summary(), tiny.summary()
    assert [(m.sender, m.type, m.length) for m in a.messages] == [
        (m.sender, m.type, m.length) for m in b.messages
    ]
    assert (a.records_client, a.records_server) == (b.records_client, b.records_server)
    assert a.handshake_complete and b.handshake_complete
