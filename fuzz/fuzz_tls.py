"""Fuzz target: TLS record/handshake parsers and `TlsStream` fed in chunks, both directions.

Byte 0 picks the mode. Mode 0 hands the rest to each parser directly (ClientHello, SSLv2
ClientHello, ServerHello, Certificate, ServerKeyExchange, the record framer, the handshake
reassembler, the detectors). Other modes feed a `TlsStream` (sniffing, or assuming TLS) with
chunks: each chunk header byte gives the direction (bit 0), a hole before it (bit 1) and its
length (bits 2-7, plus one); then the TLS rules run on the finished stream.
"""

from __future__ import annotations

import common

with common.instrumented():
    from tcpdiag.errors import TcpdiagError
    from tcpdiag.findings import tls_rules
    from tcpdiag.model import Direction
    from tcpdiag.tls import TlsStream, detect, looks_like_tls
    from tcpdiag.tls import handshake as hs
    from tcpdiag.tls.records import RecordFramer

MAX_SNI = hs.MAX_NAME_CHARS


def _parsers(body: bytes) -> None:
    for parse in (
        hs.parse_client_hello,
        hs.parse_sslv2_client_hello,
        hs.parse_server_hello,
        lambda b: hs.parse_certificate(b, False),
        lambda b: hs.parse_certificate(b, True),
        hs.ecdhe_point_length,
    ):
        try:
            parsed = parse(body)
        except TcpdiagError:
            continue
        sni = getattr(parsed, "sni", None)
        assert sni is None or len(sni) <= MAX_SNI, len(sni)
        alpn = getattr(parsed, "alpn", None)
        assert not isinstance(alpn, list) or len(alpn) <= hs.MAX_ALPN_ITEMS, alpn
    for sender in Direction:
        hs.looks_plaintext(body, sender, True)
        hs.looks_plaintext(body, sender, False)
    hs.starting_types(body, body[0] if body else 0)
    looks_like_tls(body)
    detect(body)
    framer = RecordFramer(lambda t: True, allow_sslv2=bool(body[:1]) and body[0] & 1 == 1)
    reasm = hs.HandshakeReassembler(1 << 14)
    offset = 0
    for piece in common.chunks(body, body[:8]):
        try:
            records = framer.feed(piece, 1, 0.0)
        except TcpdiagError:
            break
        for rec in records:
            assert rec.length >= 0 and rec.offset >= 0
            if rec.payload is not None and rec.content_type == 22:
                reasm.feed(rec.payload, rec.frame, rec.offset)
        offset += len(piece)
    framer.partial  # noqa: B018


def stream_chunks(data: bytes) -> list[tuple[int, bool, bytes]]:
    out: list[tuple[int, bool, bytes]] = []
    pos = 0
    while pos < len(data):
        head = data[pos]
        n = (head >> 2) + 1
        out.append((head & 1, bool(head & 2), data[pos + 1 : pos + 1 + n]))
        pos += 1 + n
    return out


def feed_stream(data: bytes, assume_tls: bool) -> TlsStream:
    stream = TlsStream(assume_tls=assume_tls)
    offsets = [0, 0]
    frame = 0
    for direction, hole, piece in stream_chunks(data):
        frame += 1
        if not stream.wants_data:
            break
        if hole:
            stream.on_gap(direction, offsets[direction], 7, frame)
            offsets[direction] += 7
        stream.on_data(direction, offsets[direction], piece, frame, frame / 1000)
        offsets[direction] += len(piece)
    for direction in (0, 1):
        stream.on_end(direction, "fin", frame + 1, (frame + 1) / 1000)
    return stream


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    try:
        if mode == 0:
            _parsers(rest)
            return
        stream = feed_stream(rest, assume_tls=mode == 2)
        findings = tls_rules.diagnose(stream, tls_rules.TcpContext(flow=1))
        summary = stream.summary()
        stream.records_by_frame()
    except TcpdiagError:
        return
    assert summary.sni is None or len(summary.sni) <= MAX_SNI, len(summary.sni)
    assert len(summary.alpn) <= hs.MAX_ALPN_ITEMS
    for finding in findings:
        assert finding.name and finding.message


def _framed(stream: bytes, direction: int) -> bytes:
    """`stream` as chunk-headed pieces of up to 64 bytes in one direction."""
    out = b""
    for i in range(0, len(stream), 64):
        piece = stream[i : i + 64]
        out += bytes([((len(piece) - 1) << 2) | direction]) + piece
    return out


def seeds() -> list[bytes]:
    from tests.hostile import packets as p

    ch = p.record(p.client_hello(b"example.com", (b"h2", b"http/1.1")))
    sh = p.record(p.server_hello() + p.handshake(11, b"\x00\x00\x00") + p.handshake(14, b""))
    alert = p.record(b"\x02\x28", 21, 0x0303)
    ccs = p.record(b"\x01", 20, 0x0303)
    app = p.record(b"\x17" * 40, 23, 0x0303)
    sslv2 = b"\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10" + b"\x00\x00\x35" * 7 + bytes(16)
    smtp_c = b"EHLO x\r\nSTARTTLS\r\n"
    smtp_s = b"220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n220 go ahead\r\n"
    return [
        b"\x00" + p.client_hello()[4:],
        b"\x00" + p.server_hello()[4:],
        b"\x00" + sslv2,
        b"\x00" + ch + sh + alert,
        b"\x01" + _framed(ch, 0) + _framed(sh + ccs, 1) + _framed(ccs + app, 0) + _framed(alert, 1),
        b"\x02" + _framed(ch, 0) + _framed(alert, 1),
        b"\x01" + _framed(sslv2, 0) + _framed(sh, 1),
        b"\x01"
        + _framed(smtp_s[:14], 1)
        + _framed(smtp_c, 0)
        + _framed(smtp_s[14:], 1)
        + _framed(ch, 0),
    ]


if __name__ == "__main__":
    common.main(test_one_input, seeds)
