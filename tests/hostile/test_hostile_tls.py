"""Bad-inputs cases 41-46: TLS level (bad record headers, split and coalesced handshakes,
inconsistent lengths, hostile SNI values, protocol variety, record floods)."""

from __future__ import annotations

import struct
import time

import pytest

from tcpdiag.findings import tls_rules
from tcpdiag.result import CaptureResult, FlowResult
from tcpdiag.tls import TlsStream
from tcpdiag.tls.handshake import MAX_NAME_CHARS
from tests.hostile import packets as p
from tests.hostile.helpers import analyze_bytes

CH = p.record(p.client_hello(b"control.example", (b"h2", b"http/1.1")))
SH = p.record(p.server_hello(), 22, 0x0303)


def capture(*sessions: p.Session) -> CaptureResult:
    packets = sorted(pkt for s in sessions for pkt in s.packets)
    return analyze_bytes(p.pcap(packets))


def flow_of(client: bytes, server: bytes = SH, sport: int = 40000) -> FlowResult:
    result = capture(p.tls_session(client, server, sport=sport))
    (flow,) = result.flows
    return flow


def finding_names(flow: FlowResult) -> set[str]:
    return {f.name for f in flow.findings}


# -- 41: bad record headers stop TLS parsing for that flow only -------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        struct.pack("!BHH", 22, 0x0303, 0),
        struct.pack("!BHH", 23, 0x0303, (1 << 14) + 2049) + bytes(64),
        struct.pack("!BHH", 22, 0x0303, 65535) + bytes(64),
        struct.pack("!BHH", 99, 0x0303, 10) + bytes(10),
        struct.pack("!BHH", 22, 0x7A7A, 10) + bytes(10),
    ],
    ids=["len-0", "len-2^14+2049", "len-65535", "unknown-type", "version-garbage"],
)
def test_case41_bad_record_header_isolated(bad: bytes) -> None:
    broken = p.tls_session(CH + bad + CH, SH, sport=40001, t0_ns=1_700_000_000 * 10**9)
    good = p.tls_session(CH, SH, sport=40002, t0_ns=1_700_000_000 * 10**9 + 500_000)
    result = capture(broken, good)
    flows = {f.client.rsplit(":", 1)[1]: f for f in result.flows}
    bad_flow, good_flow = flows["40001"], flows["40002"]
    assert "tls-record-malformed" in finding_names(bad_flow), bad_flow.findings
    assert bad_flow.tls is not None and bad_flow.tls.sni == "control.example"
    assert bad_flow.tls.records_client == 1  # parsing stopped at the bad header
    assert "tls-record-malformed" not in finding_names(good_flow)
    assert good_flow.tls is not None and good_flow.tls.sni == "control.example"


# -- 42: split and coalesced handshakes --------------------------------------------------------


def _split_records(msg: bytes, parts: int) -> bytes:
    size = -(-len(msg) // parts)
    return b"".join(p.record(msg[i : i + size]) for i in range(0, len(msg), size))


def test_case42_split_client_hello_same_facts() -> None:
    control = flow_of(CH)
    assert control.tls is not None
    facts = (control.tls.sni, control.tls.alpn)
    assert facts == ("control.example", ["h2", "http/1.1"])
    msg = p.client_hello(b"control.example", (b"h2", b"http/1.1"))

    five = p.Session()  # the ClientHello in five TCP segments
    five.handshake()
    five.send("c", CH, mss=-(-len(CH) // 5))
    five.send("s", SH)
    five.close()

    three = p.tls_session(_split_records(msg, 3), SH)

    ooo = p.Session()
    ooo.handshake()
    base = ooo.next["c"]
    pieces = [(0, CH[:40]), (80, CH[80:]), (40, CH[40:80]), (80, CH[80:])]  # reordered + dup
    for off, piece in pieces:
        ooo.raw("c", p.ACK | p.PSH, piece, seq=base + off)
    ooo.next["c"] = base + len(CH)
    ooo.send("s", SH)
    ooo.close()

    coalesced = p.tls_session(
        p.record(msg + msg[:0]),
        p.record(p.server_hello() + p.handshake(11, b"\x00\x00\x00") + p.handshake(14, b"")),
    )
    for session in (five, three, ooo, coalesced):
        (flow,) = capture(session).flows
        assert flow.tls is not None
        assert (flow.tls.sni, flow.tls.alpn) == facts
        assert "tls-record-malformed" not in finding_names(flow)
    (flow,) = capture(coalesced).flows
    assert [m.type for m in flow.tls.messages if m.sender == "server"][:3] == [  # type: ignore[union-attr]
        "ServerHello",
        "Certificate",
        "ServerHelloDone",
    ]


# -- 43: inconsistent lengths ------------------------------------------------------------------


def _hello(*exts: bytes, ext_len: int | None = None, hs_len: int | None = None) -> bytes:
    body = p.client_hello_body(exts, ext_len=ext_len)
    return p.record(p.handshake(1, body, length=hs_len))


@pytest.mark.parametrize(
    ("client", "why"),
    [
        (_hello(p.sni_ext(b"a.example"), hs_len=500), "claims 500 bytes"),
        (_hello(p.sni_ext(b"a.example"), ext_len=900), "extensions: need 900 bytes"),
        (_hello(p.sni_ext(b"a.example", list_len=3)), "host_name: need 9 bytes"),
        (_hello(p.sni_ext(b"a.example", list_len=400)), "server_name_list: need 400"),
        (_hello(p.sni_ext(b"", name_len=0)), "empty host_name"),
        (_hello(p.sni_ext(b"a.example", name_len=300)), "host_name: need 300 bytes"),
    ],
    ids=[
        "hs-len-gt-record",
        "ext-len-overrun",
        "sni-list-short",
        "sni-list-long",
        "sni-len-0",
        "sni-len-gt-remaining",
    ],
)
def test_case43_inconsistent_lengths(client: bytes, why: str) -> None:
    flow = flow_of(client)
    assert flow.tls is not None and flow.tls.sni is None
    hits = [f for f in flow.findings if f.name == "tls-record-malformed"]
    assert len(hits) == 1, flow.findings
    assert "ClientHello (frame 4) does not parse" in hits[0].message
    assert why in hits[0].message, hits[0].message


def test_case43_overlong_sni_capped() -> None:
    flow = flow_of(_hello(p.sni_ext(b"a" * 300)))
    assert flow.tls is not None and flow.tls.sni == "a" * MAX_NAME_CHARS


# -- 44: hostile SNI values --------------------------------------------------------------------

HOSTILE_NAMES = [
    b"trailing.dot.example.",
    b"nul\x00byte.example",
    b"\x1b]0;pwn\x07[bold red]x[/]\xe2\x80\xae",
    b"[link=https://evil.example]y[/link]",
    b"\xff\xfe invalid utf-8",
    b"x" * 65000,
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n[:12]))
def test_case44_hostile_sni_recorded_capped(name: bytes) -> None:
    flow = flow_of(p.record(p.client_hello(name))) if len(name) < 16000 else None
    if flow is None:  # a 64 KiB name needs several records
        msg = p.client_hello(name)
        flow = flow_of(_split_records(msg, 5))
    assert flow.tls is not None and flow.tls.sni is not None
    assert len(flow.tls.sni) <= MAX_NAME_CHARS
    assert flow.tls.sni == name[:MAX_NAME_CHARS].decode("utf-8", "replace")[:MAX_NAME_CHARS]


def test_case44_two_sni_extensions_and_entries() -> None:
    two_ext = p.record(
        p.handshake(1, p.client_hello_body([p.sni_ext(b"one.example"), p.sni_ext(b"two.example")]))
    )
    two_names = p.record(
        p.handshake(1, p.client_hello_body([p.sni_ext(b"one.example", b"two.example")]))
    )
    for client in (two_ext, two_names):
        flow = flow_of(client)
        # the first name is recorded; the duplicate is flagged (tls-sni-suspicious, below)
        assert flow.tls is not None and flow.tls.sni == "one.example"
        assert "tls-record-malformed" not in finding_names(flow)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        (HOSTILE_NAMES[0], "a trailing dot"),
        (HOSTILE_NAMES[1], "not printable ASCII"),
        (HOSTILE_NAMES[2], "not printable ASCII"),
        (b"x" * 300, "300-byte name"),
        (b"192.0.2.1", "IP address literal"),
    ],
    ids=["dot", "nul", "escapes", "long", "ip"],
)
def test_case44_suspicious_sni_finding(name: bytes, words: str) -> None:
    flow = flow_of(p.record(p.client_hello(name)))
    (f,) = [f for f in flow.findings if f.name == "tls-sni-suspicious"]
    assert words in f.message and f.severity.label == "warning"


def test_case44_duplicate_names_are_suspicious_a_plain_name_is_not() -> None:
    two_ext = p.record(
        p.handshake(1, p.client_hello_body([p.sni_ext(b"one.example"), p.sni_ext(b"two.example")]))
    )
    two_names = p.record(
        p.handshake(1, p.client_hello_body([p.sni_ext(b"one.example", b"two.example")]))
    )
    assert "two server_name extensions" in _sni_finding(two_ext)
    assert "2 host names" in _sni_finding(two_names)
    plain = flow_of(p.record(p.client_hello(b"www.example.com")))
    assert "tls-sni-suspicious" not in finding_names(plain)


def _sni_finding(client: bytes) -> str:
    (f,) = [f for f in flow_of(client).findings if f.name == "tls-sni-suspicious"]
    return f.message


# -- 45: protocol variety ----------------------------------------------------------------------

SSLV2 = b"\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10" + b"\x00\x00\x35" * 7 + bytes(16)
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def _hrr() -> bytes:
    body = (
        b"\x03\x03"
        + HRR_RANDOM
        + b"\x00\x13\x01\x00"
        + struct.pack("!H", 12)
        + p.ext(43, b"\x03\x04")
        + p.ext(51, b"\x00\x17")
    )
    return p.record(p.handshake(2, body), 22, 0x0303)


@pytest.mark.parametrize(
    ("client", "server", "check"),
    [
        (SSLV2, SH, "sslv2"),
        (CH, _hrr() + p.record(b"\x01", 20, 0x0303), "hrr"),
        (
            p.record(
                p.handshake(
                    1, p.client_hello_body([p.sni_ext(b"public.example"), p.ext(0xFE0D, bytes(40))])
                )
            ),
            SH,
            "ech",
        ),
        (
            CH + p.record(b"\x01\x00\x10" + bytes(16), 24, 0x0303),
            SH + p.record(b"\x02\x00\x10" + bytes(32), 24, 0x0303),
            "heartbeat",
        ),
    ],
    ids=["sslv2", "hrr", "ech", "heartbeat"],
)
def test_case45_protocol_variety(client: bytes, server: bytes, check: str) -> None:
    flow = flow_of(client, server)
    assert flow.tls is not None, check
    if check == "ech":
        assert flow.tls.sni == "public.example"
    if check == "hrr":
        assert any(m.type.startswith("HelloRetryRequest") for m in flow.tls.messages), (
            flow.tls.messages
        )


def test_case45_starttls_and_dtls() -> None:
    s = p.Session(dport=25)
    s.handshake()
    s.send("s", b"220 mx ESMTP\r\n")
    s.send("c", b"EHLO x\r\n")
    s.send("s", b"250-mx\r\n250 STARTTLS\r\n")
    s.send("c", b"STARTTLS\r\n")
    s.send("s", b"220 go ahead\r\n")
    s.send("c", CH)
    s.send("s", SH)
    s.close()
    dtls = p.eth(
        p.ipv4(struct.pack("!HHHH", 4433, 4433, 8 + 30, 0) + b"\x16\xfe\xfd" + bytes(27), proto=17)
    )
    packets = sorted([*s.packets, (s.packets[0][0] - 1, dtls)])
    result = analyze_bytes(p.pcap(packets))
    (flow,) = result.flows
    assert (
        flow.tls is not None and flow.tls.starttls == "smtp" and flow.tls.sni == "control.example"
    )
    assert result.packets == len(packets)


# -- 46: non-TLS on 443 and record floods ------------------------------------------------------


def test_case46_detection_gives_up_on_non_tls() -> None:
    stream = TlsStream()
    stream.on_data(0, 0, b"GET / HTTP/1.1\r\n" + b"x" * 100_000, 4, 0.0)
    assert not stream.is_tls and not stream.wants_data


def _flood(records: int) -> float:
    data = p.record(b"\x00", 23, 0x0303) * records
    stream = TlsStream(assume_tls=True)
    start = time.process_time()
    for i in range(0, len(data), 60_000):  # one 60 KB segment holds 10,000 records
        stream.on_data(0, i, data[i : i + 60_000], 4 + i, 0.0)
    stream.finish()
    tls_rules.diagnose(stream, tls_rules.TcpContext(flow=1))
    return time.process_time() - start


def test_case46_record_flood_linear_and_bounded() -> None:
    _flood(1000)  # warm up
    small = min(_flood(10_000) for _ in range(3))
    large = min(_flood(40_000) for _ in range(3))
    assert small < 0.5, small
    assert large < 4.4 * small + 0.02, (small, large)  # 4x the input, at most ~4.4x the time
