"""Data-transfer rules (data transfer and zero windows) and the per-packet
findings: trigger and near miss for each."""

from __future__ import annotations

import pytest

from tcpdiag.config import Thresholds
from tcpdiag.findings import tcp_rules
from tcpdiag.model import TcpOptions
from tcpdiag.result import Finding, Severity
from tests.craft import Conversation
from tests.unit.rules_craft import diagnose, names, only

# -- delayed-ack-stall -----------------------------------------------------------------------


def _write_write_read(c: Conversation, ack_delay: float, rounds: int = 3) -> Conversation:
    """Header and body written separately; Nagle holds the body until the header's ACK."""
    c.handshake()
    for _ in range(rounds):
        c.send("c", 50, dt=0.01)
        if ack_delay:
            c.ack("s", dt=ack_delay)  # the receiver's delayed ACK
            c.send("c", 50, dt=0.0001)  # the body leaves right after it
        else:
            c.send("c", 50, dt=0.0001)  # TCP_NODELAY: no wait
        c.send("s", 100, dt=0.0005)
        c.ack("c", dt=0.0001)
    return c


def test_delayed_ack_stall_linux_40ms() -> None:
    f = only(diagnose(_write_write_read(Conversation(), 0.040)), "delayed-ack-stall")
    assert f.severity.label == "warning" and f.count == 3
    assert "3 stalls of 40 ms (median 40 ms, 120 ms in all)" in f.message
    assert "10.0.0.1:40000 waited for the ACK of a small segment" in f.message
    assert "Linux receiver's delayed ACK (~40 ms)" in f.message
    assert "TCP_NODELAY" in f.message
    assert f.frames == (4, 5, 9, 10, 14, 15)


def test_delayed_ack_stall_200ms_elsewhere() -> None:
    f = only(diagnose(_write_write_read(Conversation(), 0.200)), "delayed-ack-stall")
    assert "~200 ms delayed ACK" in f.message


def test_near_miss_tcp_nodelay_traffic() -> None:
    assert "delayed-ack-stall" not in names(diagnose(_write_write_read(Conversation(), 0.0)))


def test_near_miss_slow_server_is_not_a_stall() -> None:
    # The late ACK is followed by the server's answer, not by more client data.
    c = Conversation().handshake()
    for _ in range(3):
        c.send("c", 50, dt=0.01)
        c.ack("s", dt=0.040)
        c.send("s", 100, dt=0.02)
        c.ack("c")
    assert "delayed-ack-stall" not in names(diagnose(c))


def test_stall_count_threshold() -> None:
    c = _write_write_read(Conversation(), 0.040, rounds=1)
    assert "delayed-ack-stall" not in names(diagnose(c))
    assert "delayed-ack-stall" in names(diagnose(c, Thresholds(stall_min_count=1)))


# -- late-response ---------------------------------------------------------------------------


def test_late_response_after_next_request() -> None:
    c = Conversation().handshake()
    c.send("c", 20, dt=0.01)
    c.ack("s", dt=0.04)
    c.send("c", 20, dt=2.0)  # the client gave up and sent its next request
    c.ack("s", dt=0.04)
    c.send("s", 30, dt=0.5)  # the late answer to the first one
    c.ack("c")
    f = only(diagnose(c), "late-response")
    assert f.severity.label == "warning"
    assert "10.0.0.2:80 answered (frame 8) 2.6 s after the request of frame 4" in f.message
    assert "(frame 6)" in f.message and "heuristic" in f.message


def test_near_miss_slow_but_in_order_answers() -> None:
    c = Conversation().handshake()
    c.send("c", 20, dt=0.01)
    c.send("s", 30, dt=2.0)
    c.ack("c")
    c.send("c", 20)
    c.send("s", 30, dt=2.0)
    c.ack("c")
    assert "late-response" not in names(diagnose(c))


# -- zero-window and window-full -------------------------------------------------------------


def test_zero_window_with_probes_and_stall_time() -> None:
    c = Conversation().handshake()
    c.send("c", 50)
    c.send("s", 1000)
    c.ack("c", window=0)
    for dt in (0.2, 0.4):
        c.ack("s", dt=dt, seq=c.next_seq("s") - 1)  # Linux's zero-window probe
        c.ack("c", window=0)
    c.ack("c", dt=1.0, window=65535)  # window update
    c.send("s", 500)
    c.ack("c")
    f = only(diagnose(c), "zero-window")
    assert f.severity.label == "warning"
    assert f.frames == (6, 8, 10) and f.count == 3
    assert "10.0.0.1:40000 advertised a zero window 3 times (1 period, 1.6 s in all)" in f.message
    assert "10.0.0.2:80 sent 2 window probes" in f.message
    assert "stopped reading" in f.message


def test_zero_window_still_closed_at_the_end() -> None:
    c = Conversation().handshake()
    c.send("c", 50)
    c.send("s", 1000)
    c.ack("c", window=0)
    f = only(diagnose(c, now=c.time + 2.0), "zero-window")
    assert "2.0 s in all, still zero at the end" in f.message


def test_zero_window_periods_add_up_with_the_open_one() -> None:
    c = Conversation().handshake()
    c.send("c", 50)
    for _ in range(3):  # closed 0.5 s, then open again
        c.send("s", 1000)
        c.ack("c", window=0)
        c.ack("c", dt=0.5, window=65535)
    c.send("s", 1000)
    c.ack("c", window=0)  # closed again until the end, 2 s later
    f = only(diagnose(c, now=c.time + 2.0), "zero-window")
    assert "4 times (4 periods, 3.5 s in all, still zero at the end)" in f.message


def test_near_miss_small_but_open_window() -> None:
    c = Conversation().handshake()
    c.send("c", 50)
    c.send("s", 1000)
    c.ack("c", window=10)
    assert "zero-window" not in names(diagnose(c))


def test_window_full() -> None:
    c = Conversation(window=1000).handshake()
    c.send("c", 10)
    c.send("s", 500)
    c.send("s", 500)
    c.ack("c", dt=0.01)
    f = only(diagnose(c), "window-full")
    assert f.frames == (6,) and f.severity.label == "warning"


def test_near_miss_window_not_filled() -> None:
    c = Conversation(window=1000).handshake()
    c.send("c", 10)
    c.send("s", 500)
    c.ack("c", dt=0.01)
    assert "window-full" not in names(diagnose(c))


# -- retransmissions and the other per-packet analyses -----------------------------------------


def _bulk(c: Conversation, segments: int, resent: int) -> Conversation:
    c.handshake()
    c.send("c", 10)
    for i in range(segments):
        s = c.send("s", 1000)
        if i < resent:
            c.retransmit(s.frame, dt=0.2)
        c.ack("c")
    return c


def test_retransmission_info_at_one_percent() -> None:
    f = only(diagnose(_bulk(Conversation(), 100, 1)), "retransmission")
    assert f.severity is Severity.INFO and f.count == 1
    assert "1 of 102 data segments were sent again: 1.0% loss" in f.message


def test_retransmission_warning_above_one_percent() -> None:
    f = only(diagnose(_bulk(Conversation(), 100, 3)), "retransmission")
    assert f.severity is Severity.WARNING and f.count == 3
    assert "lost on the path" in f.message


def test_retransmission_ratio_is_configurable() -> None:
    c = _bulk(Conversation(), 100, 3)
    f = only(diagnose(c, Thresholds(retransmission_warning_ratio=0.05)), "retransmission")
    assert f.severity is Severity.INFO


def test_near_miss_no_retransmission() -> None:
    assert "retransmission" not in names(diagnose(_bulk(Conversation(), 20, 0)))


def test_fast_retransmission_and_duplicate_acks() -> None:
    c = Conversation().handshake()
    c.send("c", 10)
    first = c.send("s", 1000)
    lost = c.send("s", 1000)
    for _ in range(3):
        c.send("s", 1000)
    for _ in range(4):
        c.ack("c", ack=first.seq + 1000)
    c.retransmit(lost.frame, dt=0.001)
    c.ack("c")
    found = diagnose(c)
    dup = only(found, "duplicate-ack")
    assert dup.frames == (11, 12, 13) and dup.count == 3
    assert "3 duplicate ACKs" in dup.message
    fast = only(found, "fast-retransmission")
    assert fast.frames == (14,)
    assert only(found, "retransmission").frames == (14,)


def test_spurious_retransmission_is_not_loss() -> None:
    c = Conversation().handshake()
    c.send("c", 10)
    d = c.send("s", 100)
    c.ack("c")
    c.retransmit(d.frame, dt=0.2)
    found = diagnose(c)
    assert only(found, "spurious-retransmission").frames == (7,)
    r = only(found, "retransmission")
    assert r.severity is Severity.INFO and "nothing was actually lost" in r.message


def test_out_of_order_and_previous_segment_lost() -> None:
    c = Conversation().handshake()
    c.send("c", 10)
    x = c.next_seq("s")
    c.send("s", 100, seq=x + 100, advance=False)
    c.send("s", 100, seq=x, dt=0.0001, advance=False)
    c.sides[1].nxt = x + 200
    c.ack("c")
    found = diagnose(c)
    assert only(found, "previous-segment-lost").frames == (5,)
    assert only(found, "out-of-order").frames == (6,)
    # the receiver got everything: no capture loss
    assert "capture-packet-loss" not in names(found)


def test_keep_alive() -> None:
    c = Conversation().handshake()
    c.send("c", 10)
    c.send("s", 10)
    c.ack("c")
    c.send("c", 0, seq=c.next_seq("c") - 1, dt=75.0, advance=False, flags=0)
    c.ack("s")
    f = only(diagnose(c), "keep-alive")
    assert f.frames == (7,) and f.severity.label == "info"
    assert "retransmission" not in names(diagnose(c))


def test_per_packet_findings_list_every_frame_of_the_flow_analysis() -> None:
    c = Conversation().handshake()
    c.send("c", 10)
    first = c.send("s", 1000)
    lost = c.send("s", 1000)
    for _ in range(3):
        c.send("s", 1000)
    for _ in range(4):
        c.ack("c", ack=first.seq + 1000)
    c.retransmit(lost.frame, dt=0.001)
    c.ack("c")
    flow = c.flow()
    found = {f.name: f for f in tcp_rules.diagnose(flow, Thresholds())}
    for name, frames in flow.analysis.items():
        if name in found:
            assert list(found[name].frames) == sorted(set(frames)), name
            assert found[name].count == len(frames), name


@pytest.mark.parametrize("name", [row[0] for row in tcp_rules._PER_PACKET])
def test_per_packet_names_are_registered(name: str) -> None:
    from tcpdiag.findings.registry import REGISTRY

    assert name in REGISTRY


def test_packets_captured_twice_are_not_reported_as_loss() -> None:
    c = Conversation().handshake()
    c.send("c", 10)
    for _ in range(10):
        s = c.send("s", 1000)
        c.retransmit(s.frame, dt=0.00002, ack=s.ack)  # the same packet, captured again
        c.ack("c")
    found = diagnose(c)
    f = only(found, "retransmission")
    assert f.severity is Severity.INFO
    assert "all 10 are packets captured twice" in f.message
    assert "not resends on the network" in f.message
    dup = only(found, "capture-duplicate-packets")
    assert "less than 1.0 ms later" in dup.message and dup.count == 10


def test_near_miss_a_resend_within_a_millisecond_with_its_own_ip_id_is_loss() -> None:
    """A sender numbers every IP packet: resent 20 us later (as on a fast local link, where a
    duplicate ACK comes back within microseconds), each segment is still a real resend."""
    c = Conversation().handshake()
    c.send("c", 10)
    for i in range(10):
        s = c.send("s", 1000, ip_id=100 + 2 * i)
        c.retransmit(s.frame, dt=0.00002, ack=s.ack, ip_id=101 + 2 * i)
        c.ack("c")
    found = diagnose(c)
    assert "capture-duplicate-packets" not in names(found)
    f = only(found, "retransmission")
    assert f.severity is Severity.WARNING and "captured twice" not in f.message


def _duplicate_ack_train(ip_ids: list[int], sack: bool) -> list[Finding]:
    """An ACK and three duplicates of it sent back to back, 0.1 ms apart (a receiver answering
    a burst after a hole), with these IP IDs; with `sack`, each duplicate reports one more
    out-of-order segment in its first SACK block (RFC 2018), as Linux and Windows do."""
    c = Conversation().handshake()
    c.send("c", 10)
    first = c.send("s", 1000)
    c.send("s", 1000)  # lost
    later = [c.send("s", 1000, dt=0.0001) for _ in range(3)]
    c.ack("c", ack=first.seq + 1000, ip_id=ip_ids[0])
    for ip_id, seg in zip(ip_ids[1:], later, strict=True):
        blocks = ((later[0].seq, (seg.seq + 1000) & 0xFFFFFFFF),) if sack else ()
        c.ack("c", ack=first.seq + 1000, dt=0.0001, ip_id=ip_id, options=TcpOptions(sack=blocks))
    return diagnose(c)


def test_duplicate_acks_captured_twice_are_called_copies() -> None:
    # tcp-any-bridge-duplicates (recorded here): every packet twice, with its IP ID.
    found = _duplicate_ack_train([7, 7, 7, 7], sack=False)
    dup = only(found, "duplicate-ack")
    assert dup.frames == (11, 12, 13)
    assert "all 3 are packets captured twice (frames 11, 12, 13" in dup.message
    assert "copies made by the capture, not a receiver asking" in dup.message
    copies = only(found, "capture-duplicate-packets")
    assert copies.frames == (11, 12, 13)
    assert "3 of the flow's duplicate ACKs are such copies" in copies.message


@pytest.mark.parametrize(
    ("ip_ids", "sack"),
    [
        ([7, 8, 9, 10], False),  # IPv4 without SACK: the sender's IP IDs
        ([0, 0, 0, 0], True),  # IPv6 (no IP ID) with SACK: the block's edge moves
    ],
)
def test_near_miss_a_train_of_real_duplicate_acks_is_not_copies(
    ip_ids: list[int], sack: bool
) -> None:
    # tcp-retransmissions (recorded here): duplicate ACKs 7-40 us apart, each its own IP ID
    # and SACK edge.
    found = _duplicate_ack_train(ip_ids, sack)
    dup = only(found, "duplicate-ack")
    assert dup.frames == (11, 12, 13)
    assert "the receiver is missing a segment and asks for it again" in dup.message
    assert "capture-duplicate-packets" not in names(found)


def test_single_retransmission_in_a_tiny_flow_stays_info() -> None:
    # tls12-ecdhe-full (public): 1 resend among 11 data segments is "9 %", but one segment
    # says nothing about the path: at least 2 lost segments before the percentage applies.
    f = only(diagnose(_bulk(Conversation(), 10, 1)), "retransmission")
    assert f.severity is Severity.INFO
    assert "a single lost segment: too few to say the path is lossy" in f.message


def test_near_miss_two_retransmissions_in_a_tiny_flow_warn() -> None:
    f = only(diagnose(_bulk(Conversation(), 10, 2)), "retransmission")
    assert f.severity is Severity.WARNING and "lost on the path" in f.message


def test_conversation_captured_again_later_is_a_capture_artefact() -> None:
    # vlan-qinq-same-flow-x3 (public): the same packets seen on another VLAN 50 ms later.
    c = Conversation().handshake()
    first = [c.send("c", 100), c.send("s", 1000), c.ack("c"), c.send("s", 500), c.ack("c")]
    for seg in first:
        c.retransmit(seg.frame, at=seg.time + 0.05, ack=seg.ack)
    found = diagnose(c)
    dup = only(found, "capture-duplicate-packets")
    assert "repeat the conversation exactly 50 ms later, from both sides" in dup.message
    r = only(found, "retransmission")
    assert r.severity is Severity.INFO and "captured twice" in r.message


def test_near_miss_timeout_resends_of_one_side_are_not_duplicates() -> None:
    # Equal RTO offsets from one sender only: real retransmissions, not a replayed capture.
    found = diagnose(_bulk(Conversation(), 100, 3))
    assert "capture-duplicate-packets" not in names(found)
    assert only(found, "retransmission").severity is Severity.WARNING


def test_zero_window_only_after_the_peers_fin_is_info() -> None:
    # tcp-zero-window-small (public): the last ACK, after both FINs, advertises window 0.
    c = Conversation().handshake()
    c.send("c", 100)
    c.send("s", 100, dt=0.01)
    c.fin("c", dt=0.01)
    c.fin("s")
    c.ack("c", window=0)
    found = diagnose(c)
    f = only(found, "zero-window")
    assert f.severity is Severity.INFO and "only after 10.0.0.2:80's FIN" in f.message


def test_near_miss_zero_window_before_the_fin_is_a_warning() -> None:
    c = Conversation().handshake()
    c.send("c", 100)
    c.send("s", 100, dt=0.01)
    c.ack("c", window=0)
    c.ack("c", window=65535, dt=1.0)
    c.fin("c", dt=0.01)
    c.fin("s")
    c.ack("c")
    f = only(diagnose(c), "zero-window")
    assert f.severity is Severity.WARNING
