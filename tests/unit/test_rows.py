"""The C module of packed timeline rows (`flow/_rows.c`) against its Python twin
(`flow/rows.py`): the row writers and the capture-duplicate check.

Built here from the source (an editable install has no extensions, see `tests/cbuild.py`).
Both must write the same 40 bytes for every row (and the same 8 for an RTT sample or a TLS
label frame), raise `struct.error` on the same values, find the same duplicate frames and replay
delay, and give the same reports when the flow engine uses one or the other.
"""

from __future__ import annotations

import contextlib
import random
import struct
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tcpdiag.flow.flow as flow_module
import tcpdiag.tls.stream as stream_module
from tcpdiag.config import AnalysisOptions, Limits
from tcpdiag.engine import analyze_capture
from tcpdiag.errors import TcpdiagError
from tcpdiag.flow import rows
from tcpdiag.flow.rows import RowWriter
from tcpdiag.model import NO_OPTIONS, Segment
from tcpdiag.report.json import capture_json, dumps
from tests.capture_files import PUBLIC
from tests.cbuild import REPO, build_extension, load_extension
from tests.flows import flows_of

SOURCE = REPO / "tcpdiag" / "flow" / "_rows.c"

ROW_VALUES = st.tuples(
    st.integers(-(2**63), 2**63 - 1),  # frame (q: any 64-bit value)
    st.floats(allow_nan=False),  # time (any double round-trips)
    st.integers(0, 1),  # direction
    st.integers(0, 0xFFFF),  # flags
    st.integers(0, 2**32 - 1),  # seq
    st.integers(0, 2**32 - 1),  # ack
    st.integers(0, 2**32 - 1),  # length
    st.integers(0, 2**32 - 1),  # window
    st.integers(0, 0xFFFF),  # IP ID
    st.integers(0, 2**32 - 1),  # right edge of the first SACK block, when there is one
    st.integers(0, 4),  # SACK blocks
    st.integers(0, 255),  # TTL
)


def _segment(values: tuple[object, ...]) -> tuple[Segment, object]:
    """The Segment whose row, sent in the direction returned with it, is `values` (frame,
    time, direction, flags, seq, ack, length, window, IP ID, the right edge of the first SACK
    block, the number of blocks and the TTL)."""
    frame, time, direction, flags, seq, ack, length, window, ip_id, edge, blocks, ttl = values
    sack = tuple((i, edge if i == 0 else i) for i in range(blocks))  # type: ignore[call-overload]
    segment = Segment(
        frame, time, 4, b"\x0a\0\0\x01", b"\x0a\0\0\x02", 40000, 443, seq, ack, flags,
        window, length, b"", NO_OPTIONS._replace(sack=sack), ttl, b"", ip_id,
    )  # fmt: skip
    return segment, direction


def _packed(values: tuple[object, ...]) -> bytes:
    """The row `_segment(values)` must give: the SACK edge is the low 16 bits of the first
    block's right edge, 0 without a block."""
    *fields, ip_id, edge, blocks, ttl = values
    return struct.pack("<qdBHIIIIHHB", *fields, ip_id, edge & 0xFFFF if blocks else 0, ttl)  # type: ignore[operator]


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    path = build_extension(SOURCE, "tcpdiag.flow._rows", tmp_path_factory.mktemp("rows"))
    module = load_extension(path, "tcpdiag.flow._rows")
    assert module.ROW_SIZE == rows.ROW_SIZE == 40
    return module


@settings(max_examples=400, deadline=None)
@given(values=ROW_VALUES, prefix=st.binary(max_size=80))
def test_appended_rows_are_the_struct_bytes(
    native: ModuleType, values: tuple[object, ...], prefix: bytes
) -> None:
    in_c = bytearray(prefix)
    native.append_row(in_c, *_segment(values))
    by_struct = bytearray(prefix)
    rows.append_row_struct(by_struct, *_segment(values))
    assert in_c == by_struct == prefix + _packed(values)


@settings(max_examples=200, deadline=None)
@given(values=ROW_VALUES, slots=st.integers(1, 5), data=st.data())
def test_rows_put_in_a_ring_are_the_struct_bytes(
    native: ModuleType, values: tuple[object, ...], slots: int, data: st.DataObject
) -> None:
    slot = data.draw(st.integers(0, slots - 1))
    in_c = bytearray(b"\xaa" * (slots * rows.ROW_SIZE))
    by_struct = bytearray(in_c)
    native.put_slot(in_c, slot, *_segment(values))
    rows.put_slot_struct(by_struct, slot, *_segment(values))
    assert in_c == by_struct
    at = slot * rows.ROW_SIZE
    assert in_c[at : at + rows.ROW_SIZE] == _packed(values)


GOOD = (7, 1.5, 1, 0x18, 1000, 2000, 100, 65535, 0x1234, 70000, 2, 64)


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        (0, 2**63),  # frame beyond q
        (0, -(2**63) - 1),
        (1, "soon"),  # time not a number
        (2, 256),  # direction beyond B
        (3, 0x10000),  # flags beyond H
        (4, 2**32),  # seq beyond I
        (5, -1),  # ack negative
        (6, 2**40),
        (7, 1.0),  # window not an integer
        (8, 0x10000),  # IP ID beyond H
        (8, -1),
        (11, 256),  # TTL beyond B
    ],
)
def test_out_of_range_values_raise_struct_error_both_ways(
    native: ModuleType, field: int, bad: object
) -> None:
    values = list(GOOD)
    values[field] = bad
    for writer in (native.append_row, rows.append_row_struct):
        buf = bytearray(b"x")
        with pytest.raises(struct.error):
            writer(buf, *_segment(tuple(values)))
        assert buf == b"x"  # nothing written
    ring = bytearray(rows.ROW_SIZE)
    for put in (native.put_slot, rows.put_slot_struct):
        with pytest.raises(struct.error):
            put(ring, 0, *_segment(tuple(values)))


@pytest.mark.parametrize(
    ("sack", "error"),
    [
        ((("x", "y"),), TypeError),  # a SACK edge that is not a number
        ((1,), TypeError),  # a block that is not a pair
        (((1,),), IndexError),
        (((1, 2.5),), TypeError),
    ],
)
def test_odd_sack_blocks_raise_the_same_error_both_ways(
    native: ModuleType, sack: object, error: type[Exception]
) -> None:
    """Options made by hand take the generic path in C: Python's own errors."""
    segment, direction = _segment(GOOD)
    odd = segment._replace(options=NO_OPTIONS._replace(sack=sack))  # type: ignore[arg-type]
    for writer in (native.append_row, rows.append_row_struct):
        buf = bytearray(b"x")
        with pytest.raises(error):
            writer(buf, odd, direction)
        assert buf == b"x"


def test_sack_edges_of_any_int_are_the_low_bits_both_ways(native: ModuleType) -> None:
    """Negative, huge and bool edges: `& 0xFFFF` in Python, the same bits from C."""
    for edge in (-1, -65536, 2**70 + 5, True, 0xFFFF, 0x10000):
        segment, direction = _segment(GOOD)
        odd = segment._replace(options=NO_OPTIONS._replace(sack=((0, edge),)))
        in_c, by_struct = bytearray(), bytearray()
        native.append_row(in_c, odd, direction)
        rows.append_row_struct(by_struct, odd, direction)
        assert in_c == by_struct
        assert struct.unpack_from("<H", in_c, 37)[0] == edge & 0xFFFF


def test_a_row_beyond_the_ring_raises_both_ways(native: ModuleType) -> None:
    for put in (native.put_slot, rows.put_slot_struct):
        for slot in (-1, -2, 2, 3):
            ring = bytearray(2 * rows.ROW_SIZE)
            with pytest.raises(struct.error):
                put(ring, slot, *_segment(GOOD))
            assert ring == bytes(2 * rows.ROW_SIZE)  # nothing written


@pytest.mark.parametrize("not_a_segment", [GOOD, list(_segment(GOOD)[0]), None, "segment"])
def test_the_c_writers_want_a_segment(native: ModuleType, not_a_segment: object) -> None:
    """Anything but a tuple of a Segment's length is refused before a byte is written (the C
    reads the fields by position, without bounds)."""
    buf = bytearray(b"x")
    with pytest.raises(TypeError):
        native.append_row(buf, not_a_segment, 0)
    assert buf == b"x"
    ring = bytearray(rows.ROW_SIZE)
    with pytest.raises(TypeError):
        native.put_slot(ring, 0, not_a_segment, 0)
    assert ring == bytes(rows.ROW_SIZE)


# (name, packing, values): a flow's RTT samples (NaN and infinities included; ints as their
# float) and a TLS stream's label frames
PACKED_VALUES = [
    ("double", rows.DOUBLE, st.floats() | st.integers(-(2**53), 2**53)),
    ("int64", rows.INT64, st.integers(-(2**63), 2**63 - 1)),
]


@pytest.mark.parametrize(("name", "packing", "values"), PACKED_VALUES, ids=["double", "int64"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_appended_values_are_the_struct_bytes(
    native: ModuleType,
    name: str,
    packing: struct.Struct,
    values: st.SearchStrategy[float],
    data: st.DataObject,
) -> None:
    """The same bytes both ways, read back as the same values."""
    drawn = data.draw(st.lists(values, max_size=40))
    in_c = bytearray()
    by_struct = bytearray()
    for value in drawn:
        getattr(native, f"append_{name}")(in_c, value)
        getattr(rows, f"append_{name}_struct")(by_struct, value)
    assert in_c == by_struct
    assert len(in_c) == packing.size * len(drawn)
    back = [v for (v,) in packing.iter_unpack(in_c)]
    assert [repr(type(v)(x)) for x, v in zip(drawn, back, strict=True)] == [repr(v) for v in back]


def test_append_int64_refuses_what_does_not_fit(native: ModuleType) -> None:
    with pytest.raises(TypeError):
        native.append_int64(bytearray(), 1.0)
    with pytest.raises(TypeError):
        native.append_int64(b"", 1)
    with pytest.raises(OverflowError):
        native.append_int64(bytearray(), 2**63)
    with pytest.raises(struct.error):
        rows.append_int64_struct(bytearray(), 2**63)


def test_append_double_refuses_what_is_not_a_bytearray_and_a_number(native: ModuleType) -> None:
    with pytest.raises(TypeError):
        native.append_double(b"", 1.0)
    with pytest.raises(TypeError):
        native.append_double(bytearray(), "1.0")
    with pytest.raises(TypeError):
        native.append_double(bytearray())


def _packed_doubles(values: list[float]) -> bytearray:
    buf = bytearray()
    for value in values:
        rows.append_double_struct(buf, value)
    return buf


@settings(max_examples=400, deadline=None)
@given(
    values=st.lists(
        st.floats(allow_nan=False) | st.sampled_from([0.0, -0.0, 1e-6, 1e-6]), min_size=1
    )
)
def test_median_in_c_is_pythons(native: ModuleType, values: list[float]) -> None:
    """The same float, sign of zero included (repr), for any samples but NaN: ties, -0.0 beside
    0.0, infinities, odd and even counts."""
    buf = _packed_doubles(values)
    assert repr(native.median_double(buf)) == repr(rows.median_double_py(buf))
    assert buf == _packed_doubles(values)  # read, not sorted in place


def test_median_keeps_equal_samples_in_their_order(native: ModuleType) -> None:
    """-0.0 and 0.0 are equal: the middle one is the one a stable sort leaves there."""
    for values, middle in (
        ([0.0, -0.0, 1.0], "-0.0"),
        ([-0.0, 0.0, 1.0], "0.0"),
        ([1.0, -0.0, 0.0, -1.0], "0.0"),  # (-0.0 + 0.0) / 2
        ([1.0, -0.0, -0.0, -1.0], "-0.0"),
        ([3.0, 1.0, 2.0], "2.0"),
        ([4.0, 1.0, 3.0, 2.0], "2.5"),
    ):
        buf = _packed_doubles(values)
        assert repr(native.median_double(buf)) == middle == repr(rows.median_double_py(buf))


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 63, 64, 65, 66, 127, 500, 4096])
def test_median_by_selection_is_pythons(native: ModuleType, count: int) -> None:
    """The C selects the middle samples (quickselect; on the stack up to 64 of them) where
    Python sorts them all: the same float, ties and zeros of either sign included, for random
    samples and for the orders that make a naive quickselect slow (sorted, reversed, all
    equal)."""
    rng = random.Random(count)
    pool = [0.0, -0.0, 1e-6, 0.25, 0.25, 3.0, float("inf"), -1.5]
    cases = [
        [rng.choice(pool) if rng.random() < 0.5 else rng.random() for _ in range(count)]
        for _ in range(20)
    ]
    ordered = sorted(rng.random() for _ in range(count))
    cases += [ordered, ordered[::-1], [0.5] * count, [(-0.0, 0.0)[i % 2] for i in range(count)]]
    for values in cases:
        buf = _packed_doubles(values)
        assert repr(native.median_double(buf)) == repr(rows.median_double_py(buf))


def test_median_leaves_nan_to_python(native: ModuleType) -> None:
    buf = _packed_doubles([1.0, float("nan"), 2.0])
    assert native.median_double(buf) is None
    assert isinstance(rows.median_double_py(buf), float)


def test_median_refuses_what_is_not_whole_doubles(native: ModuleType) -> None:
    with pytest.raises(TypeError):
        native.median_double(bytes(8))
    with pytest.raises(ValueError):
        native.median_double(bytearray())
    with pytest.raises(ValueError):
        native.median_double(bytearray(12))


def test_flow_rtt_median_falls_back_to_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the C median answers None (a NaN sample), the flow sorts its samples in Python."""
    flows: list[flow_module.Flow] = []
    for path in _corpus():
        with contextlib.suppress(TcpdiagError):  # (the damaged captures of the corpus)
            flows += [f for f in flows_of(path) if len(f.rtt_values()) >= 4]
    assert len(flows) >= 5
    expected = [rows.median(f.rtt_values()) for f in flows]
    monkeypatch.setattr(flow_module, "_MEDIAN_DOUBLE", lambda buf: None)
    assert [rtt.median for rtt in (f.rtt for f in flows) if rtt is not None] == expected


def test_pure_python_runs_the_struct_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TCPDIAG_PURE", "1")
    assert rows._native() is None


# -- the capture-duplicate check


def _row(
    frame: int,
    time: float,
    d: int,
    flags: int,
    seq: int,
    ack: int,
    n: int,
    w: int,
    ip_id: int = 0,
    edge: int = 0,
    ttl: int = 64,
) -> bytes:
    return struct.pack("<qdBHIIIIHHB", frame, time, d, flags, seq, ack, n, w, ip_id, edge, ttl)


@st.composite
def conversations(draw: st.DrawFn) -> bytes:
    """Rows that repeat one another the ways the check looks for: the same packet again within
    or beyond the duplicate window, a stretch of both sides replayed at one offset (with
    jitter around the bucket edges), and unrelated packets; ACK flags on and off."""
    pool = draw(
        st.lists(
            st.tuples(
                st.integers(0, 1),
                st.sampled_from([0x02, 0x10, 0x12, 0x18, 0x11, 0x04]),
                st.integers(0, 5),
                st.integers(0, 3),
                st.sampled_from([0, 1, 100]),
                st.sampled_from([0, 65535]),
                st.sampled_from([0, 7]),  # IP ID
                st.sampled_from([0, 3]),  # SACK edge
            ),
            min_size=1,
            max_size=8,
        )
    )
    out = []
    time = draw(st.floats(0, 1e9))
    frame = 1
    for _ in range(draw(st.integers(0, 40))):
        d, flags, seq, ack, n, w, ip_id, edge = draw(st.sampled_from(pool))
        time += draw(st.sampled_from([0.0, 0.0005, 0.001, 0.00015, 0.00005, 0.3, 1.0]))
        out.append((frame, time, d, flags, seq, ack, n, w, ip_id, edge))
        frame += 1
    if out and draw(st.booleans()):  # replay a stretch at a fixed delay
        delay = draw(st.sampled_from([0.5, 0.00025, 0.00035, 2.0]))
        jitter = draw(st.sampled_from([0.0, 0.00004, -0.00004, 0.00006]))
        start = draw(st.integers(0, len(out) - 1))
        for _, t, d, flags, seq, ack, n, w, ip_id, edge in out[start:]:
            out.append((frame, t + delay + jitter, d, flags, seq, ack, n, w, ip_id, edge))
            frame += 1
    return b"".join(_row(*r) for r in out)


@settings(max_examples=600, deadline=None)
@given(packed=conversations(), client=st.booleans(), server=st.booleans())
def test_capture_duplicates_agree(
    native: ModuleType, packed: bytes, client: bool, server: bool
) -> None:
    args = (packed, client, server, 0.001, 0.0001, 3)
    frames, delay = native.capture_duplicates(*args)
    assert (set(frames), delay) == rows.capture_duplicates(*args, native=False)


def test_capture_duplicates_find_a_replayed_conversation(native: ModuleType) -> None:
    """Not vacuous: a replay a fixed 20 ms later, and a mirror-port copy, are found."""
    first = [(1, 10.0, 0, 0x02, 1, 0, 0, 65535), (2, 10.01, 1, 0x12, 9, 2, 0, 65535)]
    first += [(3, 10.02, 0, 0x10, 2, 10, 0, 65535), (4, 10.03, 0, 0x18, 2, 10, 100, 65535)]
    replay = [(f + 4, t + 0.02, d, fl, s, a, n, w) for f, t, d, fl, s, a, n, w in first]
    packed = b"".join(_row(*r) for r in first + replay)
    for result in (
        native.capture_duplicates(packed, True, True, 0.001, 0.0001, 3),
        rows.capture_duplicates(packed, True, True, 0.001, 0.0001, 3, native=False),
    ):
        frames, delay = result
        assert set(frames) == {5, 6, 7, 8} and delay == pytest.approx(0.02)
    mirror = b"".join(
        _row(*r) for r in [(1, 5.0, 0, 0x18, 1, 1, 10, 9), (2, 5.0002, 0, 0x18, 1, 1, 10, 9)]
    )
    frames, delay = native.capture_duplicates(mirror, True, True, 0.001, 0.0001, 3)
    assert set(frames) == {2} and delay is None


@pytest.mark.parametrize(
    ("second", "copy"),
    [
        ((2, 5.0002, 0, 0x10, 1, 1, 0, 9, 0x0101, 0x0500), True),  # every byte again
        ((2, 5.0002, 0, 0x10, 1, 1, 0, 9, 0x0102, 0x0500), False),  # the sender's next IP ID
        ((2, 5.0002, 0, 0x10, 1, 1, 0, 9, 0x0101, 0x05B0), False),  # a SACK edge that moved
        ((2, 5.0002, 0, 0x10, 1, 1, 0, 9, 0x0101, 0x0500, 63), True),  # one router further on
    ],
)
def test_a_resend_is_not_a_copy(
    native: ModuleType,
    second: tuple[int, ...],
    copy: bool,
) -> None:
    """Two duplicate ACKs back to back, 0.2 ms apart, equal in every TCP field the timeline
    shows: a copy only when the IP ID and the SACK edge repeat too (not the TTL: the same
    packet captured on both sides of a router is a copy)."""
    packed = _row(1, 5.0, 0, 0x10, 1, 1, 0, 9, 0x0101, 0x0500) + _row(*second)  # type: ignore[arg-type]
    for frames, _ in (
        native.capture_duplicates(packed, True, True, 0.001, 0.0001, 3),
        rows.capture_duplicates(packed, True, True, 0.001, 0.0001, 3, native=False),
    ):
        assert set(frames) == ({2} if copy else set())


def test_capture_duplicates_agree_on_real_flows(native: ModuleType) -> None:
    compared = found = 0
    for path in _corpus():
        try:
            flows = flows_of(path)
        except Exception:  # unreadable test captures are read elsewhere
            continue
        for flow in flows:
            state = flow.timeline_state()
            args = (state[0], state[1] is not None, state[2] is not None, 0.001, 0.0001, 3)
            frames, delay = native.capture_duplicates(*args)
            assert (set(frames), delay) == rows.capture_duplicates(*args, native=False), flow.key
            compared += 1
            found += len(frames)
    assert compared > 100 and found > 0


def _corpus() -> list[Path]:
    found: list[Path] = []
    for folder in (REPO / "captures", PUBLIC):
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if p.suffix in (".pcap", ".pcapng"))
    return found


def test_engine_reports_are_identical_with_either_writer(
    native: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short head and ring make most flows wrap their tail ring (`put_slot`)."""
    captures = _corpus()
    assert len(captures) >= 10
    ring = AnalysisOptions(limits=Limits(timeline_head=5, timeline_tail=3), keep_all_timelines=True)
    written = {"append": 0, "put": 0}

    def counted(kind: str, writer: RowWriter) -> RowWriter:
        def write(*args: object) -> None:
            written[kind] += 1
            writer(*args)

        return write

    for path in captures:
        for options in (AnalysisOptions(keep_all_timelines=True), ring):
            reports = []
            for append, put, sample, middle, module in (
                (native.append_row, native.put_slot, native.append_double, native.median_double,
                 native),
                (rows.append_row_struct, rows.put_slot_struct, rows.append_double_struct,
                 rows.median_double_py, None),
            ):  # fmt: skip
                monkeypatch.setattr(flow_module, "_APPEND_ROW", counted("append", append))
                monkeypatch.setattr(flow_module, "_PUT_SLOT", counted("put", put))
                monkeypatch.setattr(flow_module, "_APPEND_DOUBLE", sample)  # RTT samples
                monkeypatch.setattr(flow_module, "_MEDIAN_DOUBLE", middle)  # ... their median
                frames = native.append_int64 if module else rows.append_int64_struct
                monkeypatch.setattr(stream_module, "_APPEND_INT64", frames)  # TLS label frames
                monkeypatch.setattr(rows, "_NATIVE", module)  # the duplicate check
                try:
                    reports.append(dumps(capture_json(analyze_capture(str(path), options))))
                except Exception as exc:  # a capture that cannot be read fails the same way
                    reports.append(f"error: {type(exc).__name__}: {exc}")
            assert reports[0] == reports[1], path.name
    # rows really went through both writers, the ring's included
    assert written["append"] > 2_000 and written["put"] > 1_000
