"""RTT samples from the unacked-segment list (Karn's rule) against a plain model of the rule.

The engine keeps each side's unacknowledged segments in a list whose spent entries it passes
over and fills again (`Endpoint.unacked_head` / `unacked_tail`). The model below keeps them the
plain way, a list it appends to and pops from the front, as the engine did before: the samples
must be the same, in the same order, whatever the sending, ACKing and resending."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag.flow import FlowTable
from tcpdiag.flow.endpoint import MAX_UNACKED
from tcpdiag.flow.flow import UNACKED_KEPT, Flow
from tcpdiag.flow.seq import MASK, seq_gt, seq_le
from tcpdiag.model import ACK, FIN, SYN, Segment
from tests.craft import Conversation


@dataclass
class _Entry:
    seq: int
    nxt: int
    time: float
    ambiguous: bool


def _model_samples(segments: list[Segment], retransmitted: set[int], client: bytes) -> list[float]:
    """The samples of the rule as stated: a new highest ACK from one side consumes the other
    side's fully acknowledged entries from the front, a sample for the one it acknowledges
    exactly unless resent; a partially acknowledged entry starts at the ACK. Then the segment's
    own entry (data, SYN or FIN), and a resend marks every entry it overlaps."""
    pending: tuple[list[_Entry], list[_Entry]] = ([], [])
    highest = [-1, -1]
    samples: list[float] = []
    for seg in segments:
        d = 0 if seg.src == client else 1
        if seg.flags & ACK and (highest[d] < 0 or seq_gt(seg.ack, highest[d])):
            highest[d] = seg.ack
            theirs = pending[1 - d]
            while theirs:
                item = theirs[0]
                if seq_le(item.nxt, seg.ack):
                    theirs.pop(0)
                    if item.nxt == seg.ack and not item.ambiguous and seg.time >= item.time:
                        samples.append(seg.time - item.time)
                    continue
                if seq_gt(seg.ack, item.seq):
                    item.seq = seg.ack
                break
        syn_fin = 1 if seg.flags & (SYN | FIN) else 0
        if seg.length or syn_fin:
            mine = pending[d]
            resent = seg.frame in retransmitted
            if len(mine) < MAX_UNACKED:
                nxt = (seg.seq + seg.length + syn_fin) & MASK
                mine.append(_Entry(seg.seq, nxt, seg.time, resent))
            if resent:
                end = (seg.seq + max(seg.length, 1)) & MASK
                for item in mine:
                    if seq_gt(end, item.seq) and seq_gt(item.nxt, seg.seq):
                        item.ambiguous = True
    return samples


# One step of the client's upload: send `n` bytes, the server ACKs (all, a boundary, the middle
# of a segment), or the client resends its oldest unacknowledged segment.
_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 1460)),
        st.tuples(st.just("ack"), st.integers(0, 100)),
        st.tuples(st.just("resend"), st.just(0)),
        st.tuples(st.just("reply"), st.integers(1, 300)),
    ),
    max_size=120,
)


def _conversation(steps: list[tuple[str, int]]) -> Conversation:
    c = Conversation().handshake(rtt=0.010)
    sent: list[Segment] = []  # the client's data segments, in order
    acked = c.next_seq("c")  # the highest ACK the server sent
    for i, (what, value) in enumerate(steps):
        dt = 0.001 + (i % 7) * 0.003
        if what == "send":
            sent.append(c.send("c", value, dt=dt))
        elif what == "ack":
            # somewhere between what was ACKed and all the client sent, boundaries likely
            span = (c.next_seq("c") - acked) & MASK
            point = span if value >= 60 else span * value // 60
            acked = (acked + point) & MASK
            c.ack("s", ack=acked, dt=dt)
        elif what == "resend":
            oldest = next((s for s in sent if seq_gt((s.seq + s.length) & MASK, acked)), None)
            if oldest is not None:
                c.retransmit(oldest.frame, dt=dt)
        else:  # the server answers with data, ACKing everything
            c.send("s", value, dt=dt)
            acked = c.next_seq("c")
    c.ack("s", dt=0.002)
    return c


def _samples(flow: Flow) -> list[float]:
    return list(flow.rtt_values())


@settings(max_examples=300, deadline=None)
@given(_STEPS)
def test_samples_match_the_plain_list(steps: list[tuple[str, int]]) -> None:
    c = _conversation(steps)
    flow = c.flow()
    retransmitted = set(flow.frames("retransmission"))
    expected = _model_samples(c.segments, retransmitted, c.segments[0].src)
    assert _samples(flow) == expected


def test_a_long_exchange_reuses_its_entries() -> None:
    # 300 request/response turns: one entry in flight at a time, filled again each turn.
    c = Conversation().handshake(rtt=0.010)
    for _ in range(300):
        c.send("c", 100, dt=0.001)
        c.send("s", 200, dt=0.020)
    table = FlowTable()
    flow = None
    for seg in c.segments:
        flow = table.add(seg)
    assert flow is not None
    assert flow.c.unacked is not None and flow.s.unacked is not None
    assert len(flow.c.unacked) == 1 and len(flow.s.unacked) == 1
    table.finish()
    # the SYN, the SYN-ACK, then each request (by its response) and each response (by the next
    # request, all but the last one, which nothing acknowledges)
    assert len(flow.rtt_values()) == 2 + 300 + 299


def test_spent_entries_move_behind_the_live_ones() -> None:
    # Ten segments in flight, six acknowledged, one more sent: the list is full and more than
    # half spent, so the live entries move to its front; the samples are still the model's.
    c = Conversation().handshake(rtt=0.010)
    first = [c.send("c", 100, dt=0.001) for _ in range(10)]
    c.ack("s", ack=(first[5].seq + 100) & MASK, dt=0.030)
    c.send("c", 100, dt=0.001)
    c.ack("s", ack=(first[8].seq + 50) & MASK, dt=0.030)  # the middle of the ninth
    c.ack("s", dt=0.030)  # everything
    flow = c.flow()
    expected = _model_samples(c.segments, set(), c.segments[0].src)
    assert _samples(flow) == expected
    # the SYN, the SYN-ACK, the sixth segment and the last one
    assert [round(s, 6) for s in expected[2:]] == [0.034, 0.06]


def test_a_burst_in_flight_is_not_kept_once_acknowledged() -> None:
    # 500 segments in flight, then all acknowledged: the side keeps UNACKED_KEPT spent entries
    # to fill again, not 500; the samples are still the model's.
    c = Conversation().handshake(rtt=0.010)
    for _ in range(500):
        c.send("c", 100, dt=0.0001)
    c.ack("s", dt=0.030)
    c.send("c", 100, dt=0.001)
    table = FlowTable()
    flow = None
    for seg in c.segments:
        flow = table.add(seg)
    assert flow is not None and flow.c.unacked is not None
    assert len(flow.c.unacked) == UNACKED_KEPT
    assert flow.c.unacked_tail - flow.c.unacked_head == 1  # the last segment, in flight
    c.ack("s", dt=0.020)
    done = c.flow()
    assert _samples(done) == _model_samples(c.segments, set(), c.segments[0].src)
