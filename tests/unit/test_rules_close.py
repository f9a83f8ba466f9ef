"""Teardown rules (scenarios.md, "Teardown"): trigger and near miss for each finding."""

from __future__ import annotations

from tcpdiag.config import Thresholds
from tests.craft import Conversation
from tests.unit.rules_craft import diagnose, names, only, results


def _exchange(c: Conversation) -> Conversation:
    c.handshake()
    c.send("c", 78)
    c.send("s", 100, dt=0.01)
    c.ack("c")
    return c


def _orderly(c: Conversation) -> Conversation:
    c.fin("c", dt=0.01)
    c.fin("s")
    c.ack("c")
    return c


def test_orderly_close_has_no_close_finding() -> None:
    c = _orderly(_exchange(Conversation()))
    found = diagnose(c)
    assert found == []
    flows, _ = results(c)
    assert flows[0].verdict.startswith("ok: 178 bytes in ")
    assert flows[0].verdict.endswith("closed by both sides (FIN)")


# -- reset-mid-stream ------------------------------------------------------------------------


def test_reset_mid_stream_with_bytes_in_flight() -> None:
    c = _exchange(Conversation())
    c.send("s", 1448)
    c.rst("s", dt=0.001)
    f = only(diagnose(c), "reset-mid-stream")
    assert f.severity.label == "error"
    assert "10.0.0.2:80 reset the connection (frame 8)" in f.message
    assert "1,448 bytes it had sent still unacknowledged" in f.message


def test_reset_after_round_idle_suggests_nat_timeout() -> None:
    c = _exchange(Conversation())
    c.send("c", 78, dt=300.0)
    c.rst("s", dt=0.0002)
    f = only(diagnose(c), "reset-mid-stream")
    assert "after 300 s (5.0 min) of silence" in f.message
    assert "NAT or firewall idle timeout" in f.message


def test_idle_threshold_is_configurable() -> None:
    c = _exchange(Conversation())
    c.send("c", 78, dt=300.0)
    c.rst("s", dt=0.0002)
    found = names(diagnose(c, Thresholds(idle_notable=1000.0)))
    assert "reset-mid-stream" not in found
    assert "reset-with-unread-data" in found


def test_client_gives_up_waiting_is_mid_stream() -> None:
    c = Conversation().handshake()
    c.send("c", 1014)
    c.ack("s", dt=0.04)
    c.rst("c", dt=0.008)
    f = only(diagnose(c), "reset-mid-stream")
    assert "after its last data (frame 4)" in f.message


def test_near_miss_rst_answering_a_syn_is_refused_not_mid_stream() -> None:
    c = Conversation()
    c.syn()
    c.rst("s")
    found = names(diagnose(c))
    assert found == {"connection-refused"}


# -- abortive-close --------------------------------------------------------------------------


def test_abortive_close_linger0_after_response() -> None:
    c = _exchange(Conversation())
    c.rst("c", dt=0.0001)
    f = only(diagnose(c), "abortive-close")
    assert f.severity.label == "warning"
    assert (
        "10.0.0.1:40000 ended the connection with RST/ACK (frame 7) instead of a FIN" in f.message
    )
    assert "SO_LINGER 0" in f.message


def test_rst_after_both_fins_is_info() -> None:
    c = _orderly(_exchange(Conversation()))
    c.rst("c")
    f = only(diagnose(c), "abortive-close")
    assert f.severity.label == "info"
    assert "after both sides had sent FIN" in f.message


# -- reset-with-unread-data ------------------------------------------------------------------


def test_server_resets_right_after_an_unanswered_request() -> None:
    c = _exchange(Conversation())
    c.send("c", 78)
    c.rst("s", dt=0.0002)
    f = only(diagnose(c), "reset-with-unread-data")
    assert "78 bytes from 10.0.0.1:40000 (frame 7)" in f.message
    assert "ECONNRESET" in f.message


def test_pipelined_requests_answered_once_then_reset() -> None:
    c = Conversation().handshake()
    c.send("c", 44)
    c.ack("s")
    c.send("c", 44, dt=0.02)
    c.ack("s")
    c.send("s", 52, dt=0.08)
    c.ack("c")
    c.rst("s")
    f = only(diagnose(c), "reset-with-unread-data")
    assert "2 separate writes" in f.message and "heuristic" in f.message


def test_data_arriving_after_fin_is_reset() -> None:
    c = _exchange(Conversation())
    c.fin("c")
    c.ack("s")
    c.send("s", 50, dt=2.0)
    c.rst("c", ack=False)
    found = diagnose(c)
    f = only(found, "reset-with-unread-data")
    assert "after 50 bytes from 10.0.0.2:80 (frame 9) arrived following its own FIN" in f.message
    assert "half-close" in names(found)


def test_near_miss_server_linger0_after_single_answer_is_abortive() -> None:
    c = _exchange(Conversation())
    c.rst("s")
    assert names(diagnose(c)) == {"abortive-close"}


# -- close-wait ------------------------------------------------------------------------------


def test_close_wait_peer_fin_three_seconds_late() -> None:
    c = _exchange(Conversation())
    c.fin("c", dt=0.01)
    c.ack("s")
    c.fin("s", dt=3.0)
    c.ack("c")
    f = only(diagnose(c), "close-wait")
    assert f.severity.label == "warning"
    assert "10.0.0.1:40000 closed (FIN, frame 7) and 10.0.0.2:80 acknowledged it" in f.message
    assert "sent its own FIN only 3.0 s later (frame 9)" in f.message
    assert "CLOSE_WAIT" in f.message
    assert f.frames == (7, 9)


def test_close_wait_never_closed_before_capture_end() -> None:
    c = _exchange(Conversation())
    c.fin("s", dt=0.01)
    c.ack("c", dt=0.04)
    f = only(diagnose(c, now=c.time + 0.3), "close-wait")
    assert "10.0.0.1:40000's application got EOF" in f.message
    assert "until the end of the capture" in f.message


def test_close_wait_delay_is_configurable() -> None:
    c = _exchange(Conversation())
    c.fin("c", dt=0.01)
    c.ack("s")
    c.fin("s", dt=3.0)
    c.ack("c")
    assert "close-wait" not in names(diagnose(c, Thresholds(close_wait_delay=5.0)))


def test_near_miss_prompt_close_is_not_close_wait() -> None:
    c = _exchange(Conversation())
    c.fin("c", dt=0.01)
    c.ack("s")
    c.fin("s", dt=0.002)
    c.ack("c")
    assert "close-wait" not in names(diagnose(c))


# -- half-close ------------------------------------------------------------------------------


def test_half_close_peer_keeps_sending() -> None:
    c = Conversation().handshake()
    c.send("c", 78)
    c.fin("c")
    c.send("s", 4096)
    c.ack("c")
    c.fin("s")
    c.ack("c")
    found = diagnose(c)
    f = only(found, "half-close")
    assert f.severity.label == "info"
    assert "kept sending 4,096 bytes afterwards (frame 6)" in f.message
    assert "close-wait" not in names(found)
    flows, _ = results(c)
    assert flows[0].verdict.startswith("ok:")


def test_near_miss_data_before_fin_is_not_half_close() -> None:
    c = _orderly(_exchange(Conversation()))
    assert "half-close" not in names(diagnose(c))


# -- port-reused and stale-segment -----------------------------------------------------------


def _reuse(stale: bool, gap: float = 0.1) -> Conversation:
    c = Conversation()
    c.handshake()
    c.send("c", 10)
    old = c.send("s", 10)
    c.rst("c")
    c.sides[0].isn = c.sides[0].nxt = 900_000
    c.sides[1].isn = c.sides[1].nxt = 700_000
    c.syn(dt=gap)
    c.synack()
    c.ack()
    if stale:
        c.send("s", 10, seq=old.seq, advance=False)
    c.send("c", 10)
    c.send("s", 10)
    _orderly(c)
    return c


def test_port_reused_within_time_wait() -> None:
    flows, _ = results(_reuse(stale=False))
    assert len(flows) == 2
    f = only(flows[1].findings, "port-reused")
    assert f.severity.label == "info"
    assert "reused 100 ms after the previous connection on these ports ended (frame 7)" in (
        f.message
    )
    assert "stale-segment" not in names(flows[1].findings)


def test_near_miss_reuse_after_time_wait() -> None:
    flows, _ = results(_reuse(stale=False, gap=120.0))
    assert len(flows) == 2
    assert "port-reused" not in names(flows[1].findings)


def test_stale_segment_of_previous_incarnation() -> None:
    flows, _ = results(_reuse(stale=True))
    f = only(flows[1].findings, "stale-segment")
    assert f.severity.label == "warning"
    assert f.frames == (10,)
    assert "belongs to the previous connection on these ports" in f.message
