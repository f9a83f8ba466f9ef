"""The flow table: flow identity, incarnations (port reuse), lifetimes, eviction."""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Hashable

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag.config import AnalysisOptions, Limits
from tcpdiag.flow import Flow, FlowTable
from tcpdiag.flow.table import _TOMB_HEAD, IDLE_COMPACT, SUSPICIOUS_JUMP
from tcpdiag.model import NO_OPTIONS, Direction, Segment, TcpOptions, tuple_key
from tcpdiag.result import flow_to_plain
from tests.craft import (
    CLIENT,
    SERVER,
    Conversation,
    ack,
    data,
    parse_endpoint,
    run,
    same_bucket_ports,
    syn,
    synack,
)


def closed_conversation(**kw: object) -> Conversation:
    c = Conversation(**kw).handshake()  # type: ignore[arg-type]
    c.send("c", 10)
    c.fin("c")
    c.fin("s")
    c.ack("c")
    return c


def test_ids_in_order_of_first_packet_and_client_roles() -> None:
    segs = [
        data(10, src="10.0.0.9:5000", dst="10.0.0.2:80", frame=1, time=0.0),
        syn(frame=2, time=0.1),
        ack(src=SERVER, dst=CLIENT, seq=5001, ack=1001, frame=3, time=0.2),
    ]
    flows = run(segs)
    assert [f.id for f in flows] == [1, 2]
    assert flows[0].client_inferred and flows[0].client == parse_endpoint("10.0.0.9:5000")
    assert not flows[1].client_inferred and flows[1].client == parse_endpoint(CLIENT)
    assert flows[1].server == parse_endpoint(SERVER)
    assert flows[1].first_frame == 2 and flows[1].last_frame == 3


def test_new_isn_after_close_starts_new_flow_with_port_reused() -> None:
    c1 = closed_conversation()
    c2 = Conversation(client_isn=77_000, start=c1.time + 0.5, first_frame=c1.frame + 1)
    c2.handshake()
    flows = c1.run(segments=[*c1.segments, *c2.segments])
    assert len(flows) == 2
    new = flows[1]
    assert new.port_reused and new.reuse_frame == c1.frame + 1
    assert new.prev_close_time == c1.time
    assert new.analysis["port-reused"] == [c1.frame + 1]
    assert [e.kind for e in new.events][:2] == ["port-reused", "syn"]
    assert flows[0].state == "SF"


def test_same_isn_after_rst_is_a_syn_retransmission() -> None:
    # A client retrying a refused connect() keeps its ISN: one flow, SYN retransmissions.
    c = Conversation()
    c.syn()
    c.rst("s", ack=c.next_seq("c"))
    c.syn(dt=0.5)
    c.rst("s", ack=c.next_seq("c"))
    flows = c.run()
    assert len(flows) == 1
    assert flows[0].handshake.syn_retransmissions == 1
    assert flows[0].analysis["retransmission"] == [3]
    assert flows[0].state == "REJ"


def test_same_isn_after_established_close_is_a_new_incarnation() -> None:
    c1 = closed_conversation()
    c2 = Conversation(start=c1.time + 1.0, first_frame=c1.frame + 1)  # same ISN 1000
    c2.handshake()
    flows = c1.run(segments=[*c1.segments, *c2.segments])
    assert len(flows) == 2 and flows[1].port_reused


def test_reuse_recognised_after_the_closed_flow_was_released() -> None:
    c1 = closed_conversation()
    later = c1.time + 180.0  # past TIME_WAIT: the old flow is finalised, a tombstone remains
    c2 = Conversation(client_isn=123_456, start=later, first_frame=c1.frame + 1)
    c2.handshake()
    flows = c1.run(segments=[*c1.segments, *c2.segments])
    assert len(flows) == 2
    assert flows[1].port_reused and flows[1].prev_close_time == c1.time


def test_late_ack_after_close_stays_in_flow() -> None:
    c = closed_conversation()
    c.ack("c", dt=2.0)  # a late duplicate of the last ACK
    c.rst("s", dt=1.0)
    flows = c.run()
    assert len(flows) == 1
    assert flows[0].s.rst_frame == c.frame


def test_close_linger_limit_sets_how_long_a_closed_flow_waits() -> None:
    # `live --linger` (3 s by default there): flows are reported soon after they close.
    closed: list[Flow] = []
    options = AnalysisOptions(limits=Limits(close_linger=2.0))
    table = FlowTable(options, on_close=closed.append)
    c = closed_conversation()
    for seg in c.segments:
        table.add(seg)
    table.expire(c.time + 1.5)
    assert closed == [] and len(table) == 1
    table.expire(c.time + 2.5)
    assert len(closed) == 1 and len(table) == 0


def test_on_close_called_when_closed_flow_lingers_out() -> None:
    closed: list[Flow] = []
    table = FlowTable(on_close=closed.append)
    c = closed_conversation()
    for seg in c.segments:
        table.add(seg)
    assert closed == [] and len(table) == 1
    table.expire(c.time + 30.0)
    assert closed == []
    table.expire(c.time + 61.0)  # Thresholds.time_wait
    assert len(closed) == 1 and len(table) == 0
    assert closed[0].closed and not closed[0].timed_out


def test_idle_timeout_splits_and_marks_timed_out() -> None:
    opts = AnalysisOptions(limits=Limits(idle_timeout=10.0))
    c = Conversation().handshake()
    c.send("c", 10)
    c.send("c", 10, dt=20.0)  # silence longer than the idle timeout
    flows = c.run(opts)
    assert len(flows) == 2
    assert flows[0].timed_out
    assert flows[1].client_inferred


def test_bogus_future_timestamp_does_not_expire_everything() -> None:
    c = Conversation().handshake()
    c.send("c", 10)
    c.send("s", 10, at=2.0e9)  # one packet decades ahead
    c.send("c", 10, at=0.1)
    flows = c.run()
    assert len(flows) == 1


def test_expire_with_a_bogus_time_keeps_flows() -> None:
    table = FlowTable()
    c = Conversation().handshake()
    for seg in c.segments:
        table.add(seg)
    assert table.expire(2.0e9) == 0  # one bogus timestamp (as the engine passes it on)
    assert len(table) == 1


def test_max_flows_evicts_embryonic_first() -> None:
    opts = AnalysisOptions(limits=Limits(max_flows=2))
    done: list[Flow] = []
    table = FlowTable(opts, on_close=done.append)
    est = Conversation(client="10.0.0.5:1000").handshake()
    for seg in est.segments:
        table.add(seg)
    table.add(syn(src="10.0.0.6:1000", frame=10, time=0.1))
    table.add(syn(src="10.0.0.7:1000", frame=11, time=0.2))  # table full: evict the SYN-only
    assert table.evictions == 1
    assert len(done) == 1 and done[0].evicted and done[0].first_frame == 10
    assert len(table) == 2


def test_on_open_attaches_consumer_before_data() -> None:
    got: list[tuple[int, int, bytes]] = []

    class Sink:
        wants_data = True

        def on_data(self, direction: int, offset: int, data: bytes, frame: int, t: float) -> None:
            got.append((direction, offset, data))

        def on_gap(self, direction: int, offset: int, length: int, frame: int) -> None:
            pass

        def on_end(self, direction: int, how: str, frame: int, t: float) -> None:
            pass

    def on_open(flow: Flow) -> None:
        flow.consumer = Sink()

    c = Conversation().handshake()
    c.send("c", b"hello")
    c.send("s", b"world")
    c.run(on_open=on_open)
    assert got == [(0, 0, b"hello"), (1, 0, b"world")]


def test_memory_released_flows_leave_the_table() -> None:
    table = FlowTable()
    for i in range(50):
        c = closed_conversation(client=f"10.0.1.{i}:1000", start=float(i * 100))
        for seg in c.segments:
            table.add(seg)
    table.expire(10_000.0)
    assert len(table) == 0
    assert table.flows_created == 50


def test_syn_only_tuples_stay_compact_until_something_else_arrives() -> None:
    opened: list[int] = []
    done: list[Flow] = []
    table = FlowTable(on_open=lambda f: opened.append(f.id), on_close=done.append)
    assert table.add(syn(src="10.0.0.6:1000", frame=1, time=0.0)) is None
    assert table.add(syn(src="10.0.0.6:1000", frame=2, time=1.0)) is None  # retransmission
    flow = table.add(data(10, src="10.0.0.9:5000", frame=3, time=1.5))
    assert flow is not None and flow.id == 2 and opened == [2]
    # the SYN-ACK turns the embryo into a Flow: id 1, both SYNs replayed, on_open first
    got = table.add(synack(dst="10.0.0.6:1000", frame=4, time=1.6))
    assert got is not None and got.id == 1 and opened == [2, 1]
    assert got.handshake.syn_frames == [1, 2] and got.analysis["retransmission"] == [2]
    table.add(syn(src="10.0.0.7:1000", frame=5, time=2.0))
    table.finish()
    assert [(f.id, f.state, f.history) for f in done] == [
        (1, "OTH", "Sh"),  # Zeek: SYN and SYN-ACK but no final ACK is OTH too
        (2, "OTH", "D"),
        (3, "S0", "S"),
    ]
    assert done[2].handshake.syn and done[2].first_frame == 5


def test_closed_flows_beyond_max_closed_flows_are_finalised_in_close_order() -> None:
    opts = AnalysisOptions(limits=Limits(max_closed_flows=2))
    done: list[Flow] = []
    table = FlowTable(opts, on_close=done.append)
    # The limit is kept per bucket of flows (rounded up: 1 here): four connections of one
    # bucket, and one of another.
    ports = same_bucket_ports(4)
    other = next(p for p in range(1001, 2000) if p not in same_bucket_ports(100))
    frame, start = 1, 0.0
    for port in (*ports[:2], other, *ports[2:]):
        c = closed_conversation(client=f"10.0.0.1:{port}", first_frame=frame, start=start)
        for seg in c.segments:
            table.add(seg)
        frame, start = c.frame + 1, c.time + 0.1
    # four closed within a second, only one of their bucket may linger: the first three
    # closed are reported; the other bucket's lingers
    assert table.closed_early == 3
    assert [f.client[1] for f in done] == ports[:3]
    assert all(f.closed and not f.timed_out for f in done)
    assert len(table) == 2
    table.finish()
    assert sorted(f.client[1] for f in done) == sorted([*ports, other])


def test_a_late_packet_of_a_flow_finalised_early_is_counted() -> None:
    """A retransmitted last ACK of a flow the closed-flow cap finalised starts a new flow (as
    in Zeek after tcp_close_delay); the table counts it so the report can say why."""
    done: list[Flow] = []
    table = FlowTable(AnalysisOptions(limits=Limits(max_closed_flows=1)), on_close=done.append)
    one, two = same_bucket_ports(2)
    first = closed_conversation(client=f"10.0.0.1:{one}")
    second = closed_conversation(client=f"10.0.0.1:{two}", first_frame=first.frame + 1, start=1.0)
    for seg in [*first.segments, *second.segments]:
        table.add(seg)
    assert table.closed_early == 1 and [f.client[1] for f in done] == [one]
    late = first.segments[-1]._replace(frame=second.frame + 1, time=second.time + 5)
    table.add(late)
    assert table.late_after_early_close == 1
    assert table.late_after_early_close_frames == [late.frame]
    reborn = table.get(done[0].key)  # a new flow, started mid-stream by the late packet
    assert reborn is not None and reborn.first_frame == late.frame and reborn.client_inferred


def test_late_packets_are_not_counted_without_an_early_finalisation() -> None:
    # Near misses: the same late ACK with room for both closed flows (the flow still lingers
    # and takes it), and after the linger would have ended anyway (a new flow either way).
    # (A limit of 65 leaves each bucket room for two.)
    one, two = same_bucket_ports(2)
    for limits, delay in ((Limits(max_closed_flows=65), 5.0), (Limits(max_closed_flows=1), 61.0)):
        table = FlowTable(AnalysisOptions(limits=limits))
        first = closed_conversation(client=f"10.0.0.1:{one}")
        second = closed_conversation(
            client=f"10.0.0.1:{two}", first_frame=first.frame + 1, start=1.0
        )
        for seg in [*first.segments, *second.segments]:
            table.add(seg)
        late = first.segments[-1]._replace(frame=second.frame + 1, time=second.time + delay)
        table.add(late)
        assert table.late_after_early_close == 0, (limits, delay)
        assert table.late_after_early_close_frames == []


def test_closing_and_idle_flows_drop_their_copy_of_delivered_bytes() -> None:
    table = FlowTable()
    idle = Conversation(client="10.0.0.1:2000").handshake()
    idle.send("c", 500)
    idle.send("s", 700)
    idle.ack("c")
    busy = Conversation(client="10.0.0.1:2001", start=0.5).handshake()
    busy.send("c", 300)
    for seg in sorted([*idle.segments, *busy.segments], key=lambda s: s.time):
        table.add(seg)
    flows = {f.client[1]: f for f in table}

    class Wants:  # a consumer that keeps wanting bytes, as TLS parsing does
        wants_data = True

        def on_data(self, *args: object) -> None: ...
        def on_gap(self, *args: object) -> None: ...
        def on_end(self, *args: object) -> None: ...

    for f in flows.values():
        f.attach(Wants())
    extra = idle.send("c", 400)
    table.add(extra)
    reasm = flows[2000]._reasm[0]
    assert reasm is not None and reasm.recent_size == 400
    table.expire(extra.time + 5.0)  # not idle long enough yet
    assert reasm.recent_size == 400
    table.expire(extra.time + 11.0)  # IDLE_COMPACT
    assert reasm.recent == [] and reasm.recent_size == 0
    assert len(table) == 2  # still open: only its copy of delivered bytes went


def test_a_sweep_compacts_only_the_flows_gone_quiet_since_the_last_one(monkeypatch) -> None:
    # Quiet flows are compacted once, not at every sweep of the minutes before they time out.
    compacted: list[int] = []
    forget = Flow.forget_delivered

    def counting(flow: Flow) -> None:
        compacted.append(flow.client[1])
        forget(flow)

    monkeypatch.setattr(Flow, "forget_delivered", counting)
    table = FlowTable()
    convs = []
    for port in (2000, 2001, 2002):
        c = Conversation(client=f"10.0.0.1:{port}", start=(port - 2000) * 5.0).handshake()
        c.send("c", 100)
        convs.append(c)
    for seg in sorted((s for c in convs for s in c.segments), key=lambda s: s.time):
        table.add(seg)
    last = {c.segments[0].sport: c.segments[-1].time for c in convs}
    for second in range(1, 40):
        table.expire(last[2000] + second)
    # each once, in the order they went quiet (and none before IDLE_COMPACT of silence)
    assert compacted == [2000, 2001, 2002]
    assert len(table) == 3 and len(table._dozing) == 3
    # A packet wakes a dozing flow: the most recently active again, compacted again once
    # quiet for IDLE_COMPACT.
    woken = convs[0].send("c", 50, at=last[2000] + 40.0)
    table.add(woken)
    assert [f.client[1] for f in table] == [2001, 2002, 2000]
    table.expire(woken.time + IDLE_COMPACT - 0.5)
    assert compacted == [2000, 2001, 2002]
    table.expire(woken.time + IDLE_COMPACT + 0.5)
    table.expire(woken.time + IDLE_COMPACT + 5.0)
    assert compacted == [2000, 2001, 2002, 2000]
    # Idle timeout still finalises the dozing flows, least recently active first.
    done: list[Flow] = []
    table.on_close = done.append
    table.expire(last[2002] + 300.5)
    assert [f.client[1] for f in done] == [2001, 2002]
    assert [f.client[1] for f in table] == [2000]


def test_a_quiet_flow_behind_a_dozing_one_waits_for_it_as_before() -> None:
    # Idle expiry stops at the least recently active entry that is not due, even when a later
    # entry is older by its timestamps (captures whose clock goes backwards): a dozing entry
    # not due stops it before the younger `_flows` are looked at.
    limits = Limits(idle_timeout=60.0, max_closed_flows=1)
    done: list[Flow] = []
    table = FlowTable(AnalysisOptions(limits=limits), on_close=done.append)
    # (`e` and `g` in one bucket of flows: the limit on closed flows is kept per bucket.)
    pe, pg = same_bucket_ports(2)
    pa, pc, ph = [p for p in range(3000, 3010) if p not in (pe, pg)][:3]
    ports = {"a": pa, "e": pe, "c": pc, "g": pg, "h": ph}
    a, e, c, g, h = (Conversation(client=f"10.0.0.1:{p}") for p in ports.values())
    table.add(a.syn(at=75.0))
    table.add(a.synack(at=75.1))
    table.add(a.ack(at=75.2))
    table.add(a.send("c", 10, at=80.0))
    table.add(e.syn(at=100.0))  # the sweep at 100 puts the quiet `a` to doze
    assert [f.client[1] for f in table._dozing.values()] == [pa]
    table.add(c.syn(at=30.0))  # a timestamp 70 s in the past
    table.add(e.rst("s", at=100.1))  # `e` closes...
    table.add(g.syn(at=100.2))
    table.add(g.rst("s", at=100.3))  # ... and is finalised early (max_closed_flows=1)
    assert [f.client[1] for f in done] == [pe]
    table.add(h.syn(at=101.5))  # a sweep: `a` (quiet 21.5 s) is not due, so `c` waits too
    assert [f.client[1] for f in done] == [pe]
    assert [f.client[1] for f in table] == [pa, pc, pg, ph]


class _OneOrder(FlowTable):
    """The oracle: the table as it was before dozing entries left `_flows` (each sweep walked
    every quiet entry, compacting again what it had compacted before), and before `_process`
    skipped moving an entry that was last already (here every packet moves its entry)."""

    def _process(self, key: Hashable, flow: Flow, seg: Segment, d: Direction) -> None:
        self._last_key = None
        super()._process(key, flow, seg, d)

    def expire(self, now: float) -> int:
        if self._clock != float("-inf") and now - self._clock > SUSPICIOUS_JUMP:
            now = self._clock
        n = 0
        due = self._closing.due(lambda flow: now - flow.end > self._closed_linger)
        for flow in sorted(due, key=lambda flow: flow.last_frame):
            self._finalize(flow, timed_out=True)
            n += 1
        flows = self._flows
        while flows:
            entry = next(iter(flows.values()))
            if now - entry.end <= self._idle_timeout:
                break
            self._finalize(self._flow(entry), timed_out=True)
            n += 1
        for entry in flows.values():
            if now - entry.end <= IDLE_COMPACT:
                break
            if isinstance(entry, Flow):
                entry.forget_delivered()
            else:
                entry.compact()
        self._tombs.drop_due(
            lambda tomb: now - _TOMB_HEAD.unpack_from(tomb)[0] > self._idle_timeout
        )
        self.expired += n
        return n


def _state(entry: object) -> object:
    if isinstance(entry, Flow):
        return (entry.id, entry.end, [r is None or not r.recent for r in entry._reasm])
    return (getattr(entry, "id", None), getattr(entry, "packed", None))


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(0, 5),
            st.sampled_from("sdafr"),
            st.one_of(st.floats(0.0, 25.0), st.floats(-80.0, 0.0)),
        ),
        min_size=1,
        max_size=60,
    ),
    max_flows=st.integers(2, 8),
    max_closed=st.integers(1, 4),
)
def test_dozing_changes_nothing_but_the_work_of_a_sweep(
    steps: list[tuple[int, str, float]], max_flows: int, max_closed: int
) -> None:
    # Against the oracle, on conversations that open, send, close, reset, go quiet and come
    # back, with limits small enough to evict and finalise early, and timestamps that
    # sometimes go backwards: the same flows finalised in the same order with the same
    # results, the same entries in the same LRU order, compacted alike.
    limits = Limits(max_flows=max_flows, max_closed_flows=max_closed, idle_timeout=60.0)
    done: list[Flow] = []
    expected: list[Flow] = []
    table = FlowTable(AnalysisOptions(limits=limits), on_close=done.append)
    oracle = _OneOrder(AnalysisOptions(limits=limits), on_close=expected.append)
    convs = [Conversation(client=f"10.0.0.1:{3000 + i}", client_isn=1000 * i) for i in range(6)]
    now = 0.0
    for which, action, gap in steps:
        now = max(0.0, now + gap)
        c = convs[which]
        if action == "s":
            seg = c.syn(at=now)
        elif action == "d":
            seg = c.send("c", 10, at=now)
        elif action == "a":
            seg = c.send("s", 20, at=now)
        elif action == "f":
            seg = c.fin("c", at=now)
        else:
            seg = c.rst("s", at=now)
        table.add(seg)
        oracle.add(seg)
        assert [_state(e) for e in table._entries()] == [_state(e) for e in oracle._entries()]
        assert [f.id for f in done] == [f.id for f in expected]
        assert len(table) <= max_flows
        assert not set(table._dozing) & set(table._flows)
    table.finish()
    oracle.finish()
    assert [flow_to_plain(f.to_result(f.id)) for f in done] == [
        flow_to_plain(f.to_result(f.id)) for f in expected
    ]


def test_unanswered_syn_retransmissions_replay_exactly() -> None:
    # An embryo keeps retransmitted SYNs as (frame, time, TTL, TSval) when nothing else
    # differs; the Flow built from it must see every SYN exactly as captured.
    c = Conversation()
    first = c.syn(options=TcpOptions(mss=1460, ts_val=99, ts_ecr=0))
    c.syn(dt=1.0, window=1024, options=first.options._replace(ts_val=200))  # kept whole
    for i in range(3):
        c.syn(dt=1.0, options=first.options._replace(ts_val=100 + i))
    table = FlowTable()
    for seg in c.segments:
        assert table.add(seg) is None  # still an embryo
    embryo = table._entries()[0]
    assert [type(s).__name__ for s in embryo.segs] == ["Segment", "Segment", *["tuple"] * 3]
    flow = table.get(embryo.key)
    assert flow is not None
    assert flow.handshake.syn_retransmissions == 4
    assert flow.c.ts_val == 102
    rows, _ = flow.timeline()
    assert [(r.frame, r.time, r.window) for r in rows] == [
        (s.frame, s.time, s.window) for s in c.segments
    ]


def _unanswered_syns() -> list[list[Segment]]:
    """Connection attempts nobody answers, each a SYN and retransmissions: IPv4 and IPv6, the
    client first or second in the flow key, odd options, a retransmission that differs."""
    full = TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts_val=99, ts_ecr=0)
    attempts = []
    for client, server, options in [
        ("10.0.0.6:40000", "10.0.0.2:443", full),  # the client second in the key
        ("10.0.0.1:40001", "10.0.0.2:443", NO_OPTIONS),
        ("[2001:db8::9]:40002", "[2001:db8::1]:80", TcpOptions(mss=0, wscale=14)),
        ("10.0.0.1:40003", "10.0.0.2:443", TcpOptions(ts_val=0xFFFFFFFF)),
    ]:
        c = Conversation(client, server, start=float(len(attempts)), client_isn=0xFFFFFF00)
        first = c.syn(options=options)
        c.syn(dt=1.0, window=1024, options=options)  # differs: kept whole before packing
        c.syn(
            dt=2.0, options=first.options._replace(ts_val=12345 if first.options.ts_val else None)
        )
        attempts.append(c.segments)
    return attempts


def _finished(table: FlowTable) -> list[list[object]]:
    done: list[Flow] = []
    table.on_close = done.append
    table.finish()
    return [flow_to_plain(f.to_result(f.id)) for f in done]


def test_unanswered_syns_are_packed_after_idle_compact_and_replay_exactly() -> None:
    attempts = _unanswered_syns()
    table, reference = FlowTable(), FlowTable()
    for segs in attempts:
        for seg in segs:
            assert table.add(seg) is None and reference.add(seg) is None
    first_end = min(segs[-1].time for segs in attempts)
    last = max(seg.time for segs in attempts for seg in segs)
    table.expire(first_end + IDLE_COMPACT - 0.5)  # none silent long enough yet
    assert all(e.packed is None for e in table._entries())
    table.expire(last + IDLE_COMPACT + 0.5)
    embryos = table._entries()
    assert [len(e.packed) for e in embryos] == [3 * 44] * 4 and all(e.segs is None for e in embryos)
    for embryo, segs in zip(embryos, attempts, strict=True):
        replayed = embryo.segments()
        assert replayed == segs
        assert [type(s.options.sack_permitted) for s in replayed] == [bool] * 3
    # A retransmission after the packing is still the same attempt (the list form is back).
    late = Conversation("10.0.0.6:40000", "10.0.0.2:443", client_isn=0xFFFFFF00, first_frame=99)
    extra = late.syn(at=last + 11.0, options=attempts[0][0].options)
    assert table.add(extra) is None and reference.add(extra) is None
    assert embryos[0].packed is None and embryos[0].segments() == [*attempts[0], extra]
    assert _finished(table) == _finished(reference)


def test_a_syn_that_does_not_fit_the_packed_form_stays_whole() -> None:
    c = Conversation("10.0.0.1:40000", "10.0.0.2:443")
    c.syn(options=TcpOptions(mss=1460, sack=((1, 2),)))  # SACK blocks on a SYN: hostile input
    c.syn(dt=1.0, options=TcpOptions(mss=1460, sack=((1, 2),)))
    table = FlowTable()
    for seg in c.segments:
        table.add(seg)
    table.expire(c.segments[-1].time + IDLE_COMPACT + 1)
    embryo = table._entries()[0]
    assert embryo.packed is None and embryo.whole and embryo.segments() == c.segments


def _index_size(table: FlowTable) -> int:
    return sys.getsizeof(table._flows) + sys.getsizeof(table._dozing)


def test_packed_embryos_take_a_third_less_memory() -> None:
    options = TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts_ecr=0)
    tracemalloc.start()
    try:
        table = FlowTable()
        start = tracemalloc.get_traced_memory()[0]
        for i in range(3000):
            c = Conversation(f"10.1.{i // 250}.{i % 250 + 1}:{40000 + i}", "10.0.0.2:443",
                             start=i * 0.001, client_isn=1000 + i)  # fmt: skip
            c.syn(options=options._replace(ts_val=100_000 + i))
            c.syn(dt=1.0, options=options._replace(ts_val=200_000 + i))
            for seg in c.segments:
                table.add(seg)
        whole = tracemalloc.get_traced_memory()[0] - start - _index_size(table)
        table.expire(20.0)
        packed = tracemalloc.get_traced_memory()[0] - start - _index_size(table)
    finally:
        tracemalloc.stop()
    assert len(table) == 3000 and all(e.packed is not None for e in table._entries())
    # Per embryo, with its flow key, beside the table's LRU indexes (~100 bytes per entry;
    # here all 3000 move at once from `_flows` to `_dozing`, and `_flows` keeps its room until
    # new flows reuse it): ~1.15 KB whole (a Segment and its options, a tuple per
    # retransmission, their numbers, the list), ~0.75 KB packed (pure Python; each further
    # retransmission: ~150 bytes whole, 44 packed).
    assert packed < 0.75 * whole, (whole / 3000, packed / 3000)


def _indexed_flows(table: FlowTable) -> set[int]:
    """Ids of the flows `add` finds by the `tuple_key` of (src, sport, dst, dport), checking
    each entry points at the flow the table holds under that key, in the right direction."""
    ids = set()
    for key, (flow, d, held, _) in table._by_tuple.items():
        assert table.get(flow.key) is flow and held == flow.key
        (src, sport), (dst, dport) = (
            (flow.client, flow.server) if d == Direction.CLIENT else (flow.server, flow.client)
        )
        assert key == tuple_key(src, sport, dst, dport)
        ids.add(flow.id)
    return ids


def test_fast_path_index_holds_the_key_objects_the_segments_carry() -> None:
    """The C reader hands the packets of one direction one key object: once a packet of each
    direction has been seen, the index holds those very objects (found by identity), and still
    finds packets whose key is only equal."""
    conversation = closed_conversation()
    shared: dict[bytes, bytes] = {}
    segments = []
    for seg in conversation.segments:
        key = shared.setdefault(seg.tuple_key, bytes(bytearray(seg.tuple_key)))
        segments.append(seg._replace(tuple_key=key))
    table = FlowTable(AnalysisOptions())
    done: list[Flow] = []
    table.on_closed = done.append
    for seg in segments[:-1]:
        table.add(seg)
    assert len(shared) == 2 and table._by_tuple
    held = {id(key) for key in table._by_tuple}
    assert held == {id(key) for key in shared.values()}
    assert all(segments_key for *_, segments_key in table._by_tuple.values())
    last = segments[-1]
    flow = table.add(last._replace(tuple_key=bytes(bytearray(last.tuple_key))))
    assert flow is not None and flow.packets == len(segments)
    assert _indexed_flows(table) == {flow.id}


def test_fast_path_index_follows_creation_reuse_embryos_expiry_and_eviction() -> None:
    opts = AnalysisOptions(limits=Limits(max_flows=3))
    table = FlowTable(opts)
    c1 = closed_conversation()
    c2 = Conversation(client_isn=77_000, start=c1.time + 0.5, first_frame=c1.frame + 1)
    c2.handshake()  # a new incarnation of the same 4-tuple replaces c1
    for seg in [*c1.segments, *c2.segments]:
        table.add(seg)
    assert _indexed_flows(table) == {2}
    table.add(syn(src="10.0.0.6:1000", frame=50, time=c2.time + 1))  # an embryo: not indexed
    assert _indexed_flows(table) == {2}
    table.add(synack(dst="10.0.0.6:1000", frame=51, time=c2.time + 1.1))  # now a Flow
    assert _indexed_flows(table) == {2, 3}
    table.add(syn(src="10.0.0.7:1000", frame=52, time=c2.time + 1.2))
    table.add(syn(src="10.0.0.8:1000", frame=53, time=c2.time + 1.3))  # full: one evicted
    assert table.evictions == 1 and len(_indexed_flows(table)) == len(table) - 1
    table.expire(c2.time + 10_000.0)
    assert len(table) == 0 and table._by_tuple == {}
