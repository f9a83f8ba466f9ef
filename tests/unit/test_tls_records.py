"""Record layer: framing across segments, and one test per malformed or truncated case."""

from __future__ import annotations

import time
import tracemalloc

from tcpdiag.model import Direction
from tcpdiag.tls import TlsStream, detect, looks_like_tls
from tcpdiag.tls.records import MAX_RECORDS_PER_CHUNK, Record, RecordFramer
from tcpdiag.tls.stream import LABELS_HEAD, LABELS_TAIL, SideState

C, S = Direction.CLIENT, Direction.SERVER


def rec(ct: int, payload: bytes, version: int = 0x0303) -> bytes:
    return bytes([ct]) + version.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload


def framer() -> RecordFramer:
    return RecordFramer(keep=lambda ct: ct != 23)


def test_several_records_in_one_segment_and_one_split_over_three() -> None:
    f = framer()
    data = rec(22, b"\x0e\x00\x00\x00") + rec(20, b"\x01") + rec(23, b"x" * 40)
    out: list[Record] = []
    out += f.feed(data[:3], 10, 1.0)
    out += f.feed(data[3:12], 11, 2.0)
    out += f.feed(data[12:], 12, 3.0)
    assert [(r.content_type, r.size, r.frame, r.offset) for r in out] == [
        (22, 9, 10, 0),
        (20, 6, 11, 9),
        (23, 45, 12, 15),
    ]
    assert out[2].payload is None  # application data is counted, not kept
    assert out[0].payload == b"\x0e\x00\x00\x00"
    assert f.partial() is None


def test_unknown_content_type_is_malformed_with_offset_and_bytes() -> None:
    f = framer()
    f.feed(rec(22, b"\x0e\x00\x00\x00") + b"GET / HTTP/1.1\r\n", 5, 0.0)
    assert f.broken is not None
    assert f.broken.offset == 9
    assert f.broken.reason == "unknown content type 71"
    assert f.broken.data.startswith(b"GET / ")


def test_bad_record_version() -> None:
    f = framer()
    f.feed(b"\x16\x05\x01\x00\x10", 1, 0.0)
    assert f.broken is not None and "bad record version 0x0501" in f.broken.reason


def test_record_too_long() -> None:
    for length in ((1 << 14) + 2049, 65535):
        f = framer()
        f.feed(b"\x17\x03\x03" + length.to_bytes(2, "big"), 1, 0.0)
        assert f.broken is not None and "above the maximum" in f.broken.reason
    f = framer()
    f.feed(b"\x17\x03\x03" + ((1 << 14) + 2048).to_bytes(2, "big"), 1, 0.0)
    assert f.broken is None


def test_zero_length_handshake_record() -> None:
    f = framer()
    f.feed(b"\x16\x03\x03\x00\x00", 1, 0.0)
    assert f.broken is not None and f.broken.reason == "zero-length record"


def test_too_many_records_in_one_segment_is_capped_and_linear() -> None:
    f = framer()
    data = rec(23, b"x") * 10_000
    start = time.perf_counter()
    out = f.feed(data, 1, 0.0)
    assert time.perf_counter() - start < 1.0
    assert len(out) == MAX_RECORDS_PER_CHUNK + 1
    assert f.broken is not None and "records in one segment" in f.broken.reason


def test_partial_record_reports_how_much_arrived() -> None:
    f = framer()
    f.feed(rec(22, b"\x10" + b"\x00" * 69)[:40], 7, 0.5)
    p = f.partial()
    assert p is not None and (p.content_type, p.got, p.total, p.frame) == (22, 40, 75, 7)
    g = framer()
    g.feed(b"\x16\x03", 8, 0.5)
    q = g.partial()
    assert q is not None and q.content_type is None and q.got == 2


def test_sslv2_client_hello_record() -> None:
    body = (
        b"\x01\x03\x01"  # CLIENT-HELLO, version TLS1.0
        + (6).to_bytes(2, "big")  # cipher spec length: 2 specs
        + (0).to_bytes(2, "big")  # session id length
        + (16).to_bytes(2, "big")  # challenge length
        + b"\x00\x00\x2f" + b"\x01\x00\x80"  # TLS_RSA_WITH_AES_128_CBC_SHA, an SSLv2 spec
        + b"C" * 16
    )  # fmt: skip
    data = bytes([0x80 | (len(body) >> 8), len(body) & 0xFF]) + body
    assert looks_like_tls(data) is True
    stream = TlsStream()
    stream.on_data(C, 0, data, 4, 1.0)
    hello = stream.client_hello
    assert hello is not None and hello.sslv2
    assert hello.legacy_version == 0x0301 and hello.cipher_suites == [0x002F]
    assert stream.summary().versions_offered == ["TLS1.0"]
    assert stream.records_by_frame() == {4: [f"ClientHello(SSLv2) {len(data)}"]}


def test_detect_is_bounded_and_by_content() -> None:
    assert detect(b"") is None
    assert detect(b"\x16") is None
    assert detect(b"\x16\x03\x01\x02\x00") is True
    assert detect(b"\x16\x03\x01\x00\x00") is False
    assert detect(b"\x47\x45\x54 / HTTP/1.1") is False
    assert detect(b"220 mail.example.com ESMTP\r\n") is True  # SMTP/FTP: may upgrade
    assert detect(b"220 mail", starttls=False) is False
    assert detect(b"\x00" * 2000) is False


def test_non_tls_stream_is_given_up_quickly() -> None:
    stream = TlsStream()
    stream.on_data(C, 0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 4, 1.0)
    assert stream.wants_data is False
    assert not stream.is_tls


def test_malformed_record_in_stream_becomes_event_and_finding() -> None:
    from tcpdiag.findings import tls_rules

    stream = TlsStream()
    stream.on_data(C, 0, rec(22, b"\x0b\x00\x00\x00", 0x0301), 4, 1.0)
    stream.on_data(C, 9, b"\x99\x03\x03\x00\x05hello", 5, 1.1)
    assert len(stream.malformed) == 1
    event = stream.malformed[0]
    assert (event.offset, event.frame) == (9, 5)
    assert event.hex.startswith("99 03 03 00 05")
    findings = tls_rules.diagnose(stream, tls_rules.TcpContext(flow=1))
    bad = next(f for f in findings if f.name == "tls-record-malformed")
    assert "stream offset 9" in bad.message and "99 03 03 00 05" in bad.message


def test_gap_stops_the_direction_with_a_note() -> None:
    stream = TlsStream()
    stream.on_data(C, 0, rec(22, b"\x01\x00\x00\x00", 0x0301), 4, 1.0)
    stream.on_gap(C, 9, 100, 6)
    stream.on_data(C, 109, rec(23, b"x" * 10), 7, 1.2)
    assert stream.sides[0].stopped is not None and "never captured" in stream.sides[0].stopped
    assert stream.sides[0].records == 1
    assert stream.gaps[0].length == 100


def test_a_lossy_direction_keeps_only_its_first_gap() -> None:
    # The client's records go on being framed; the server's direction loses a segment now
    # and then for hours: its first hole is what the rules read, the rest are not kept.
    stream = TlsStream(assume_tls=True)
    for i in range(1000):
        stream.on_data(C, i * 15, rec(23, b"x" * 10), 10 + 2 * i, float(i))
        stream.on_gap(S, 100 * i, 50, 11 + 2 * i)
    assert stream.wants_data and stream.sides[0].records == 1000
    assert [(g.sender, g.offset, g.frame) for g in stream.gaps] == [(Direction.SERVER, 0, 11)]
    stream.on_gap(C, 15_000, 7, 3000)
    assert [g.sender for g in stream.gaps] == [Direction.SERVER, Direction.CLIENT]


def test_labels_kept_for_the_frames_a_timeline_shows() -> None:
    # 1,000 packets of one side, two records in each: the labels of its first 60 and last 40
    # frames are kept (a timeline of 60 + 40 packets never shows any other), no more.
    side = SideState(Direction.SERVER, (60, 40))
    for frame in range(1, 1001):
        side.label(frame, f"Application Data {frame}")
        side.label(frame, "Alert 31")
    frames = [frame for frame, _ in side.labels()]
    assert frames == [f for f in [*range(1, 61), *range(961, 1001)] for _ in range(2)]
    assert side.labels()[-2:] == [(1000, "Application Data 1000"), (1000, "Alert 31")]
    assert side.labels_dropped == 2 * 900


def test_labels_take_little_memory_per_record() -> None:
    # Kept for as long as the connection is open: a frame in an array and a text in a list,
    # ~16 bytes a record beside its text, where a (frame, text) tuple and the frame's int
    # object took ~57.
    side = SideState(Direction.SERVER, (600, 40))
    texts = [f"Application Data {n}" for n in range(500)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for frame, text in enumerate(texts, 1000):
            side.label(frame, text)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(side.labels()) == 500 and side.labels()[0] == (1000, "Application Data 0")
    assert grown < 500 * 40, grown


def test_labels_of_one_packet_stay_capped() -> None:
    side = SideState(Direction.CLIENT, (60, 40))
    for _ in range(LABELS_HEAD + LABELS_TAIL + 100):  # tiny records, all in one packet
        side.label(7, "Application Data 5")
    assert len(side.labels()) == LABELS_HEAD + LABELS_TAIL


def test_after_handshake_application_data_is_not_stored() -> None:
    stream = TlsStream(assume_tls=True)
    big = rec(23, b"z" * 16000)
    for i in range(50):
        stream.on_data(S, i * len(big), big, 10 + i, float(i))
    side = stream.sides[1]
    assert side.records == 50 and side.app_records == 50
    assert side.framer is not None and not side.framer.in_record
    assert stream.wants_data


def test_bytes_inside_a_record_not_kept_are_skipped_as_feed_counts_them() -> None:
    """`skip_body` takes exactly the chunks `feed` would only count (inside an application data
    body, short of its end) and leaves every other chunk to `feed`: fed either way, the
    framers give the same records at the same offsets."""
    data = rec(22, b"\x0e\0\0\0") + rec(23, b"x" * 3000) + rec(23, b"y" * 9) + rec(21, b"\1\0")
    for size in (1, 7, 100, 1460):
        plain, skipping = framer(), framer()
        by_feed: list[Record] = []
        by_skip: list[Record] = []
        skipped = 0
        for i, at in enumerate(range(0, len(data), size)):
            chunk = data[at : at + size]
            by_feed += plain.feed(chunk, i, float(i))
            if skipping.skip_body(len(chunk)):
                skipped += 1
            else:
                by_skip += skipping.feed(chunk, i, float(i))
            assert skipping.offset == plain.offset and skipping.partial() == plain.partial()
        key = [(r.content_type, r.size, r.frame, r.offset, r.payload) for r in by_feed]
        assert [(r.content_type, r.size, r.frame, r.offset, r.payload) for r in by_skip] == key
        assert len(key) == 4 and skipped >= 3000 // size - 2  # most of the 3,000-byte body
