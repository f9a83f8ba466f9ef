"""Teardown rules (teardown): trigger and near miss for each finding."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpdiag.config import Thresholds
from tcpdiag.flow.flow import BURSTS_KEPT
from tcpdiag.result import FlowResult, Severity
from tests.craft import Conversation
from tests.unit.rules_craft import diagnose, names, only, results

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
PUBLIC = ROOT.parent / "shared/captures/public"


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


def test_a_reset_with_another_ttl_came_from_another_box() -> None:
    # tcp-router-reset (recorded here): a router's `nft reject with tcp reset` answers the
    # client's request in the server's name, with the router's TTL.
    c = _exchange(Conversation())
    c.send("s", 1448)
    c.rst("s", dt=0.001, ttl=50)  # the server's other packets: TTL 64
    found = diagnose(c)
    assert "reset-mid-stream" not in names(found)
    f = only(found, "reset-injected")
    assert f.severity is Severity.ERROR
    assert f.message.startswith(
        "a box on the path, not 10.0.0.2:80, reset the connection in 10.0.0.2:80's name (frame 8)"
    )
    assert ": its TTL (50) is not that of 10.0.0.2:80's packet before it (frame 7, TTL 64)" in (
        f.message
    )
    assert "a firewall, IPS, load balancer or NAT sent it" in f.message
    assert 7 in f.frames and 8 in f.frames


def test_a_reset_injected_after_both_fins_is_a_warning() -> None:
    c = _exchange(Conversation())
    c.fin("c")
    c.fin("s")
    c.rst("s", dt=0.001, ttl=50)
    f = only(diagnose(c), "reset-injected")
    assert f.severity is Severity.WARNING


def test_near_miss_a_reset_with_its_senders_ttl_is_that_senders() -> None:
    c = _exchange(Conversation())
    c.send("s", 1448)
    c.rst("s", dt=0.001)  # TTL 64, as the server's other packets
    f = only(diagnose(c), "reset-mid-stream")
    assert "TTL" not in f.message and "another box" not in f.message


def test_reset_after_a_thousand_turns_is_still_judged() -> None:
    # A keep-alive connection of many request/response turns: its data turns are bursts, not
    # events, so they cannot crowd the capped event list and hide the RST that ends it.
    c = _exchange(Conversation())
    for _ in range(1100):
        c.send("c", 78)
        c.send("s", 100)
    c.send("s", 1448)
    c.rst("s", dt=0.001)
    f = only(diagnose(c), "reset-mid-stream")
    assert "reset the connection (frame 2208)" in f.message
    assert "1,548 bytes it had sent still unacknowledged" in f.message
    flow = c.flow()
    assert flow.events_dropped == 0
    assert len(flow.bursts) == 2 * BURSTS_KEPT and flow.bursts_dropped == 2202 - 2 * BURSTS_KEPT
    assert flow.bursts[-1].first_frame == 2206  # the last turns are kept


def test_client_gives_up_after_a_thousand_turns() -> None:
    # The turn a reset is judged against is the last one before it, however long the
    # connection: the client's final request, acknowledged, unanswered for 5 s.
    c = Conversation().handshake()
    for _ in range(1100):
        c.send("c", 78)
        c.send("s", 100)
    c.ack("c")
    c.send("c", 1014)
    c.ack("s", dt=0.04)
    c.rst("c", dt=5.0)
    f = only(diagnose(c), "reset-mid-stream")
    assert "reset the connection (frame 2207) 5.0 s after its last data (frame 2205)" in f.message


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
    # The client reset the data: it had closed, not shut down its sending side only.
    assert "half-close" not in names(found)


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


# -- half-close: a reply to a FIN is not "keeps sending" ----------------------------------------


def test_peer_keeps_sending_after_fin_is_half_close() -> None:
    c = _exchange(Conversation())
    c.fin("c")
    c.ack("s")
    for _ in range(3):
        c.send("s", 40, dt=0.01)
        c.ack("c")
    c.fin("s", dt=0.01)
    c.ack("c")
    f = only(diagnose(c), "half-close")
    assert "kept sending 120 bytes afterwards" in f.message


def test_near_miss_single_small_reply_then_close_is_not_half_close() -> None:
    # tls-client-gives-up: the client's FIN, the server's 7-byte alert 0.1 ms later, its FIN.
    c = _exchange(Conversation())
    c.fin("c")
    c.send("s", 7, dt=0.0001)
    c.ack("c")
    c.fin("s", dt=0.0001)
    c.ack("c")
    assert "half-close" not in names(diagnose(c))


def test_single_reply_then_staying_open_is_half_close() -> None:
    # The same single reply, but the peer stays open for 2 s before its FIN: it kept going.
    c = _exchange(Conversation())
    c.fin("c")
    c.send("s", 7, dt=0.0001)
    c.ack("c")
    c.fin("s", dt=2.0)
    c.ack("c")
    assert "half-close" in names(diagnose(c))


# -- resets explained by something else -----------------------------------------------------------


def _capture(name: str) -> list[FlowResult]:
    from tcpdiag.config import AnalysisOptions
    from tcpdiag.engine import analyze_capture

    return analyze_capture(str(CAPTURES / name), AnalysisOptions()).flows


def test_reset_after_a_tls_alert_is_left_to_the_alert() -> None:
    # tls-ccs-first: fatal unexpected_message (frame 9) then the server's RST (frame 10).
    (flow,) = _capture("tls-ccs-first.pcap")
    found = {f.name for f in flow.findings}
    assert not found & {"reset-mid-stream", "reset-with-unread-data", "abortive-close"}
    alert = next(f for f in flow.findings if f.name == "tls-alert")
    assert 10 in alert.frames and "then RST from the server" in alert.message
    # tls-unknown-ca: the client's own alert, then its RST.
    (flow,) = _capture("tls-unknown-ca.pcap")
    assert [f.name for f in flow.findings] == ["tls-alert"]


def test_near_miss_reset_mid_record_without_alert_stays() -> None:
    (flow,) = _capture("tls-rst-mid-record.pcap")
    assert "reset-mid-stream" in {f.name for f in flow.findings}


def test_closing_alert_answered_by_reset_is_info() -> None:
    # tls12-no-close-notify: bare FIN, the server's 31 B encrypted alert, the client's RST.
    (flow,) = _capture("tls12-no-close-notify.pcap")
    f = next(f for f in flow.findings if f.name == "reset-with-unread-data")
    assert f.severity is Severity.INFO
    assert "no TLS close_notify" in f.message and "31 B encrypted alert (frame 13)" in f.message
    assert "half-close" not in {x.name for x in flow.findings}
    assert flow.verdict.startswith("ok:")
    assert flow.verdict.endswith("reset by client (closed without TLS close_notify)")


def test_near_miss_plain_data_after_fin_answered_by_reset_stays_warning() -> None:
    # tcp-ftp-quit-halfclose-rst (public): 6 bytes of FTP after the server's FIN, then RST.
    from tcpdiag.config import AnalysisOptions
    from tcpdiag.engine import analyze_capture

    if not PUBLIC.is_dir():
        pytest.skip("public capture corpus not available")
    cap = analyze_capture(str(PUBLIC / "tcp-ftp-quit-halfclose-rst.pcap"), AnalysisOptions())
    f = next(f for f in cap.flows[0].findings if f.name == "reset-with-unread-data")
    assert f.severity is Severity.WARNING


def test_reset_ignored_before_the_synack_is_not_judged() -> None:
    # tcp-rst-injection (public): a RST before the SYN/ACK, after which the handshake
    # completes: the client ignored it; the RST that ends the connection is frame 8.
    c = Conversation()
    c.syn()
    c.rst("s", dt=0.2, ack=123_456)  # does not acknowledge the SYN: the client ignores it
    c.synack(dt=1.0)
    c.ack("c")
    c.send("c", 25)
    c.ack("s", dt=1.5)
    c.rst("s", dt=0.002)
    found = diagnose(c)
    f = only(found, "reset-with-unread-data")
    assert "(frame 7) 1.5 s after receiving 25 bytes" in f.message
    ignored = only(found, "reset-ignored")
    assert "10.0.0.2:80 sent a RST (frame 2) before its SYN/ACK (frame 3)" in ignored.message
    assert ignored.frames == (2, 3)
    # All at TTL 64 and IP ID 0: nothing in the reset's header tells, so the advice stays.
    assert "compare its TTL and IP ID with that address's other packets" in ignored.message
    assert "abortive-close" not in names(found)


def _injected_before_the_synack(server_ip_ids: tuple[int, int, int]) -> str:
    """tcp-rst-injection (public): a reset races the SYN/ACK with another TTL (46 against
    the server's 49) and the IP ID of the client's SYN it answers; the server's own packets
    carry `server_ip_ids` (SYN/ACK, ACK, the closing RST)."""
    c = Conversation()
    c.syn(ip_id=0x1555, ttl=62)
    c.rst("s", dt=0.2, ack=123_456, ttl=46, ip_id=0x1555)
    c.synack(dt=1.0, ttl=49, ip_id=server_ip_ids[0])
    c.ack("c", ttl=62, ip_id=0x1A9D)
    c.send("c", 25, ttl=62, ip_id=0x1A9E)
    c.ack("s", dt=1.5, ttl=49, ip_id=server_ip_ids[1])
    c.rst("s", dt=0.002, ttl=49, ip_id=server_ip_ids[2])
    return only(diagnose(c), "reset-ignored").message


def test_a_forged_reset_is_told_by_its_ttl_and_copied_ip_id() -> None:
    message = _injected_before_the_synack((0x7F4C, 0x8013, 0x8014))
    assert "its TTL (46) is not that of 10.0.0.2:80's packet after it (frame 3, TTL 49)" in message
    assert "its IP ID (0x1555) is that of the packet of 10.0.0.1:40000 it answers (frame 1)" in (
        message
    )
    assert "compare its TTL" not in message


def test_near_miss_an_ip_id_the_sender_uses_itself_is_not_copied() -> None:
    """A stack (or a crafting tool) that puts one constant IP ID on every packet: the reset
    having the peer's ID too proves nothing."""
    message = _injected_before_the_synack((0x1555, 0x1555, 0x1555))
    assert "IP ID (0x1555)" not in message
    assert "its TTL (46) is not that of" in message


def test_reset_acknowledging_the_syn_is_a_refusal_not_ignored() -> None:
    # Near miss: the same RST with an ACK of the SYN is accepted by the client's stack.
    c = Conversation()
    c.syn()
    c.rst("s", dt=0.2)
    found = diagnose(c)
    assert "reset-ignored" not in names(found)
    assert "connection-refused" in names(found)


def test_reset_followed_by_more_data_from_its_sender_was_not_its_own() -> None:
    c = _exchange(Conversation())
    c.rst("s", dt=0.05)
    c.send("s", 500, dt=0.001)
    c.ack("c")
    found = diagnose(c)
    f = only(found, "reset-ignored")
    assert "sent a RST (frame 7) and then went on sending (frame 8)" in f.message
    assert not names(found) & {"reset-mid-stream", "abortive-close", "reset-with-unread-data"}


def test_near_miss_reset_after_synack_is_judged() -> None:
    c = _exchange(Conversation())
    c.rst("s")
    found = diagnose(c)
    assert "abortive-close" in names(found) and "reset-ignored" not in names(found)


def test_lone_fin_answered_by_reset_is_a_closed_port_not_an_abort() -> None:
    # tcp-scan-refused-rst-after-synack (public), flow 5: nmap -sF against a closed port.
    c = Conversation()
    c.fin("c", ack=False)
    c.rst("s", dt=0.0006)
    f = only(diagnose(c), "abortive-close")
    assert "answered the only packet seen from 10.0.0.1:40000 (FIN, frame 1" in f.message
    assert "a FIN scan" in f.message and "no established connection was aborted" in f.message


def test_near_miss_reset_after_midflow_data_is_still_an_abort() -> None:
    c = Conversation()
    c.send("c", 100)
    c.send("s", 100, dt=0.01)
    c.ack("c")
    c.rst("s", dt=0.01)
    found = diagnose(c)
    assert not any("only packet seen" in f.message for f in found)


def test_fin_behind_lost_data_starts_close_wait_when_delivered() -> None:
    # tcp-zero-window-small (public): the server's data is lost, its FIN (frame 9) cannot be
    # delivered until the retransmission 1.3 s later; the client then closes at once.
    c = _exchange(Conversation())
    lost = c.send("s", 132, dt=0.01)
    fin = c.fin("s", dt=0.5)
    c.retransmit(lost.frame, dt=1.3)
    c.ack("c", dt=0.001)
    c.fin("c", dt=0.09)
    c.ack("s")
    assert fin.frame
    assert "close-wait" not in names(diagnose(c))


def test_near_miss_fin_delivered_at_once_then_late_close_is_close_wait() -> None:
    c = _exchange(Conversation())
    c.fin("s", dt=0.01)
    c.ack("c", dt=0.001)
    c.fin("c", dt=1.5)
    c.ack("s")
    assert "close-wait" in names(diagnose(c))
