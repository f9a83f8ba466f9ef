"""Handshake messages from hand-written bytes: ClientHello/ServerHello field by field, GREASE,
HelloRetryRequest, inconsistent lengths (one test per case), hostile SNI, huge certificates,
JA3/JA4 against published vectors."""

from __future__ import annotations

import hashlib

import pytest

from tcpdiag.errors import DecodeError
from tcpdiag.findings import tls_rules
from tcpdiag.model import Direction
from tcpdiag.tls import TlsStream
from tcpdiag.tls.constants import HRR_RANDOM, is_grease
from tcpdiag.tls.cursor import Cursor
from tcpdiag.tls.fingerprint import ja3, ja3_string, ja4, ja4_parts
from tcpdiag.tls.handshake import (
    ClientHello,
    HandshakeReassembler,
    parse_certificate,
    parse_client_hello,
    parse_server_hello,
)

C, S = Direction.CLIENT, Direction.SERVER


def u16(v: int) -> bytes:
    return v.to_bytes(2, "big")


def vec(n: int, data: bytes) -> bytes:
    return len(data).to_bytes(n, "big") + data


def ext(t: int, data: bytes) -> bytes:
    return u16(t) + vec(2, data)


def sni(name: bytes) -> bytes:
    return ext(0, vec(2, b"\x00" + vec(2, name)))


def alpn(*names: bytes) -> bytes:
    return ext(16, vec(2, b"".join(vec(1, n) for n in names)))


def client_hello_body(
    suites: list[int], exts: bytes, version: int = 0x0303, session: bytes = b""
) -> bytes:
    return (
        u16(version)
        + b"\x11" * 32
        + vec(1, session)
        + vec(2, b"".join(u16(s) for s in suites))
        + vec(1, b"\x00")
        + vec(2, exts)
    )


def hs(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def record(ct: int, payload: bytes, version: int = 0x0303) -> bytes:
    return bytes([ct]) + u16(version) + vec(2, payload)


GREASE_EXTS = (
    ext(0x0A0A, b"")
    + sni(b"www.example.com")
    + ext(10, vec(2, u16(0x2A2A) + u16(29) + u16(23)))
    + ext(11, vec(1, b"\x00"))
    + ext(13, vec(2, u16(0x0403) + u16(0x0804)))
    + alpn(b"h2", b"http/1.1")
    + ext(43, vec(1, u16(0x3A3A) + u16(0x0304) + u16(0x0303)))
    + ext(51, vec(2, u16(0x2A2A) + vec(2, b"\x00") + u16(29) + vec(2, b"k" * 32)))
    + ext(0x1A1A, b"\x00")
)


def test_client_hello_fields_with_grease() -> None:
    body = client_hello_body([0x0A0A, 0x1301, 0xC02F], GREASE_EXTS, session=b"s" * 32)
    hello = parse_client_hello(body)
    assert hello.legacy_version == 0x0303
    assert hello.session_id == b"s" * 32
    assert hello.cipher_suites == [0x0A0A, 0x1301, 0xC02F]
    assert hello.sni == "www.example.com"
    assert hello.alpn == ["h2", "http/1.1"]
    assert hello.supported_versions == [0x3A3A, 0x0304, 0x0303]
    assert hello.supported_groups == [0x2A2A, 29, 23]
    assert hello.key_share_groups == [0x2A2A, 29]
    assert hello.signature_algorithms == [0x0403, 0x0804]
    assert hello.ec_point_formats == [0]
    assert hello.extensions == [0x0A0A, 0, 10, 11, 13, 16, 43, 51, 0x1A1A]
    assert all(is_grease(v) for v in (0x0A0A, 0x1A1A, 0xFAFA)) and not is_grease(0x0A0B)


def test_client_hellos_share_their_16_bit_values() -> None:
    """Two connections' hellos hold the same int objects, not ~60 of their own each (the
    memory of every TLS connection held open): equal lists, identical items."""
    body = client_hello_body([0x0A0A, 0x1301, 0xC02F], GREASE_EXTS, session=b"s" * 32)
    first = parse_client_hello(body)
    second = parse_client_hello(bytes(body))
    for name in (
        "cipher_suites",
        "extensions",
        "supported_versions",
        "supported_groups",
        "key_share_groups",
        "signature_algorithms",
    ):
        a, b = getattr(first, name), getattr(second, name)
        assert a == b and a is not b
        assert all(x is y for x, y in zip(a, b, strict=True)), name
    assert first.cipher_suites[1] == 0x1301 and type(first.cipher_suites[1]) is int


def test_client_hello_in_stream_summary_ignores_grease() -> None:
    body = client_hello_body([0x0A0A, 0x1301, 0xC02F], GREASE_EXTS)
    stream = TlsStream()
    stream.on_data(C, 0, record(22, hs(1, body), 0x0301), 4, 1.0)
    summary = stream.summary()
    assert summary.versions_offered == ["TLS1.3", "TLS1.2"]
    assert summary.sni == "www.example.com"
    assert summary.alpn == ["h2", "http/1.1"]
    assert summary.ja4 is not None and summary.ja4.startswith("t13d0207h2_")


def test_server_hello_tls13_and_hello_retry_request() -> None:
    exts = ext(43, u16(0x0304)) + ext(51, u16(29) + vec(2, b"k" * 32))
    body = u16(0x0303) + b"\x22" * 32 + vec(1, b"") + u16(0x1301) + b"\x00" + vec(2, exts)
    sh = parse_server_hello(body)
    assert (sh.version, sh.selected_version, sh.cipher_suite) == (0x0304, 0x0304, 0x1301)
    assert sh.key_share_group == 29 and not sh.is_hello_retry_request
    hrr = parse_server_hello(
        u16(0x0303)
        + HRR_RANDOM
        + vec(1, b"")
        + u16(0x1301)
        + b"\x00"
        + vec(2, ext(43, u16(0x0304)))
    )
    assert hrr.is_hello_retry_request


def test_server_hello_tls12_with_alpn() -> None:
    body = u16(0x0303) + b"\x33" * 32 + vec(1, b"") + u16(0xC02F) + b"\x00" + vec(2, alpn(b"h2"))
    sh = parse_server_hello(body)
    assert (sh.version, sh.alpn, sh.selected_version) == (0x0303, "h2", None)


@pytest.mark.parametrize(
    "body",
    [
        # extensions length overruns the message
        client_hello_body([0x1301], b"")[:-2] + u16(50) + b"\x00\x00",
        # SNI list length larger than the extension
        client_hello_body([0x1301], ext(0, u16(40) + b"\x00" + vec(2, b"a"))),
        # SNI host_name length beyond the list
        client_hello_body([0x1301], ext(0, vec(2, b"\x00" + u16(300) + b"abc"))),
        # SNI of length 0
        client_hello_body([0x1301], sni(b"")),
        # odd cipher suite vector
        u16(0x0303) + b"\x11" * 32 + b"\x00" + u16(3) + b"\x13\x01\x13",
        # cut in the random
        u16(0x0303) + b"\x11" * 10,
    ],
    ids=["ext-overrun", "sni-list-long", "sni-name-long", "sni-empty", "odd-suites", "cut"],
)
def test_inconsistent_lengths_raise_decode_error_only(body: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_client_hello(body)


def test_inconsistent_client_hello_is_a_malformed_finding_not_an_exception() -> None:
    body = client_hello_body([0x1301], sni(b""))
    stream = TlsStream()
    stream.on_data(C, 0, record(22, hs(1, body), 0x0301), 4, 1.0)
    findings = tls_rules.diagnose(stream, tls_rules.TcpContext(flow=1))
    bad = [f for f in findings if f.name == "tls-record-malformed"]
    assert len(bad) == 1 and "ClientHello (frame 4) does not parse" in bad[0].message


def test_hostile_sni_is_kept_capped_and_replaced() -> None:
    name = b"\x1b[31m\x00evil\xff" + b"a" * 65000
    hello = parse_client_hello(client_hello_body([0x1301], sni(name)))
    assert hello.sni is not None and len(hello.sni) == 255
    assert hello.sni.startswith("\x1b[31m\x00evil\ufffd")


def test_two_sni_extensions_first_wins() -> None:
    hello = parse_client_hello(client_hello_body([0x1301], sni(b"one.example") + sni(b"two")))
    assert hello.sni == "one.example"


def test_handshake_message_split_across_records_and_coalesced() -> None:
    body = client_hello_body([0x1301], sni(b"split.example"))
    msg = hs(1, body)
    stream = TlsStream()
    data = b"".join(record(22, msg[i : i + 20], 0x0301) for i in range(0, len(msg), 20))
    for i in range(0, len(data), 7):
        stream.on_data(C, i, data[i : i + 7], 10 + i, 1.0)
    assert stream.client_hello is not None and stream.client_hello.sni == "split.example"
    # Several messages in one record (server: ServerHello + ServerHelloDone).
    sh = u16(0x0303) + b"\x33" * 32 + vec(1, b"") + u16(0xC02F) + b"\x00"
    stream.on_data(S, 0, record(22, hs(2, sh) + hs(14, b"")), 99, 2.0)
    types = [m.type for m in stream.summary().messages]
    assert types == ["ClientHello", "ServerHello", "ServerHelloDone"]
    assert stream.records_by_frame()[99] == ["ServerHello+ServerHelloDone 51"]


def test_certificate_above_the_buffer_cap_is_typed_and_counted() -> None:
    cert_len = 340_000
    msg_header = hs(11, b"")[:1] + (cert_len).to_bytes(3, "big")
    body = b"\x00" * cert_len
    payload = msg_header + body + hs(14, b"")
    stream = TlsStream(assume_tls=True)
    offset = 0
    for i in range(0, len(payload), 16384):
        data = record(22, payload[i : i + 16384])
        stream.on_data(S, offset, data, 100 + i // 16384, 1.0)
        offset += len(data)
    messages = stream.summary().messages
    assert [(m.type, m.length) for m in messages] == [
        ("Certificate", cert_len),
        ("ServerHelloDone", 0),
    ]
    labels = stream.records_by_frame()
    assert labels[100] == ["Certificate 16389"]
    assert labels[101] == ["Handshake 16389 (cont. Certificate)"]


def test_certificate_sizes() -> None:
    certs = vec(3, b"A" * 700) + vec(3, b"B" * 300)
    assert parse_certificate(vec(3, certs), tls13=False) == [700, 300]
    certs13 = vec(3, b"A" * 10) + vec(2, b"") + vec(3, b"B" * 5) + vec(2, b"")
    assert parse_certificate(vec(1, b"") + vec(3, certs13), tls13=True) == [10, 5]


def test_reassembler_is_chunking_independent() -> None:
    data = hs(1, b"x" * 100) + hs(2, b"y" * 5) + hs(14, b"")
    whole = [(m.msg_type, m.length) for m in HandshakeReassembler(1024).feed(data, 1, 0)]
    r = HandshakeReassembler(1024)
    pieces = [
        (m.msg_type, m.length) for i in range(len(data)) for m in r.feed(data[i : i + 1], 1, 0)
    ]
    assert whole == pieces == [(1, 100), (2, 5), (14, 0)]


def test_cursor_never_raises_anything_but_decode_error() -> None:
    cur = Cursor(b"\x01\x02")
    with pytest.raises(DecodeError):
        cur.pull_uint24()
    with pytest.raises(DecodeError):
        Cursor(b"\x05ab").pull_vector(1)


def _hello(**kw: object) -> ClientHello:
    hello = ClientHello(0x0303, b"\0" * 32, b"", [], b"\0")
    for name, value in kw.items():
        setattr(hello, name, value)
    return hello


def test_ja4_matches_foxio_published_example() -> None:
    hello = _hello(
        cipher_suites=[0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8,
                       0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035, 0x0A0A],
        extensions=[0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005,
                    0x0023, 0x0012, 0x002B, 0xFF01, 0x000B, 0x000A, 0x0015, 0x2A2A],
        signature_algorithms=[0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601],
        supported_versions=[0x0A0A, 0x0304, 0x0303],
        sni="example.com",
        alpn=["h2", "http/1.1"],
    )  # fmt: skip
    assert ja4(hello) == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    a, _ciphers, _exts = ja4_parts(hello)
    assert a == "t13d1516h2"
    no_sigs = _hello(cipher_suites=hello.cipher_suites, extensions=hello.extensions, sni="x")
    assert hashlib.sha256(ja4_parts(no_sigs)[2].encode()).hexdigest()[:12] == "6d807ffa2a79"


def test_ja4_edge_cases() -> None:
    empty = _hello(cipher_suites=[], extensions=[])
    assert ja4(empty) == "t12i000000_000000000000_000000000000"
    odd = _hello(cipher_suites=[0x1301], extensions=[16], alpn=["\x01x\x02"])
    assert ja4(odd).startswith("t12i010102")  # non-alphanumeric ALPN: hex digits


def test_ja3_matches_a_published_pair() -> None:
    text = (
        "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
        "45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-13-27,4588-29-23-24,0"
    )
    version, suites, exts, groups, formats = text.split(",")
    hello = _hello(
        legacy_version=int(version),
        cipher_suites=[0x0A0A, *map(int, suites.split("-"))],
        extensions=[0x1A1A, *map(int, exts.split("-"))],
        supported_groups=[0x2A2A, *map(int, groups.split("-"))],
        ec_point_formats=[int(formats)],
    )
    assert ja3_string(hello) == text
    assert ja3(hello) == "98487aa16281980e7d1120d399efb6a4"


def test_handshake_length_longer_than_what_the_records_carried() -> None:
    body = client_hello_body([0x1301], sni(b"a.example"))
    msg = b"\x01" + (len(body) + 400).to_bytes(3, "big") + body  # claims 400 bytes more
    stream = TlsStream()
    stream.on_data(C, 0, record(22, msg, 0x0301), 4, 1.0)
    stream.on_end(C, "fin", 5, 1.1)
    findings = tls_rules.diagnose(stream, tls_rules.TcpContext(flow=1))
    bad = [f for f in findings if f.name == "tls-record-malformed"]
    assert len(bad) == 1
    assert f"header claims {len(body) + 400} bytes" in bad[0].message
