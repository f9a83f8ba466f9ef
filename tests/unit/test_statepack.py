"""Packing a quiet connection's TLS stream (`statepack.py`, `TlsStream.freeze`, `Flow.doze`).

The packer must give back an equal graph (same values, same sharing), refuse what it cannot
pack exactly, and the analysis must not change however often a stream is frozen and thawed:
every capture of the corpus is analysed once as is and once with every stream frozen after
every packet, and the reports must be equal byte for byte.
"""

from __future__ import annotations

import enum
import pickle
import sys
import tracemalloc
from array import array
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag.config import AnalysisOptions
from tcpdiag.engine import analyze_capture
from tcpdiag.errors import TcpdiagError
from tcpdiag.findings import tls_rules
from tcpdiag.findings.tls_rules import TcpContext
from tcpdiag.flow.flow import Flow
from tcpdiag.flow.table import IDLE_COMPACT, FlowTable
from tcpdiag.report.json import capture_json, dumps
from tcpdiag.statepack import StatePacker
from tcpdiag.tls import TlsStream
from tcpdiag.tls.stream import FrozenStream
from tests.capture_files import corpus_captures
from tests.craft import Conversation
from tests.hostile.packets import client_hello, server_hello
from tests.hostile.packets import record as tls_record


class Colour(enum.IntEnum):
    RED = 1


class Slotted:
    __slots__ = ("a", "b", "c")


class Loose:  # no slots: fields travel by name
    pass


def _blank_slotted() -> Slotted:
    return Slotted()


def _module_function(x: int) -> int:
    return x


PACKER = StatePacker({Slotted: _blank_slotted, Loose: Loose})


def _round_trip(obj: object) -> object:
    packed = PACKER.pack(obj)
    assert packed is not None
    return PACKER.unpack(packed)


def test_values_and_containers_come_back_equal() -> None:
    value = Slotted()
    value.a = [1, -(2**70), 2.5, "text", b"\x00\xff", None, True, (1, (2, "x"))]
    value.b = {
        (1, "k"): bytearray(b"buf"),
        "q": deque([1, 2], maxlen=3),
        "arr": array("q", [5, -6]),
        "d": array("d", [0.25]),
        "s": {1, 2},
        "f": frozenset({"a"}),
    }
    value.c = Colour.RED
    back = _round_trip(value)
    assert isinstance(back, Slotted) and back is not value
    assert back.a == value.a
    assert back.b == value.b
    assert back.b["q"].maxlen == 3 and type(back.b["arr"]) is array
    assert back.b["arr"].typecode == "q" and back.b["d"].typecode == "d"
    assert back.c is Colour.RED  # enum members by reference
    assert type(back.b[(1, "k")]) is bytearray


def test_sharing_and_cycles_are_kept() -> None:
    shared = [1, 2]
    obj = Slotted()
    obj.a = shared
    obj.b = (shared, {"again": shared})
    obj.c = obj  # a cycle through the object itself
    back = _round_trip(obj)
    assert isinstance(back, Slotted)
    assert back.a is back.b[0] is back.b[1]["again"]
    assert back.c is back
    back.a.append(3)  # one list, as before packing
    assert back.b[1]["again"] == [1, 2, 3]


def test_objects_without_slots_and_unset_fields() -> None:
    loose = Loose()
    loose.x = 1  # type: ignore[attr-defined]
    loose.y = [Loose()]  # type: ignore[attr-defined]
    back = _round_trip(loose)
    assert isinstance(back, Loose)
    assert vars(back).keys() == {"x", "y"} and back.x == 1  # type: ignore[attr-defined]
    assert isinstance(back.y[0], Loose)  # type: ignore[attr-defined]
    partly = Slotted()
    partly.a = 1  # b and c never assigned: they stay so
    back = _round_trip(partly)
    assert isinstance(back, Slotted) and back.a == 1
    assert not hasattr(back, "b") and not hasattr(back, "c")


def test_functions_without_a_closure_are_kept_by_reference() -> None:
    obj = Slotted()
    obj.a, obj.b, obj.c = _module_function, len, Colour
    back = _round_trip(obj)
    assert isinstance(back, Slotted)
    assert back.a is _module_function and back.b is len and back.c is Colour


@pytest.mark.parametrize(
    "unpackable",
    [
        object(),  # a class the packer does not know
        memoryview(b"abc"),
        (lambda n: lambda: n)(1),  # a closure: the unpacked graph would not share its cell
        Slotted().__init_subclass__,  # a bound method
    ],
)
def test_what_cannot_be_packed_exactly_is_refused(unpackable: object) -> None:
    obj = Slotted()
    obj.a = [1, {"deep": unpackable}]
    assert PACKER.pack(obj) is None


def _report(path: str) -> str:
    try:
        return dumps(capture_json(analyze_capture(path, AnalysisOptions(keep_all_timelines=True))))
    except TcpdiagError as exc:
        return f"error: {exc}"


def test_freezing_every_stream_after_every_packet_changes_no_report(monkeypatch) -> None:
    if getattr(Flow.process, "__code__", None) is None:
        pytest.skip("compiled build: Flow.process cannot be wrapped (test_compiled_equivalence)")
    captures = corpus_captures()
    assert len(captures) > 40
    expected = {path: _report(path) for path in captures}
    counts = {"frozen": 0, "refused": 0}
    freeze, process = TlsStream.freeze, Flow.process

    def counting_freeze(stream: TlsStream) -> FrozenStream | None:
        frozen = freeze(stream)
        counts["frozen" if frozen is not None else "refused"] += 1
        return frozen

    def process_then_freeze(flow: Flow, seg: object, d: object) -> int:
        flags = process(flow, seg, d)  # type: ignore[arg-type]
        flow.freeze_consumer()
        return flags

    monkeypatch.setattr(TlsStream, "freeze", counting_freeze)
    monkeypatch.setattr(Flow, "process", process_then_freeze)
    changed = [path for path in captures if _report(path) != expected[path]]
    assert changed == []
    # Every stream of the corpus packs: no class of their state is missing from the packer.
    assert counts["frozen"] > 500 and counts["refused"] == 0


def _tls_connection(table: FlowTable) -> tuple[Conversation, Flow]:
    """A TLS connection fed to `table`, still open: ClientHello, ServerHello, and application
    data both ways."""
    c = Conversation(server="10.0.0.2:443").handshake()
    c.send("c", tls_record(client_hello()))
    c.send("s", tls_record(server_hello()))
    c.send("c", b"\x17\x03\x03\x00\x05hello")
    c.send("s", b"\x17\x03\x03\x00\x05world")
    for seg in c.segments:
        table.add(seg)
    (flow,) = list(table)
    return c, flow


def _tables() -> tuple[FlowTable, list[Flow]]:
    done: list[Flow] = []

    def on_open(flow: Flow) -> None:
        flow.make_consumer = TlsStream

    return FlowTable(on_open=on_open, on_close=done.append), done


def test_a_dozing_flow_packs_its_stream_and_the_next_packet_thaws_it() -> None:
    table, _ = _tables()
    c, flow = _tls_connection(table)
    stream = flow.consumer
    assert isinstance(stream, TlsStream) and stream.is_tls
    records = [side.records for side in stream.sides]
    flow.doze()
    # Packed: neither the flow nor its reassemblers hold the stream.
    assert flow.consumer is None and isinstance(flow._frozen, FrozenStream)
    assert all(r is None or r.consumer is None for r in flow._reasm)
    table.add(c.send("c", b"\x17\x03\x03\x00\x02hi"))
    thawed = flow.consumer
    assert isinstance(thawed, TlsStream) and thawed is not stream and flow._frozen is None
    assert all(r is not None and r.consumer is thawed for r in flow._reasm)
    # ... and it went on from where it was: one more client record, the hello still there.
    assert [side.records for side in thawed.sides] == [records[0] + 1, records[1]]
    assert thawed.client_hello is not None and thawed.client_hello.sni == "example.com"
    # Once woken, a flow is not packed again: one that talks now and then (a keep-alive ping
    # every minute) would pay a pack and an unpack each time.
    flow.doze()
    assert flow.consumer is thawed and flow._frozen is None


def test_near_miss_a_closed_flow_is_not_packed() -> None:
    table, _ = _tables()
    c, flow = _tls_connection(table)
    for seg in (c.fin("c"), c.fin("s"), c.ack("c")):
        table.add(seg)
    assert flow.closed
    stream = flow.consumer
    flow.doze()
    assert flow.consumer is stream and flow._frozen is None


def test_an_ended_flow_lets_its_reassemblers_forget_the_stream() -> None:
    # The end of a capture finalises its flows from one list, each staying alive until the
    # last is done: a stream thawed for its flow's result must go when the result is made
    # (the engine then drops `flow.consumer`), not when the flow goes.
    table, done = _tables()
    _, flow = _tls_connection(table)
    flow.doze()
    table.finish()
    assert done == [flow] and isinstance(flow.consumer, TlsStream)
    assert all(r is not None and r.consumer is None for r in flow._reasm)


def test_the_table_dozes_a_quiet_flow_and_the_end_thaws_it() -> None:
    table, done = _tables()
    table.pack_quiet_after = 0  # (by default the first quiet flows keep their streams)
    c, flow = _tls_connection(table)
    quiet_since = c.segments[-1].time
    table.expire(quiet_since + IDLE_COMPACT - 1.0)
    assert flow._frozen is None
    table.expire(quiet_since + IDLE_COMPACT + 1.0)
    assert isinstance(flow._frozen, FrozenStream) and flow.consumer is None
    table.finish()
    assert done == [flow] and flow._frozen is None
    stream = flow.consumer
    assert isinstance(stream, TlsStream)
    summary = stream.summary()
    assert summary.sni == "example.com" and summary.records_client == 2
    assert summary.records_server == 2


def test_near_miss_a_consumer_without_freeze_is_kept_as_it_is() -> None:
    table, _ = _tables()
    _, flow = _tls_connection(table)

    class Plain:  # a StreamConsumer with no freeze()
        wants_data = True

        def on_data(self, *args: object) -> None: ...
        def on_gap(self, *args: object) -> None: ...
        def on_end(self, *args: object) -> None: ...

    plain = Plain()
    flow.attach(plain)
    flow.doze()
    assert flow.consumer is plain and flow._frozen is None


def test_a_frozen_stream_is_a_fraction_of_the_live_one() -> None:
    table, _ = _tables()
    _, flow = _tls_connection(table)
    stream = flow.consumer
    assert isinstance(stream, TlsStream)
    frozen = stream.freeze()
    assert frozen is not None
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        live = frozen.thaw()
        size_live = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    size_frozen = sys.getsizeof(frozen.packed.blob) + sys.getsizeof(frozen.packed.refs)
    assert live.client_hello is not None
    # ~6 KB of objects against ~1.5 KB packed here (pure Python); ~8 KB against ~1.9 KB for the
    # idle TLS connections of benchmarks/ (compiled).
    assert size_frozen * 3 < size_live, (size_frozen, size_live)


# Pieces of TLS conversations, whole and broken, that a stream may meet in any order.
_PIECES = [
    tls_record(client_hello()),
    tls_record(client_hello(sni=None, alpn=())),
    tls_record(server_hello()),
    tls_record(server_hello(version=0x0304)),
    tls_record(b"\x01", content_type=20, version=0x0303),  # ChangeCipherSpec
    tls_record(b"\x02\x28", content_type=21, version=0x0303),  # fatal handshake_failure
    b"\x17\x03\x03\x00\x05hello",  # application data
    b"\x16\x03\x01\x40\x00",  # a header promising 16 KB that never comes
    b"GET / HTTP/1.1\r\n\r\n",
    b"220 mail.example.com ESMTP\r\n",
    b"\x00\xff\x13\x37",
]


@st.composite
def _conversations(draw: st.DrawFn) -> list[tuple[str, int, bytes]]:
    """(event, direction, bytes) steps: data cut at random places, a hole, an end."""
    steps: list[tuple[str, int, bytes]] = []
    for _ in range(draw(st.integers(1, 12))):
        direction = draw(st.integers(0, 1))
        piece = draw(st.sampled_from(_PIECES) | st.binary(min_size=1, max_size=40))
        cut = draw(st.integers(0, len(piece)))
        for chunk in (piece[:cut], piece[cut:]):
            if chunk:
                steps.append(("data", direction, chunk))
        if draw(st.integers(0, 9)) == 0:
            steps.append((draw(st.sampled_from(["gap", "fin", "rst"])), direction, b""))
    return steps


def _play(steps: list[tuple[str, int, bytes]], frozen: bool) -> TlsStream:
    stream = TlsStream()
    offsets = [0, 0]
    for frame, (event, direction, data) in enumerate(steps, 1):
        if event == "data":
            stream.on_data(direction, offsets[direction], data, frame, frame / 10)
            offsets[direction] += len(data)
        elif event == "gap":
            stream.on_gap(direction, offsets[direction], 100, frame)
            offsets[direction] += 100
        else:
            stream.on_end(direction, event, frame, frame / 10)
        if frozen:
            packed = stream.freeze()
            assert packed is not None
            stream = packed.thaw()
    return stream


@settings(max_examples=300, deadline=None)
@given(_conversations())
def test_any_stream_state_packs_and_unpacks_exactly(steps: list[tuple[str, int, bytes]]) -> None:
    # Whatever a stream has seen (hellos, alerts, STARTTLS openers, garbage, records cut short,
    # holes), a copy packed and unpacked after every step ends in the same state: the same
    # packed form, the same summary, labels and findings.
    plain, frozen = _play(steps, frozen=False), _play(steps, frozen=True)
    before, after = plain.freeze(), frozen.freeze()
    assert before is not None and after is not None
    # (the packed trees, not the blobs: pickle shares equal atoms that are one object)
    assert pickle.loads(after.packed.blob) == pickle.loads(before.packed.blob)
    ctx = TcpContext(flow=1)
    assert tls_rules.diagnose(frozen, ctx) == tls_rules.diagnose(plain, ctx)
    assert frozen.summary() == plain.summary()
    assert frozen.records_by_frame() == plain.records_by_frame()


def test_the_first_quiet_flows_keep_their_streams_and_later_ones_pack_them() -> None:
    # Packing pays only when many connections wait at once: a flow that goes quiet while
    # `pack_quiet_after` quiet flows hold theirs unpacked packs its stream.
    table, done = _tables()
    table.pack_quiet_after = 2

    def tls_flow(i: int, start: float) -> tuple[Conversation, Flow]:
        c = Conversation(
            f"10.0.0.1:{40000 + i}", "10.0.0.2:443", start=start, first_frame=1 + 100 * i
        )
        c.handshake()
        c.send("c", tls_record(client_hello()))
        c.send("s", tls_record(server_hello()))
        for seg in c.segments:
            table.add(seg)
        return c, next(f for f in table if f.id == i + 1)

    convs, flows = zip(*(tls_flow(i, i * 0.5) for i in range(4)), strict=True)
    table.expire(10.0 + IDLE_COMPACT)
    assert len(table._dozing) == 4 and len(table._quiet_streams) == 2
    assert [f._frozen is not None for f in flows] == [False, False, True, True]
    assert [isinstance(f.consumer, TlsStream) for f in flows] == [True, True, False, False]
    # A quiet flow that wakes no longer counts: the next flow to go quiet keeps its stream.
    _, late = tls_flow(4, 20.0)
    table.add(convs[0].send("c", b"\x17\x03\x03\x00\x02hi", at=22.0))
    assert len(table._quiet_streams) == 1
    table.expire(20.0 + IDLE_COMPACT + 1.0)  # (the woken flow is quiet for 9 s only)
    assert late in table._dozing.values()
    assert late._frozen is None and isinstance(late.consumer, TlsStream)
    assert len(table._quiet_streams) == 2
    table.finish()  # the end thaws the packed ones: every flow ends with its stream
    assert [f.id for f in done] == [1, 2, 3, 4, 5] and not table._quiet_streams
    ended = [*flows, late]
    assert all(isinstance(f.consumer, TlsStream) and f._frozen is None for f in ended)
    assert [f.consumer.summary().sni for f in ended] == ["example.com"] * 5
