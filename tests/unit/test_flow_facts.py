"""Facts a finished Flow exposes for the diagnoses: handshake, close, events, RTT, bursts,
delayed-ACK samples, timeline and to_result()."""

from __future__ import annotations

import pytest

from tcpdiag.config import AnalysisOptions, Limits
from tcpdiag.flow.flow import BURSTS_KEPT, MAX_EVENTS, Flow, timeline_frames, timeline_kept
from tcpdiag.model import Direction
from tcpdiag.tls import TlsStream
from tests.craft import Conversation
from tests.hostile.packets import client_hello
from tests.hostile.packets import record as tls_record


def test_handshake_rtt_is_wiresharks_irtt_from_the_last_syn() -> None:
    c = Conversation()
    c.syn()
    c.syn(dt=1.0)  # the retransmission is the most recent SYN
    c.synack(dt=0.020)
    c.synack(dt=0.5)  # SYN-ACK retransmitted
    c.ack("c", dt=0.001)
    f = c.flow()
    hs = f.handshake
    assert hs.syn and hs.syn_ack and hs.ack
    assert hs.rtt == pytest.approx(0.521)
    assert (hs.syn_retransmissions, hs.syn_ack_retransmissions) == (1, 1)
    assert hs.syn_frames == [1, 2] and hs.syn_ack_frames == [3, 4]
    assert hs.syn_times == pytest.approx([0.0, 1.0])


def test_close_facts_fin_and_rst() -> None:
    c = Conversation().handshake()
    c.fin("s")
    c.ack("c")
    c.fin("c")
    f = c.flow()
    assert (f.close.kind, f.close.by, f.close.frame) == ("fin", "both", 4)
    assert f.s.fin_frame == 4 and f.c.fin_frame == 6
    c = Conversation().handshake()
    c.rst("c")
    f = c.flow()
    assert (f.close.kind, f.close.by, f.close.frame) == ("rst", "client", 4)
    assert f.closed


def test_rst_event_details() -> None:
    c = Conversation().handshake()
    c.send("s", 300)  # 4: server data the client will never ACK
    c.send("c", 100, ack=c.next_seq("s") - 300)  # 5: client data, acks nothing new
    c.rst("c", dt=40.0)  # 6: abort after 40 s of silence
    f = c.flow()
    rst = next(e for e in f.events if e.kind == "rst")
    assert rst.direction == Direction.CLIENT and rst.frame == 6
    assert rst.details["unread_data"] == 300
    assert rst.details["bytes_in_flight"] == 100
    assert rst.details["idle"] == pytest.approx(40.0)
    assert rst.details["after_own_fin"] is False and rst.details["after_peer_fin"] is False
    assert rst.details["has_ack"] is True
    assert rst.unread_data == 300  # details read as attributes too


def test_fin_event_and_rst_after_fin() -> None:
    c = Conversation().handshake()
    c.send("c", 50)
    c.fin("c")  # 5, with 50 bytes unacked
    c.rst("s")  # 6
    f = c.flow()
    fin = next(e for e in f.events if e.kind == "fin")
    assert fin.details["bytes_in_flight"] == 50
    rst = next(e for e in f.events if e.kind == "rst")
    assert rst.details["after_peer_fin"] is True and rst.details["after_own_fin"] is False


def test_events_stay_bounded_and_every_kind_keeps_its_first() -> None:
    c = Conversation().handshake()  # syn, syn-ack, handshake-ack
    for _ in range(1200):
        c.rst("s", dt=0.001)  # a reset storm on one connection
    c.fin("c")
    f = c.flow()
    kinds = [e.kind for e in f.events]
    assert len(kinds) == MAX_EVENTS + 1 and kinds[-1] == "fin"
    assert kinds.count("rst") == MAX_EVENTS - 3
    assert f.events_dropped == 1200 - (MAX_EVENTS - 3)


def test_turns_kept_are_those_of_the_timeline_at_least() -> None:
    c = Conversation().handshake()
    for _ in range(500):
        c.send("c", 10)
        c.send("s", 20)
    f = c.flow()
    assert len(f.bursts) == 2 * BURSTS_KEPT and f.bursts_dropped == 1000 - 2 * BURSTS_KEPT
    assert f.bursts[-1].first_frame == c.frame  # the last turn
    wide = c.flow(AnalysisOptions(limits=Limits(timeline_head=300, timeline_tail=100)))
    assert len(wide.bursts) == 400 and wide.bursts[299].first_frame == 4 + 299


def test_bursts_are_request_response_turns() -> None:
    c = Conversation().handshake()
    c.send("c", 100)  # request
    c.ack("s")
    c.send("s", 1000, dt=1.5)  # late response
    c.send("s", 1000)
    c.ack("c")
    c.send("c", 100, dt=0.2)
    f = c.flow()
    assert [(b.direction, b.bytes, b.segments) for b in f.bursts] == [
        (Direction.CLIENT, 100, 1),
        (Direction.SERVER, 2000, 2),
        (Direction.CLIENT, 100, 1),
    ]
    assert f.bursts[1].gap_before == pytest.approx(1.501)
    assert "data" not in [e.kind for e in f.events]  # turns are bursts only


def test_delayed_ack_sample() -> None:
    c = Conversation().handshake()
    c.send("c", 100)  # 4: small, nothing else outstanding
    c.ack("s", dt=0.040)  # 5: lone ACK 40 ms later
    c.send("c", 100, dt=0.001)  # 6
    c.send("c", 100)  # 7: sent while 6 is outstanding: not a candidate
    c.ack("s", dt=0.040)
    f = c.flow()
    assert len(f.delayed_ack_samples) == 1
    s = f.delayed_ack_samples[0]
    assert (s.direction, s.data_frame, s.ack_frame, s.length) == (Direction.CLIENT, 4, 5, 100)
    assert s.delay == pytest.approx(0.040)


def test_delayed_ack_near_miss_piggybacked_or_fast() -> None:
    c = Conversation().handshake()
    c.send("c", 100)
    c.send("s", 100, dt=0.050)  # the response carries the ACK: not a lone ACK
    c.send("c", 100)
    c.ack("s", dt=0.005)  # quick ACK
    assert c.flow().delayed_ack_samples == []


def test_rtt_samples_skip_retransmitted_segments() -> None:
    c = Conversation().handshake(rtt=0.010)
    c.send("c", 100)  # 4
    c.ack("s", dt=0.020)  # 5: RTT sample 20 ms
    c.send("c", 100)  # 6
    c.retransmit(6, dt=0.3)  # 7
    c.ack("s", dt=0.010)  # 8: ambiguous (Karn): no sample
    f = c.flow()
    rtt = f.rtt
    assert rtt is not None
    # samples: the SYN (by the SYN-ACK), the SYN-ACK (by the client's ACK) and segment 4
    assert rtt.samples == 3
    assert rtt.min == pytest.approx(0.001) and rtt.max == pytest.approx(0.020)
    assert rtt.median == pytest.approx(0.010)
    assert f.counters().rtt == rtt


def test_timeline_head_tail_and_notes() -> None:
    opts = AnalysisOptions(limits=Limits(timeline_head=3, timeline_tail=2))
    c = Conversation().handshake()
    for _ in range(5):
        c.send("c", 10)
    c.retransmit(8, dt=0.5)  # last packet
    f = c.flow(opts)
    rows, skipped = f.timeline()
    assert [r.frame for r in rows] == [1, 2, 3, 8, 9]
    assert skipped == 4
    assert rows[-1].notes == ["retransmission"]
    assert (rows[0].seq, rows[1].seq, rows[1].ack) == (0, 0, 1)
    assert rows[3].seq == 41 and rows[3].sender == "client"


@pytest.mark.parametrize(("head", "tail"), [(100, 100), (8, 0), (3, 2), (0, 4), (0, 0)])
def test_timeline_notes_name_exactly_the_kept_flagged_frames(head: int, tail: int) -> None:
    # Whether or not rows were elided (and `timeline_state` takes its shortcut when none
    # were), each kept row carries its analysis names, and no elided frame has notes.
    c = Conversation().handshake()
    for _ in range(4):
        c.send("c", 10)
    c.retransmit(5, dt=0.3)
    c.ack("s", ack=c.next_seq("c") - 30)
    c.ack("s", ack=c.next_seq("c") - 30)  # a duplicate ACK
    c.send("s", 20, dt=0.1)
    c.retransmit(c.frame, dt=0.5)
    f = c.flow(AnalysisOptions(limits=Limits(timeline_head=head, timeline_tail=tail)))
    state = f.timeline_state()
    kept = set(timeline_frames(state))
    assert timeline_kept(state) == len(kept) == min(f.timeline_total, head + tail)
    expected: dict[int, list[str]] = {}
    for name, frames in f.analysis.items():
        for frame in frames:
            if frame in kept:
                expected.setdefault(frame, []).append(name)
    assert state[5] == expected
    if head + tail >= f.timeline_total:
        assert sorted(expected) == sorted({fr for frames in f.analysis.values() for fr in frames})
        assert {"retransmission", "duplicate-ack"} <= {n for ns in expected.values() for n in ns}


def test_to_result() -> None:
    c = Conversation(client="[2001:db8::1]:5555", server="[2001:db8::2]:443").handshake()
    c.send("c", 100)
    c.retransmit(4, dt=0.5)
    c.send("s", 200)
    c.fin("c")
    c.fin("s")
    c.ack("c")
    r = c.flow().to_result(7)
    assert r.id == 7
    assert (r.client, r.server, r.ip_version) == ("[2001:db8::1]:5555", "[2001:db8::2]:443", 6)
    assert (r.packets_client, r.packets_server) == (6, 3)
    assert (r.bytes_client, r.bytes_server) == (100, 200)  # retransmission excluded
    assert r.tcp.retransmissions == 1
    assert (r.state, r.history) == ("SF", "ShADTdFf")
    assert r.close.kind == "fin" and r.handshake.ack
    assert r.timeline is not None and len(r.timeline) == 9 and r.timeline_skipped == 0


def test_stale_segment_after_port_reuse() -> None:
    c1 = Conversation().handshake()
    c1.send("c", 100)
    c1.rst("c")
    old_seq = c1.segments[3].seq
    c2 = Conversation(client_isn=3_000_000, start=c1.time + 0.1, first_frame=c1.frame + 1)
    c2.handshake()
    c2.send("c", 100, seq=old_seq, dt=0.01)  # a late segment of the old connection
    flows = c1.run(segments=[*c1.segments, *c2.segments])
    assert len(flows) == 2
    stale = [e for e in flows[1].events if e.kind == "stale-segment"]
    assert [e.frame for e in stale] == [c2.frame]


def test_reassembly_events_gap_and_overlap() -> None:
    c = Conversation().handshake()
    c.send("c", b"a" * 100)  # 4
    c.send("c", b"b" * 100, seq=c.next_seq("c") + 50)  # 5: 50 bytes never captured
    c.ack("s")  # the server ACKs past the hole
    c.send("c", b"Z" * 100, seq=c.segments[3].seq, dt=0.3)  # 7: different bytes, same range

    class Sink:
        wants_data = True

        def __init__(self) -> None:
            self.gaps: list[tuple[int, int]] = []

        def on_data(self, direction: int, offset: int, data: bytes, frame: int, t: float) -> None:
            pass

        def on_gap(self, direction: int, offset: int, length: int, frame: int) -> None:
            self.gaps.append((offset, length))

        def on_end(self, direction: int, how: str, frame: int, t: float) -> None:
            pass

    sink = Sink()

    def on_open(flow: object) -> None:
        flow.consumer = sink  # type: ignore[attr-defined]

    f = c.run(on_open=on_open)[0]
    kinds = [e.kind for e in f.events]
    assert "gap" in kinds and "overlap-mismatch" in kinds
    assert sink.gaps == [(100, 50)]
    assert (f.gaps, f.gap_bytes) == (1, 50)
    assert "G" in f.history


class _Consumer:
    wants_data = True

    def __init__(self) -> None:
        self.data: list[tuple[int, int, bytes]] = []
        self.ends: list[tuple[int, str]] = []

    def on_data(self, direction: int, offset: int, data: bytes, frame: int, t: float) -> None:
        self.data.append((direction, offset, data))

    def on_gap(self, direction: int, offset: int, length: int, frame: int) -> None:
        pass

    def on_end(self, direction: int, how: str, frame: int, t: float) -> None:
        self.ends.append((direction, how))


def test_the_stream_consumer_is_made_at_the_first_payload_byte() -> None:
    made: list[_Consumer] = []

    def make() -> _Consumer:
        made.append(_Consumer())
        return made[-1]

    def on_open(flow: object) -> None:
        flow.make_consumer = make  # type: ignore[attr-defined]

    quiet = Conversation(client="10.0.0.1:40001")
    quiet.handshake()
    quiet.fin("c")
    quiet.fin("s")
    quiet.ack("c")
    refused = Conversation(client="10.0.0.1:40002", first_frame=100)
    refused.syn()
    refused.rst("s", ack=True)
    for c in (quiet, refused):
        flow = c.run(on_open=on_open)[0]
        assert flow.consumer is None and not made  # no byte: no consumer, none made
    talk = Conversation(client="10.0.0.1:40003", first_frame=200)
    talk.handshake()
    talk.send("c", b"hello")
    talk.send("s", b"world!")
    talk.fin("c")
    talk.fin("s")
    flow = talk.run(on_open=on_open)[0]
    assert len(made) == 1 and flow.consumer is made[0]  # one for both directions
    assert made[0].data == [(0, 0, b"hello"), (1, 0, b"world!")]
    assert sorted(made[0].ends) == [(0, "fin"), (1, "fin")]


def _run_with_tls_streams(
    sends: list[tuple[str, bytes]], server: str = "10.0.0.2:80"
) -> tuple[Flow, list[TlsStream]]:
    """A connection that sends `sends` and closes, its flow's consumers made as the engine
    makes them: the flow, and every TLS stream made for it."""
    made: list[TlsStream] = []

    def make() -> TlsStream:
        made.append(TlsStream())
        return made[-1]

    def on_open(flow: Flow) -> None:
        flow.make_consumer = make

    c = Conversation(server=server)
    c.handshake()
    for who, payload in sends:
        c.send(who, payload)
    c.fin("c")
    c.fin("s")
    return c.run(on_open=on_open)[0], made


_GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


def test_a_plain_connection_forgets_its_tls_stream() -> None:
    # HTTP: the stream decides "not TLS" on the first request, and the flow forgets it at once
    # (~2.5 KB), with the copies of delivered bytes kept for it.
    flow, made = _run_with_tls_streams(
        [("c", _GET), ("s", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), ("c", _GET)]
    )
    assert len(made) == 1 and made[0].spent and not made[0].is_tls
    assert flow.consumer is None
    assert all(r is None or (r.consumer is None and not r.storing) for r in flow._reasm)


def test_a_forgotten_stream_is_not_made_again_for_the_other_direction() -> None:
    # The client's bytes are plain text; the server's first bytes come after the flow forgot
    # the stream: they must not start a new one (which would see TLS where one stream saw
    # none). The server's bytes would look like TLS to a stream of their own.
    flow, made = _run_with_tls_streams(
        [("c", _GET), ("c", _GET), ("s", tls_record(client_hello()))]
    )
    assert len(made) == 1 and made[0].spent
    assert flow.consumer is None and flow._reasm[1] is not None


def test_near_miss_a_tls_connection_keeps_its_stream() -> None:
    # A ClientHello, then anything: the stream is TLS, and stays.
    flow, made = _run_with_tls_streams(
        [("c", tls_record(client_hello())), ("c", b"\x17\x03\x03\x00\x05hello")],
        server="10.0.0.2:443",
    )
    assert len(made) == 1 and made[0].is_tls and not made[0].spent
    assert flow.consumer is made[0] and made[0].client_hello is not None


def test_per_packet_endpoint_facts_are_none_until_seen() -> None:
    c = Conversation()
    c.syn()
    flow = c.run()[0]
    server = flow.s
    assert server.packets == 0
    assert (server.last_frame, server.last_time, server.window) == (None, None, None)
    assert (server.last_data_frame, server.last_data_time) == (None, None)
    assert (server.ts_val, server.ts_ecr) == (None, None)
    client = flow.c
    assert client.last_frame == 1 and client.window is not None
    assert client.last_data_frame is None
