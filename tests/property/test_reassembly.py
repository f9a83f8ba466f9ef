"""Reassembly properties: any delivery order, duplicates and consistent overlaps give back the
original bytes, with any ISN (also right below 2**32); one dropped segment is exactly one gap."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag.flow import Flow
from tcpdiag.flow.reassembly import (
    COALESCE_MAX,
    RECENT_KEEP,
    SMALL_CHUNK,
    NativeConsumer,
    Reassembler,
)
from tcpdiag.model import Segment
from tests.craft import Conversation, segment

ISNS = st.one_of(
    st.integers(0, 2**32 - 1),
    st.integers(2**32 - 65536, 2**32 - 1),  # the stream wraps past 2**32
)


class Sink:
    def __init__(self) -> None:
        self.wants_data = True
        self.chunks: dict[int, list[tuple[int, bytes]]] = {0: [], 1: []}
        self.gaps: list[tuple[int, int, int]] = []
        self.ends: list[tuple[int, str]] = []

    def on_data(self, direction: int, offset: int, data: bytes, frame: int, time: float) -> None:
        self.chunks[direction].append((offset, data))

    def on_gap(self, direction: int, offset: int, length: int, frame: int) -> None:
        self.gaps.append((direction, offset, length))

    def on_end(self, direction: int, how: str, frame: int, time: float) -> None:
        self.ends.append((direction, how))

    def stream(self, direction: int) -> bytes:
        out = bytearray()
        for offset, data in self.chunks[direction]:
            assert offset == len(out) or self.gaps, "deliveries must be contiguous"
            out += data
        return bytes(out)


def cuts(draw: st.DrawFn, n: int) -> list[tuple[int, int]]:
    points = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=12))))
    bounds = [0, *[p for p in points if 0 < p < n], n]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[int, bytes, list[tuple[int, int]]]:
    isn = draw(ISNS)
    payload = draw(st.binary(min_size=1, max_size=3000))
    n = len(payload)
    pieces = cuts(draw, n)
    # extra copies: duplicates and consistent overlaps cut differently
    pieces += draw(st.lists(st.sampled_from(pieces), max_size=4))
    pieces += cuts(draw, n)[: draw(st.integers(0, 3))]
    pieces = draw(st.permutations(pieces))
    return isn, payload, pieces


def feed(isn: int, payload: bytes, pieces: list[tuple[int, int]], ack_all: bool) -> Sink:
    sink = Sink()
    c = Conversation(client_isn=isn)
    c.handshake()
    base = (isn + 1) & 0xFFFFFFFF
    for a, b in pieces:
        c.send("c", payload[a:b], seq=(base + a) & 0xFFFFFFFF, ack=c.next_seq("s"))
    if ack_all:
        c.ack("s", ack=(base + len(payload)) & 0xFFFFFFFF)

    def on_open(flow: Flow) -> None:
        flow.consumer = sink

    c.run(on_open=on_open)
    return sink


@settings(max_examples=300, deadline=None)
@given(deliveries())
def test_any_order_gives_back_the_bytes(case: tuple[int, bytes, list[tuple[int, int]]]) -> None:
    isn, payload, pieces = case
    sink = feed(isn, payload, pieces, ack_all=False)
    assert sink.gaps == []
    assert sink.stream(0) == payload
    assert sink.ends == [(0, "eof"), (1, "eof")]


@st.composite
def one_dropped(draw: st.DrawFn) -> tuple[int, bytes, list[tuple[int, int]], tuple[int, int]]:
    isn = draw(ISNS)
    payload = draw(st.binary(min_size=2, max_size=3000))
    pieces = cuts(draw, len(payload))
    if len(pieces) < 2:
        mid = len(payload) // 2
        pieces = [(0, mid), (mid, len(payload))]
    dropped = draw(st.sampled_from(pieces))
    kept = [p for p in pieces if p != dropped]
    kept += draw(st.lists(st.sampled_from(kept), max_size=3))
    return isn, payload, draw(st.permutations(kept)), dropped


@settings(max_examples=300, deadline=None)
@given(one_dropped())
def test_one_dropped_segment_is_exactly_one_gap(
    case: tuple[int, bytes, list[tuple[int, int]], tuple[int, int]],
) -> None:
    isn, payload, pieces, (a, b) = case
    sink = feed(isn, payload, pieces, ack_all=True)
    assert sink.gaps == [(0, a, b - a)]
    got = sink.stream(0)
    assert got == payload[:a] + payload[b:]


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=500), st.data())
def test_first_seen_bytes_win_on_conflicting_overlap(payload: bytes, data: st.DataObject) -> None:
    r = Reassembler(0, Sink(), 1 << 20)
    sink = r.consumer
    assert isinstance(sink, Sink)
    n = len(payload)
    a = data.draw(st.integers(0, n - 1))
    b = data.draw(st.integers(a + 1, n))
    other = bytes((x + 1) % 256 for x in payload[a:b])
    # out of order: the tail first, then a conflicting copy of part of it, then the head
    r.segment(a, payload[a:], n - a, 1, 0.0)
    r.segment(a, other, b - a, 2, 0.0)
    r.segment(0, payload[:a], a, 3, 0.0)
    r.end("fin", 4, 0.0)
    assert sink.stream(0) == payload
    assert r.overlaps == 1


def test_buffer_cap_declares_a_gap_and_stays_bounded() -> None:
    sink = Sink()
    r = Reassembler(0, sink, 1000)
    for i in range(1, 20):  # the first 100 bytes never arrive
        r.segment(i * 100, b"x" * 100, 100, i, 0.0)
    assert r.cap_hits >= 1
    assert r.buffered <= 1000
    assert sink.gaps and sink.gaps[0][1:] == (0, 100)


class NativeSink(Sink, NativeConsumer):
    """The same sink as a `NativeConsumer`: what the compiled reassembler calls directly (as it
    does the TLS stream), where it calls `Sink` the generic way."""


@pytest.mark.parametrize("make", [Sink, NativeSink])
def test_consumer_losing_interest_stops_buffering(make: type[Sink]) -> None:
    sink = make()
    r = Reassembler(0, sink, 1 << 20)
    r.segment(0, b"a" * 10, 10, 1, 0.0)
    sink.wants_data = False
    r.segment(20, b"b" * 10, 10, 2, 0.0)
    assert r.buffered == 0 and not r.storing
    assert sink.stream(0) == b"a" * 10


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=2000), st.data())
def test_a_native_consumer_gets_what_any_consumer_gets(payload: bytes, data: st.DataObject) -> None:
    pieces = cuts(data.draw, len(payload))
    pieces += data.draw(st.lists(st.sampled_from(pieces), max_size=4))  # duplicates
    order = data.draw(st.permutations(pieces))
    sinks = [Sink(), NativeSink()]
    for sink in sinks:
        r = Reassembler(0, sink, 1 << 20)
        for frame, (a, b) in enumerate(order, 1):
            r.segment(a, payload[a:b], b - a, frame, frame / 10)
        r.end("fin", len(order) + 1, 1.0)
        assert sink.stream(0) == payload
    assert sinks[0].chunks == sinks[1].chunks and sinks[0].ends == sinks[1].ends


@st.composite
def garbage(draw: st.DrawFn) -> list[Segment]:
    """Arbitrary segments on two 4-tuples: any flags, sequence numbers, lengths, times."""
    ends = [("10.0.0.1:1000", "10.0.0.2:80"), ("10.0.0.2:80", "10.0.0.1:1000")]
    out: list[Segment] = []
    t = 0.0
    for frame in range(1, draw(st.integers(1, 40)) + 1):
        src, dst = draw(st.sampled_from(ends))
        payload = draw(st.binary(max_size=40))
        t += draw(st.floats(-1.0, 400.0, allow_nan=False))
        out.append(
            segment(
                src=src,
                dst=dst,
                seq=draw(st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 300))),
                ack=draw(st.one_of(st.none(), st.integers(0, 2**32 - 1), st.integers(0, 300))),
                flags=draw(st.integers(0, 0xFF)),
                payload=payload,
                length=len(payload) + draw(st.integers(0, 3)),
                window=draw(st.integers(0, 65535)),
                frame=frame,
                time=t,
            )
        )
    return out


@settings(max_examples=300, deadline=None)
@given(garbage())
def test_any_segments_never_raise(segments: list[Segment]) -> None:
    sink = Sink()

    def on_open(flow: Flow) -> None:
        flow.consumer = sink

    flows = Conversation().run(on_open=on_open, segments=segments)
    assert sum(f.packets for f in flows) == len(segments)
    for f in flows:
        r = f.to_result()
        assert r.state in {
            "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH",
            "SHR", "OTH",
        }  # fmt: skip
        assert r.timeline is not None


def test_ranges_without_bytes_coalesce() -> None:
    r = Reassembler(0, None, 1 << 20)  # nobody wants the bytes: only ranges are tracked
    for i in range(1, 10_000):  # a hole at the start, then a long in-order stream
        r.segment(i * 10, b"x" * 10, 10, i, 0.0)
    assert len(r.pending) == 1
    assert (r.pending[0].start, r.pending[0].end) == (10, 100_000)
    r.ack(100_000, 10_000)
    assert (r.gaps, r.gap_bytes, r.next) == (1, 10, 100_000)


def test_many_tiny_out_of_order_pieces_stay_bounded() -> None:
    sink = Sink()
    r = Reassembler(0, sink, 1 << 20)
    for i in range(1, 20_000):  # every other byte: nothing coalesces
        r.segment(2 * i, b"y", 1, i, 0.0)
    assert len(r.pending) <= 4096
    assert r.cap_hits >= 1


class _CopyingRecent:
    """The former `recent` (one bytearray per contiguous run, trimmed in place): the model the
    reference-keeping runs must match, event for event."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, bytearray]] = []
        self.size = 0

    def deliver(self, start: int, data: bytes) -> None:
        runs = self.runs
        if runs and runs[-1][0] + len(runs[-1][1]) == start:
            runs[-1][1].extend(data)
        else:
            runs.append((start, bytearray(data)))
        self.size += len(data)
        while self.size > 2 * RECENT_KEEP:
            r0, chunk = runs[0]
            drop = min(len(chunk), self.size - RECENT_KEEP)
            if drop == len(chunk):
                runs.pop(0)
            else:
                del chunk[:drop]
                runs[0] = (r0 + drop, chunk)
            self.size -= drop

    def mismatch(self, start: int, end: int, data: bytes, nxt: int) -> tuple[int, int] | None:
        for r0, chunk in self.runs:
            lo, hi = max(start, r0), min(end, r0 + len(chunk), nxt)
            if lo < hi and chunk[lo - r0 : hi - r0] != data[lo - start : hi - start]:
                return lo, hi - lo
        return None


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_recent_bytes_match_the_copying_model(data: st.DataObject) -> None:
    """Segments of every size (tiny ones are coalesced, large ones kept as objects), gaps,
    and retransmissions reaching back past the kept window: the overlap-mismatch events and
    the kept bytes are those of the simple copying model."""
    events: list[tuple[str, dict[str, object]]] = []
    sink = Sink()
    reasm = Reassembler(
        0, sink, limit=1 << 20, on_event=lambda _, k, f, t, d: events.append((k, d))
    )
    model = _CopyingRecent()
    rng_sizes = st.one_of(st.integers(1, 40), st.integers(200, 300), st.integers(1000, 9000))
    offset = 0
    for frame in range(data.draw(st.integers(1, 60))):
        if offset and data.draw(st.integers(0, 5)) == 0:
            # a retransmission of earlier bytes, some changed
            lo = data.draw(st.integers(max(0, offset - 3 * RECENT_KEEP), offset - 1))
            hi = data.draw(st.integers(lo + 1, min(offset + 50, lo + 9000)))
            flip = data.draw(st.booleans())
            piece = bytes((b ^ 1) if flip else b for b in _byte_run(lo, hi))
            expected = model.mismatch(lo, hi, piece, reasm.next)
            before = len(events)
            reasm.segment(lo, piece, hi - lo, frame, 0.0)
            found = [d for k, d in events[before:] if k == "overlap-mismatch"]
            if expected is None:
                assert not found
            else:
                assert found[0] == {"offset": expected[0], "length": expected[1]}
            if hi > offset:
                model.deliver(max(offset, lo), piece[max(offset, lo) - lo :])
                offset = hi
            continue
        if data.draw(st.integers(0, 9)) == 0:
            offset += data.draw(st.integers(1, 5000))  # a hole, then the peer ACKs past it
            reasm.ack(offset, frame)
        size = data.draw(rng_sizes)
        reasm.segment(offset, _byte_run(offset, offset + size), size, frame, 0.0)
        model.deliver(offset, _byte_run(offset, offset + size))
        offset += size
    assert reasm.recent_size == model.size
    kept = [(run.start, run.between(0, run.length)) for run in reasm.recent]
    assert kept == [(r0, bytes(chunk)) for r0, chunk in model.runs]


def _byte_run(lo: int, hi: int) -> bytes:
    """The stream's bytes at offsets [lo, hi): a function of the offset."""
    return bytes((i * 7 + (i >> 8)) & 0xFF for i in range(lo, hi))


def test_recent_bytes_stay_few_objects_whatever_the_segment_sizes() -> None:
    """Payloads of SMALL_CHUNK bytes and more are kept as they are, smaller ones coalesced: a
    long stream alternating the two keeps a bounded number of pieces (not one per segment)."""
    reasm = Reassembler(0, Sink(), limit=1 << 20)
    offset = 0
    for i in range(40_000):
        size = SMALL_CHUNK if i % 2 else 1
        reasm.segment(offset, _byte_run(offset, offset + size), size, i, 0.0)
        offset += size
    pieces = sum(len(run.pieces) for run in reasm.recent)
    assert reasm.recent_size <= 2 * RECENT_KEEP
    assert pieces <= 2 * (2 * RECENT_KEEP // SMALL_CHUNK) + 2


def test_recent_bytes_of_tiny_segments_only_stay_bounded() -> None:
    """A connection of tiny segments only (an interactive shell): 1 MB delivered 10 bytes at a
    time keeps about 2 * RECENT_KEEP bytes, not every byte in one ever-growing buffer."""
    reasm = Reassembler(0, Sink(), limit=1 << 20)
    offset = 0
    for i in range(100_000):
        reasm.segment(offset, _byte_run(offset, offset + 10), 10, i, 0.0)
        offset += 10
    held = sum(len(piece) for run in reasm.recent for piece in run.pieces)
    assert reasm.recent_size <= 2 * RECENT_KEEP
    assert held <= 2 * RECENT_KEEP + COALESCE_MAX
    (run,) = reasm.recent
    assert run.between(run.length - 10, run.length) == _byte_run(offset - 10, offset)
