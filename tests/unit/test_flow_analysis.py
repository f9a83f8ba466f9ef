"""Wireshark's per-segment TCP analysis flags on crafted ladders, each with a near miss."""

from __future__ import annotations

import pytest

from tcpdiag.flow import Flow
from tests.craft import Conversation


def flagged(flow: Flow, name: str) -> list[int]:
    return flow.analysis.get(name, [])


def dup_ack_numbers(c: Conversation) -> dict[int, int]:
    """Wireshark's duplicate-ACK number ("#n") of each frame flagged duplicate-ack: the
    sender's count right after that frame, from a flow of the segments up to it."""
    numbers = {}
    for i, seg in enumerate(c.segments):
        f = c.run(segments=c.segments[: i + 1])[0]
        if seg.frame in flagged(f, "duplicate-ack"):
            numbers[seg.frame] = f.endpoint(f.direction_of(seg.src, seg.sport)).ws_dupacknum
    return numbers


def established(rtt: float = 0.010, **kw: object) -> Conversation:
    return Conversation(**kw).handshake(rtt)  # type: ignore[arg-type]


# -- retransmission family -------------------------------------------------------------------


def test_retransmission() -> None:
    c = established()
    c.send("c", 100)  # 4
    c.retransmit(4, dt=0.5)  # 5
    f = c.flow()
    assert flagged(f, "retransmission") == [5]
    assert f.counters().retransmissions == 1
    assert f.c.retransmissions == 1


def test_retransmission_near_miss_new_data() -> None:
    c = established()
    c.send("c", 100)
    c.send("c", 100, dt=0.5)
    assert flagged(c.flow(), "retransmission") == []


def test_syn_retransmission_is_a_retransmission_and_counted() -> None:
    c = Conversation()
    c.syn()
    c.syn(dt=1.0)
    c.syn(dt=2.0)
    f = c.flow()
    assert flagged(f, "retransmission") == [2, 3]
    assert f.handshake.syn_retransmissions == 2
    assert f.handshake.syn_frames == [1, 2, 3]
    assert f.state == "S0"


def test_fast_retransmission() -> None:
    c = established()
    a = c.send("c", 100)  # 4
    c.send("c", 100)  # 5
    c.send("c", 100)  # 6
    # the SYN-ACK already acknowledged segment 4's start: each of these repeats it
    c.ack("s", ack=a.seq)  # 7: dup #1
    c.ack("s", ack=a.seq)  # 8: dup #2
    c.ack("s", ack=a.seq)  # 9: dup #3
    c.retransmit(4, dt=0.005)  # 10
    f = c.flow()
    assert flagged(f, "duplicate-ack") == [7, 8, 9]
    assert dup_ack_numbers(c) == {7: 1, 8: 2, 9: 3}
    assert flagged(f, "fast-retransmission") == [10]
    # tshark's tcp.analysis.retransmission is set on fast retransmissions too
    assert flagged(f, "retransmission") == [10]


def test_fast_retransmission_near_miss_too_late() -> None:
    c = established()
    a = c.send("c", 100)
    c.send("c", 100)
    c.ack("s", ack=a.seq)
    c.ack("s", ack=a.seq)
    c.ack("s", ack=a.seq)
    c.retransmit(4, dt=0.050)  # 50 ms after the last dup ACK: not "fast"
    f = c.flow()
    assert flagged(f, "fast-retransmission") == []
    assert flagged(f, "retransmission") == [9]


def test_fast_retransmission_near_miss_one_dup_ack() -> None:
    c = established()
    a = c.send("c", 100)
    c.send("c", 100)
    c.ack("s", ack=a.seq)  # only one duplicate (of the SYN-ACK's ACK)
    c.retransmit(4, dt=0.005)
    assert flagged(c.flow(), "fast-retransmission") == []


def test_spurious_retransmission() -> None:
    c = established()
    c.send("c", 100)  # 4
    c.ack("s")  # 5: acks it
    c.retransmit(4, dt=0.3)  # 6
    f = c.flow()
    assert flagged(f, "spurious-retransmission") == [6]
    assert flagged(f, "retransmission") == [6]


def test_spurious_near_miss_not_acked() -> None:
    c = established()
    c.send("c", 100)
    c.retransmit(4, dt=0.3)
    f = c.flow()
    assert flagged(f, "spurious-retransmission") == []
    assert flagged(f, "retransmission") == [5]


def test_out_of_order_and_previous_segment_lost() -> None:
    c = established(rtt=0.050)
    start = c.next_seq("c")
    c.send("c", 100, seq=start + 100)  # 4: skips 100 bytes
    c.send("c", 100, seq=start, dt=0.001)  # 5: the earlier segment, 1 ms later
    f = c.flow()
    assert flagged(f, "previous-segment-lost") == [4]
    assert flagged(f, "out-of-order") == [5]
    assert flagged(f, "retransmission") == []


def test_out_of_order_near_miss_late_is_retransmission() -> None:
    c = established(rtt=0.010)
    start = c.next_seq("c")
    c.send("c", 100, seq=start + 100)
    c.send("c", 100, seq=start, dt=0.5)  # long after: a retransmission
    f = c.flow()
    assert flagged(f, "out-of-order") == []
    assert flagged(f, "retransmission") == [5]


def test_previous_segment_lost_near_miss_contiguous_and_rst() -> None:
    c = established()
    c.send("c", 100)
    c.send("c", 100)
    c.rst("c", seq=c.next_seq("c") + 5000)  # RSTs are never "previous segment lost"
    assert flagged(c.flow(), "previous-segment-lost") == []


def test_acked_unseen_segment() -> None:
    c = established()
    c.send("c", 100)  # 4
    c.ack("s", ack=c.next_seq("c") + 500)  # 5: acks bytes never seen
    f = c.flow()
    assert flagged(f, "acked-unseen-segment") == [5]


def test_acked_unseen_near_miss_exact_ack() -> None:
    c = established()
    c.send("c", 100)
    c.ack("s")
    assert flagged(c.flow(), "acked-unseen-segment") == []


# -- ACK and window flags --------------------------------------------------------------------


def test_duplicate_ack_numbering_and_reset() -> None:
    c = established()
    c.send("s", 100)  # 4
    c.ack("c")  # 5
    c.ack("c")  # 6 dup #1
    c.ack("c")  # 7 dup #2
    c.send("s", 100)  # 8
    c.ack("c")  # 9 new ACK value: counter resets
    c.ack("c")  # 10 dup #1
    f = c.flow()
    assert flagged(f, "duplicate-ack") == [6, 7, 10]
    assert dup_ack_numbers(c) == {6: 1, 7: 2, 10: 1}


def test_duplicate_ack_near_miss_window_changed() -> None:
    c = established()
    c.ack("s", window=30000)  # 4: repeats the SYN-ACK's ACK with a new window
    f = c.flow()
    assert flagged(f, "duplicate-ack") == []
    assert flagged(f, "window-update") == [4]


def test_zero_window() -> None:
    c = established()
    c.send("c", 100)
    c.ack("s", window=0)  # 5
    f = c.flow()
    assert flagged(f, "zero-window") == [5]
    assert f.s.zero_window_count == 1
    assert f.s.zero_windows == 1 and f.s.in_zero_window
    assert f.s.zero_window_since == f.s.zero_window_first == pytest.approx(0.013)
    assert f.s.zero_window_stalled == 0.0


def test_zero_window_near_miss_rst() -> None:
    c = established()
    c.rst("s", window=0)
    assert flagged(c.flow(), "zero-window") == []


def test_zero_window_period_closes_on_window_update() -> None:
    c = established()
    c.send("c", 100)
    c.ack("s", window=0)  # 5
    c.ack("s", window=8000, dt=0.2)  # 6
    f = c.flow()
    assert f.s.zero_windows == 1 and not f.s.in_zero_window
    assert f.s.zero_window_first == pytest.approx(0.013)
    assert f.s.zero_window_stalled == pytest.approx(0.2)
    assert flagged(f, "window-update") == [6]


def test_zero_window_probe_and_ack() -> None:
    c = established()
    c.send("c", 100)
    c.ack("s", window=0)  # 5
    c.send("c", 1, dt=0.2)  # 6: one byte into the closed window
    c.ack("s", window=0, ack=c.next_seq("c") - 1)  # 7: probe ACK (the byte is not taken)
    f = c.flow()
    assert flagged(f, "zero-window-probe") == [6]
    assert flagged(f, "zero-window-probe-ack") == [7]
    assert flagged(f, "retransmission") == []


def test_zero_window_probe_near_miss_open_window() -> None:
    c = established()
    c.send("c", 100)
    c.ack("s")
    c.send("c", 1)  # window is open: plain new data
    assert flagged(c.flow(), "zero-window-probe") == []


def test_linux_zero_window_probe_is_not_a_keep_alive() -> None:
    # Linux probes with seq = snd_una - 1 and no payload (docs/wireshark-differences.md).
    c = established()
    c.send("c", 100)
    c.ack("s", window=0)  # 5
    c.ack("c", seq=c.next_seq("c") - 1, dt=0.2)  # 6
    c.ack("s", window=0)  # 7
    f = c.flow()
    assert flagged(f, "zero-window-probe") == [6]
    assert flagged(f, "keep-alive") == []
    assert flagged(f, "zero-window-probe-ack") == [7]


def test_keep_alive_and_ack() -> None:
    c = established()
    c.send("c", 100)
    c.ack("s")
    c.ack("c", seq=c.next_seq("c") - 1, dt=60.0)  # 6: keep-alive (seq one below nextseq)
    c.ack("s")  # 7: its ACK
    f = c.flow()
    assert flagged(f, "keep-alive") == [6]
    assert flagged(f, "keep-alive-ack") == [7]
    assert flagged(f, "retransmission") == []
    assert flagged(f, "duplicate-ack") == []


def test_keep_alive_with_one_garbage_byte_is_not_a_retransmission() -> None:
    c = established()
    c.send("c", 100)
    c.ack("s")
    c.send("c", b"\x00", seq=c.next_seq("c") - 1, dt=60.0)
    f = c.flow()
    assert flagged(f, "keep-alive") == [6]
    assert flagged(f, "retransmission") == []


def test_keep_alive_near_miss_in_sequence() -> None:
    c = established()
    c.send("c", 100)
    c.ack("s")
    c.ack("c", dt=60.0)  # seq = nextseq: just an ACK
    assert flagged(c.flow(), "keep-alive") == []


def test_window_full() -> None:
    c = established()  # no window scaling negotiated
    c.ack("s", window=1000)  # 4: server allows 1000 bytes
    c.send("c", 600)  # 5
    c.send("c", 400)  # 6: lands exactly on the right edge
    f = c.flow()
    assert flagged(f, "window-full") == [6]


def test_window_full_near_miss_short_of_edge() -> None:
    c = established()
    c.ack("s", window=1000)
    c.send("c", 999)
    assert flagged(c.flow(), "window-full") == []


def test_window_full_unknown_scale_never_fires() -> None:
    c = Conversation()  # no handshake captured: the scale is unknown
    c.ack("s", window=1000)
    c.send("c", 1000)
    assert flagged(c.flow(), "window-full") == []


def test_window_scale_applies_after_first_ack() -> None:
    c = Conversation(wscale=2).handshake()
    c.ack("s", window=250)  # 4: 250 << 2 = 1000 bytes
    c.send("c", 1000)  # 5
    f = c.flow()
    assert flagged(f, "window-full") == [5]
    assert f.s.wscale == 2
    rows, _ = f.timeline()
    assert rows[3].window == 1000


def test_port_reused_flag_on_new_syn() -> None:
    c = established()
    c.send("c", 10)
    c.fin("c")
    c.fin("s")
    c.ack("c")
    c2 = Conversation(client_isn=900_000, start=c.time + 1.0, first_frame=c.frame + 1)
    c2.handshake()
    flows = c.run(segments=[*c.segments, *c2.segments])
    assert [f.id for f in flows] == [1, 2]
    assert flows[1].analysis["port-reused"] == [c.frame + 1]
    assert flows[1].port_reused and flows[1].prev_close_time == c.time
    assert "port-reused" not in flows[0].analysis
