"""Property tests for the TLS layer: any bytes give records or DecodeError (never another
exception), and chunking never changes what is found."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpdiag.errors import DecodeError
from tcpdiag.findings import tls_rules
from tcpdiag.model import Direction
from tcpdiag.tls import TlsStream, detect
from tcpdiag.tls.handshake import parse_certificate, parse_client_hello, parse_server_hello
from tcpdiag.tls.records import RecordFramer
from tcpdiag.tls.stream import labels_by_frame

C, S = Direction.CLIENT, Direction.SERVER
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.binary(max_size=4096))
def test_parsers_raise_only_decode_error(data: bytes) -> None:
    for parse in (
        parse_client_hello,
        parse_server_hello,
        lambda b: parse_certificate(b, True),
        lambda b: parse_certificate(b, False),
    ):
        with contextlib.suppress(DecodeError):
            parse(data)


@SETTINGS
@given(st.binary(max_size=4096), st.binary(max_size=4096), st.booleans())
def test_stream_never_raises_on_any_bytes(client: bytes, server: bytes, assume: bool) -> None:
    stream = TlsStream(assume_tls=assume)
    stream.on_data(C, 0, client, 4, 1.0)
    stream.on_data(S, 0, server, 5, 1.1)
    stream.on_end(C, "fin", 6, 1.2)
    stream.summary()
    stream.records_by_frame()
    tls_rules.diagnose(stream, tls_rules.TcpContext(flow=1))
    detect(client)


def _record(ct: int, payload: bytes) -> bytes:
    return bytes([ct, 3, 3]) + len(payload).to_bytes(2, "big") + payload


handshake_msgs = st.lists(
    st.tuples(st.sampled_from([1, 11, 14, 16, 20, 13, 12]), st.binary(max_size=300)),
    min_size=1,
    max_size=6,
).map(lambda ms: b"".join(bytes([t]) + len(b).to_bytes(3, "big") + b for t, b in ms))


@st.composite
def tls_stream_bytes(draw: st.DrawFn) -> bytes:
    """Valid record framing: handshake messages cut into records at random places, then
    CCS, alerts and application data."""
    hs = draw(handshake_msgs)
    out = b""
    pos = 0
    while pos < len(hs):
        n = draw(st.integers(1, 400))
        out += _record(22, hs[pos : pos + n])
        pos += n
    for _ in range(draw(st.integers(0, 6))):
        ct = draw(st.sampled_from([20, 21, 23]))
        size = {20: 1, 21: 2}.get(ct) or draw(st.integers(1, 600))
        out += _record(ct, draw(st.binary(min_size=size, max_size=size)))
    return out


def _fingerprint(stream: TlsStream) -> tuple[object, ...]:
    summary = stream.summary()
    labels = [x for v in stream.records_by_frame().values() for x in v]
    return (
        [(m.sender, m.type, m.length) for m in summary.messages],
        [(a.sender, a.level, a.description, a.encrypted) for a in summary.alerts],
        summary.records_client,
        summary.records_server,
        sorted(labels),
        [(e.what, e.offset) for e in stream.malformed],
        [(t.partial.got, t.partial.total) for t in stream.truncated],
    )


def _feed(data: bytes, cuts: list[int]) -> TlsStream:
    stream = TlsStream()
    prev = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if cut > prev:
            stream.on_data(C, prev, data[prev:cut], 7, 1.0)  # one frame: labels comparable
            prev = cut
    stream.on_end(C, "fin", 8, 2.0)
    return stream


@SETTINGS
@given(tls_stream_bytes(), st.data())
def test_whole_bytewise_and_random_chunks_agree(data: bytes, draw: st.DataObject) -> None:
    truncate = draw.draw(st.integers(0, 40))
    data = data[: max(1, len(data) - truncate)]
    whole = _fingerprint(_feed(data, []))
    bytewise = _fingerprint(_feed(data, list(range(1, len(data)))))
    cuts = draw.draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=30))
    chunked = _fingerprint(_feed(data, cuts))
    assert whole == bytewise == chunked


@SETTINGS
@given(st.binary(max_size=2048), st.lists(st.integers(1, 2047), max_size=20))
def test_framer_chunking_invariant_on_any_bytes(data: bytes, cuts: list[int]) -> None:
    def run(points: list[int]) -> tuple[object, ...]:
        f = RecordFramer(keep=lambda ct: True, allow_sslv2=True)
        out = []
        prev = 0
        for cut in [*sorted(set(p for p in points if p < len(data))), len(data)]:
            out += f.feed(data[prev:cut], 1, 0.0)
            prev = cut
        broken = (f.broken.offset, f.broken.reason) if f.broken else None
        return ([(r.content_type, r.offset, r.size, r.payload) for r in out], broken)

    assert run([]) == run(cuts)


OPENERS = [
    b"220 mx ESMTP\r\n",
    b"* OK ready\r\n",
    b"+OK\r\n",
    bytes.fromhex("0000000804d2162f"),
    b"0\x0c\x02\x01\x01",
    b":irc.example 001 x\r\n",
    (30).to_bytes(3, "little") + b"\x00\x0a",
]


@SETTINGS
@given(
    st.sampled_from(OPENERS),
    st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=12),
)
def test_starttls_watcher_never_raises(first: bytes, chunks: list[tuple[bool, bytes]]) -> None:
    stream = TlsStream()
    stream.on_data(S if first[:1] in (b"2", b"*", b"+", b":") else C, 0, first, 1, 0.0)
    offsets = [0, 0]
    for i, (client, data) in enumerate(chunks):
        d = C if client else S
        stream.on_data(d, offsets[d], data, i + 2, float(i))
        offsets[d] += len(data)
    stream.summary()
    tls_rules.diagnose(stream, tls_rules.TcpContext(flow=1))


def _labels_reference(
    client: list[tuple[int, str]], server: list[tuple[int, str]]
) -> dict[int, list[str]]:
    merged: dict[int, list[str]] = {}
    for labels in (client, server):
        for frame, text in labels:
            merged.setdefault(frame, []).append(text)
    return dict(sorted(merged.items()))


side_labels = st.lists(st.tuples(st.integers(0, 12), st.sampled_from("abcdef")), max_size=14)


@SETTINGS
@given(side_labels, side_labels, st.booleans(), st.booleans())
def test_labels_by_frame_is_the_sorted_grouping(
    client: list[tuple[int, str]], server: list[tuple[int, str]], sort_c: bool, sort_s: bool
) -> None:
    """The merge of two frame-ordered label lists (and the fallback for lists out of order)
    gives what grouping by frame and sorting gives, dict order and label order included."""
    if sort_c:
        client = sorted(client, key=lambda label: label[0])  # stable: label order kept
    if sort_s:
        server = sorted(server, key=lambda label: label[0])
    got = labels_by_frame(client, server)
    want = _labels_reference(client, server)
    assert got == want and list(got) == list(want)
