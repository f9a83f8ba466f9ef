"""Connection set-up rules (connection set-up): each finding is triggered by a
crafted conversation, and a near miss that must not trigger it."""

from __future__ import annotations

import pytest

from tcpdiag.config import Thresholds
from tcpdiag.findings import capture_rules
from tcpdiag.findings.context import CaptureContext
from tcpdiag.findings.verdict import problem_flow
from tcpdiag.model import ArpPacket, IcmpError
from tcpdiag.result import FlowResult
from tcpdiag.store import FlowStore
from tests.craft import Conversation, parse_endpoint
from tests.unit.rules_craft import diagnose, flow_results, names, only, results

# -- connection-refused ----------------------------------------------------------------------


def test_refused_rst_ack_right_after_syn() -> None:
    c = Conversation()
    c.syn()
    c.rst("s", dt=0.0003)
    f = only(diagnose(c), "connection-refused")
    assert f.severity.label == "error"
    assert f.frames == (1, 2)
    assert "connection refused by 10.0.0.2:80" in f.message
    assert "0.3 ms after the SYN (frame 2)" in f.message
    assert "ECONNREFUSED" in f.message
    flows, _ = results(c)
    assert (
        flows[0].verdict
        == "connection refused by 10.0.0.2:80 (RST 0.3 ms after SYN: host up, port closed)"
    )
    assert problem_flow(flows[0])


def test_refused_after_syn_retries_counts_them() -> None:
    c = Conversation()
    c.syn()
    c.syn(dt=1.0)
    c.rst("s", dt=0.0002)
    f = only(diagnose(c), "connection-refused")
    assert "2 SYNs" in f.message
    assert f.frames == (1, 2, 3)


def test_near_miss_synack_then_server_rst_is_not_refused() -> None:
    c = Conversation().handshake()
    c.rst("s", dt=0.001)
    found = names(diagnose(c))
    assert "connection-refused" not in found
    assert "abortive-close" in found


# -- syn-unanswered --------------------------------------------------------------------------


def test_syn_unanswered_reports_count_and_intervals() -> None:
    c = Conversation()
    c.syn()
    c.syn(dt=1.0)
    c.syn(dt=2.0)
    c.syn(dt=4.0)
    f = only(diagnose(c), "syn-unanswered")
    assert f.frames == (1, 2, 3, 4)
    assert "no answer from 10.0.0.2:80 to 4 SYNs sent over 7.0 s" in f.message
    assert "retries after 1.0 s, 2.0 s, 4.0 s: exponential back-off" in f.message


def test_syn_unanswered_linear_intervals_are_named() -> None:
    c = Conversation()
    for dt in (0.0, 1.0, 1.0, 1.0):
        c.syn(dt=dt)
    f = only(diagnose(c), "syn-unanswered")
    assert "evenly spaced" in f.message


def test_near_miss_syn_answered_after_a_retry() -> None:
    c = Conversation()
    c.syn()
    c.syn(dt=1.0)
    c.synack(dt=0.001)
    c.ack()
    assert "syn-unanswered" not in names(diagnose(c))


def test_syn_unanswered_server_up_context_from_other_flows() -> None:
    ok = Conversation(client="10.0.0.1:40001")
    ok.handshake()
    ok.send("c", 10)
    ok.send("s", 10)
    ok.fin("c")
    ok.fin("s")
    ok.ack("c")
    # frame numbers kept distinct from the other conversation's
    dropped = Conversation(client="10.0.0.1:40002", start=0.0005, first_frame=100)
    dropped.syn()
    dropped.syn(dt=1.0)
    dropped.syn(dt=1.0)
    flows, _ = results(ok, dropped)
    by_client = {f.client: f for f in flows}
    f = only(by_client["10.0.0.1:40002"].findings, "syn-unanswered")
    assert "server is up but dropping SYNs" in f.message
    assert "flow 1" in f.message
    assert "dropping SYNs" in by_client["10.0.0.1:40002"].verdict


def _completed(
    client: str, start: float, first_frame: int, server: str = "10.0.0.2:80"
) -> Conversation:
    c = Conversation(client=client, server=server, start=start, first_frame=first_frame)
    c.handshake()
    c.fin("c")
    c.fin("s")
    c.ack("c")
    return c


def _unanswered(client: str, start: float, first_frame: int) -> Conversation:
    c = Conversation(client=client, start=start, first_frame=first_frame)
    for dt in (0.0, 1.0, 1.0):
        c.syn(dt=dt)
    return c


def _syn_drop_store(
    monkeypatch: pytest.MonkeyPatch, *convs: Conversation
) -> tuple[list[FlowResult], FlowStore, CaptureContext, Thresholds, list[int]]:
    ctx, th = CaptureContext(), Thresholds()
    flows = flow_results(*convs, ctx=ctx, thresholds=th)
    store = FlowStore()
    for flow in flows:
        store.add(flow)
    read: list[int] = []
    load = FlowStore._load

    def counted(self: FlowStore, i: int) -> tuple[FlowResult, bytes | None]:
        read.append(i)
        return load(self, i)

    monkeypatch.setattr(FlowStore, "_load", counted)
    return flows, store, ctx, th, read


def test_syn_drop_context_from_a_store_reads_only_the_flows_it_concerns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dropped = _unanswered("10.0.0.1:40002", 0.0005, 100)
    flows, store, ctx, th, read = _syn_drop_store(
        monkeypatch,
        _completed("10.0.0.1:40001", 0.0, 1),  # same server, meanwhile: the context
        _completed("10.0.0.1:40003", 0.5, 200, server="10.0.0.3:80"),  # another server
        _completed("10.0.0.1:40004", 30.0, 300),  # same server, much later
        dropped,
    )
    from_store = capture_rules.diagnose_capture(store, ctx, th)
    assert from_store == capture_rules.diagnose_capture(flows, ctx, th)
    assert [f.name for _, f in from_store] == ["syn-unanswered"]
    assert "dropping SYNs" in from_store[0][1].message
    # The handshake meanwhile comes from the store's facts and the SYN/ACK time: unread.
    assert sorted(flows[i].client for i in read) == ["10.0.0.1:40002"]


def test_syn_drop_context_reads_a_completed_flow_without_a_synack_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dropped = _unanswered("10.0.0.1:40002", 0.0005, 100)
    flows, store, ctx, th, read = _syn_drop_store(
        monkeypatch, _completed("10.0.0.1:40001", 0.0, 1), dropped
    )
    ok = next(f for f in flows if f.client == "10.0.0.1:40001")
    del ctx.synack_time[ok.id]  # the rule then falls back on the flow's start, read
    from_store = capture_rules.diagnose_capture(store, ctx, th)
    assert from_store == capture_rules.diagnose_capture(flows, ctx, th)
    assert f"flow {ok.id})" in from_store[0][1].message
    assert sorted(flows[i].client for i in read) == ["10.0.0.1:40001", "10.0.0.1:40002"]


def test_syn_drop_context_joins_the_windows_of_several_unanswered_flows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two unanswered flows whose windows overlap, one far later: a handshake in the first
    two's common span counts for both, one between the windows for neither."""
    first = _unanswered("10.0.0.1:40010", 0.0, 100)
    second = _unanswered("10.0.0.1:40011", 2.0, 200)
    late = _unanswered("10.0.0.1:40012", 100.0, 300)
    convs = (
        first,
        second,
        late,
        _completed("10.0.0.1:40001", 2.5, 1),  # in both early windows
        _completed("10.0.0.1:40003", 50.0, 400),  # between the windows: no one's context
        _completed("10.0.0.1:40004", 101.0, 500),  # in the late flow's window
    )
    flows, store, ctx, th, read = _syn_drop_store(monkeypatch, *convs)
    from_store = capture_rules.diagnose_capture(store, ctx, th)
    assert from_store == capture_rules.diagnose_capture(flows, ctx, th)
    by_id = {f.id: f.client for f in flows}
    meanwhile = {
        by_id[finding.flow]: finding.message.split("(flow", 1)[1].split(")", 1)[0]
        for _, finding in from_store
        if finding.flow is not None
    }
    ids = {f.client: str(f.id) for f in flows}
    assert meanwhile == {
        "10.0.0.1:40010": f" {ids['10.0.0.1:40001']}",
        "10.0.0.1:40011": f" {ids['10.0.0.1:40001']}",
        "10.0.0.1:40012": f" {ids['10.0.0.1:40004']}",
    }
    assert sorted(flows[i].client for i in read) == [
        "10.0.0.1:40010",
        "10.0.0.1:40011",
        "10.0.0.1:40012",
    ]


def test_near_miss_syn_unanswered_without_other_flows_has_no_server_up_context() -> None:
    c = Conversation()
    c.syn()
    c.syn(dt=1.0)
    flows, _ = results(c)
    f = only(flows[0].findings, "syn-unanswered")
    assert "dropping SYNs" not in f.message
    assert "host down" in flows[0].verdict


# -- icmp-unreachable ------------------------------------------------------------------------


def _icmp(frame: int, time: float, code: int, quoted: str = "10.0.0.2:80") -> IcmpError:
    src, sport = parse_endpoint("10.0.0.1:40000")
    dst, dport = parse_endpoint(quoted)
    router = parse_endpoint("192.168.1.1:0")[0]
    return IcmpError(frame, time, 4, router, 3, code, src, dst, sport, dport, 1000)


def test_icmp_admin_prohibited_replaces_syn_unanswered() -> None:
    c = Conversation()
    c.syn()
    c.frame += 1  # the ICMP error is frame 2
    c.syn(dt=1.0)
    ctx = CaptureContext()
    ctx.add_icmp(_icmp(2, 0.0004, 13))
    flows, capture_level = results(c, ctx=ctx)
    found = names(flows[0].findings)
    assert "syn-unanswered" not in found
    f = only(flows[0].findings, "icmp-unreachable")
    assert f.severity.label == "error"
    assert "rejected by 192.168.1.1 (a router or firewall on the path)" in f.message
    assert "communication administratively prohibited (type 3 code 13)" in f.message
    assert "0.4 ms after the SYN" in f.message
    assert "EHOSTUNREACH" in f.message
    assert 2 in f.frames and 1 in f.frames
    assert capture_level == []
    assert flows[0].verdict.startswith("the 2 SYNs to 10.0.0.2:80 were rejected by 192.168.1.1")


def test_near_miss_icmp_about_another_connection_stays_apart() -> None:
    c = Conversation()
    c.syn()
    c.syn(dt=1.0)
    ctx = CaptureContext()
    ctx.add_icmp(_icmp(9, 0.0004, 1, quoted="10.0.0.2:81"))
    flows, capture_level = results(c, ctx=ctx)
    assert "icmp-unreachable" not in names(flows[0].findings)
    assert "syn-unanswered" in names(flows[0].findings)
    f = only(capture_level, "icmp-unreachable")
    assert "not in the capture" in f.message and f.flow is None


def test_near_miss_fragmentation_needed_is_not_a_rejection() -> None:
    c = Conversation()
    c.syn()
    c.syn(dt=1.0)
    ctx = CaptureContext()
    ctx.add_icmp(_icmp(9, 0.0004, 4))
    flows, capture_level = results(c, ctx=ctx)
    assert "icmp-unreachable" not in names(flows[0].findings) | names(capture_level)


# -- arp-unanswered --------------------------------------------------------------------------


def _arp(frame: int, time: float, op: int, sender: str, target: str) -> ArpPacket:
    return ArpPacket(
        frame, time, op, b"\x02" * 6, parse_endpoint(f"{sender}:0")[0],
        parse_endpoint(f"{target}:0")[0],
    )  # fmt: skip


def test_arp_unanswered_requests() -> None:
    ctx = CaptureContext()
    for i in range(3):
        ctx.add_arp(_arp(i + 1, float(i), 1, "10.0.0.1", "10.0.0.9"))
    flows, capture_level = results(Conversation(), ctx=ctx)
    assert flows == []
    f = only(capture_level, "arp-unanswered")
    assert f.frames == (1, 2, 3) and f.count == 3 and f.severity.label == "warning"
    assert "3 ARP requests for 10.0.0.9 from 10.0.0.1 over 2.0 s" in f.message
    assert "a capture filtered to TCP would show nothing" in f.message


def test_near_miss_arp_answered_gratuitous_or_single() -> None:
    ctx = CaptureContext()
    ctx.add_arp(_arp(1, 0.0, 1, "10.0.0.1", "10.0.0.9"))
    ctx.add_arp(_arp(2, 1.0, 1, "10.0.0.1", "10.0.0.9"))
    ctx.add_arp(_arp(3, 1.1, 2, "10.0.0.9", "10.0.0.1"))  # the reply
    for i in range(3):
        ctx.add_arp(_arp(10 + i, float(i), 1, "10.0.0.5", "10.0.0.5"))  # gratuitous
    ctx.add_arp(_arp(20, 0.0, 1, "10.0.0.1", "10.0.0.7"))  # only one request
    _, capture_level = results(Conversation(), ctx=ctx)
    assert "arp-unanswered" not in names(capture_level)


def test_arp_threshold_is_configurable() -> None:
    ctx = CaptureContext()
    ctx.add_arp(_arp(1, 0.0, 1, "10.0.0.1", "10.0.0.7"))
    _, capture_level = results(Conversation(), ctx=ctx, thresholds=Thresholds(arp_min_requests=1))
    assert "arp-unanswered" in names(capture_level)


# -- handshake-aborted-by-client -------------------------------------------------------------


def test_handshake_aborted_by_client() -> None:
    c = Conversation()
    c.syn()
    c.synack(dt=2.1)
    c.rst("c", dt=0.0001, ack=False)
    f = only(diagnose(c), "handshake-aborted-by-client")
    assert f.severity.label == "warning"
    assert f.frames == (1, 2, 3)
    assert "10.0.0.1:40000 reset the connection (frame 3)" in f.message
    assert "2.1 s after the SYN (late: the client had likely timed out)" in f.message


def test_near_miss_client_completes_then_resets_after_data() -> None:
    c = Conversation().handshake()
    c.send("c", 10)
    c.send("s", 10)
    c.rst("c")
    assert "handshake-aborted-by-client" not in names(diagnose(c))


# -- synack-retransmitted --------------------------------------------------------------------


def test_synack_retransmitted_with_client_ack_seen() -> None:
    c = Conversation()
    c.syn()
    c.synack(dt=0.0005)
    c.ack()
    c.synack(dt=1.0)
    c.ack()
    f = only(diagnose(c), "synack-retransmitted")
    assert f.frames == (2, 4)
    assert "sent its SYN/ACK 2 times (again after 1.0 s)" in f.message
    assert "the client's ACK (frame 3) is in the capture" in f.message
    assert "accept queue" in f.message


def test_synack_retransmitted_after_client_syn_retry() -> None:
    c = Conversation()
    c.syn()
    c.synack(dt=0.0005)
    c.syn(dt=1.0)
    c.synack(dt=0.0005)
    c.ack()
    f = only(diagnose(c), "synack-retransmitted")
    assert "lost on the way to the client" in f.message


def test_near_miss_single_synack() -> None:
    c = Conversation().handshake()
    assert "synack-retransmitted" not in names(diagnose(c))


# -- no-response -----------------------------------------------------------------------------


def test_no_response_request_acked_then_client_gives_up() -> None:
    c = Conversation().handshake()
    c.send("c", 78)
    c.ack("s", dt=0.0001)
    c.fin("c", dt=30.0)
    c.ack("s")
    f = only(diagnose(c), "no-response")
    assert f.severity.label == "error"
    assert "10.0.0.2:80 acknowledged the client's request of 78 bytes in frame 5" in f.message
    assert "sent no data in 30.0 s; the client then closed (FIN, frame 6)" in f.message
    assert "application never answered" in f.message
    assert set(f.frames) >= {4, 5, 6}


def test_no_response_until_the_end_of_the_capture() -> None:
    c = Conversation().handshake()
    c.send("c", 10)
    c.ack("s")
    f = only(diagnose(c, now=c.time + 5.0), "no-response")
    assert "still open when the capture ended" in f.message


def test_no_response_server_silent_without_ack() -> None:
    c = Conversation().handshake()
    c.send("c", 10)
    c.rst("c", dt=5.0)
    f = only(diagnose(c), "no-response")
    assert "neither acknowledged nor answered" in f.message


def test_near_miss_server_answers() -> None:
    c = Conversation().handshake()
    c.send("c", 78)
    c.send("s", 100, dt=2.0)
    c.fin("c", dt=30.0)
    c.fin("s")
    c.ack("c")
    assert "no-response" not in names(diagnose(c))


def test_near_miss_client_closes_right_after_sending() -> None:
    c = Conversation().handshake()
    c.send("c", 78)
    c.fin("c", dt=0.001)
    c.fin("s")
    c.ack("c")
    assert "no-response" not in names(diagnose(c))


def test_client_abandoning_before_any_retry_is_only_a_warning() -> None:
    c = Conversation()
    c.syn()
    c.rst("c", dt=0.0003, ack=False)
    f = only(diagnose(c), "syn-unanswered")
    assert f.severity.label == "warning"
    assert "abandoned its connection attempt" in f.message
    assert "says nothing about the server" in f.message
    flows, _ = results(c)
    assert flows[0].verdict.startswith("10.0.0.1:40000 abandoned its connection attempt")


def test_near_miss_synack_captured_several_times_is_not_resent() -> None:
    c = Conversation()
    c.syn()
    c.synack(dt=0.0005)
    c.synack(dt=0.05)  # the same SYN/ACK seen again 50 ms later: a capture duplicate
    c.ack()
    assert "synack-retransmitted" not in names(diagnose(c))


def test_icmp_words_v4_and_v6() -> None:
    from tcpdiag.findings.capture_rules import icmp_words

    def err(version: int, icmp_type: int, code: int) -> IcmpError:
        return IcmpError(1, 0.0, version, b"\0" * 4, icmp_type, code, b"", b"", 1, 2, None)

    assert icmp_words(err(4, 3, 3)) == (
        "ICMP destination unreachable, port unreachable (type 3 code 3)",
        "ECONNREFUSED",
    )
    assert icmp_words(err(4, 11, 0))[0].startswith("ICMP time exceeded (TTL)")
    words, errno = icmp_words(err(6, 1, 1))
    assert "ICMPv6 destination unreachable" in words and "administratively prohibited" in words
    assert errno == "EACCES"
    assert icmp_words(err(6, 1, 4))[1] == "ECONNREFUSED"


def test_icmpv6_error_attaches_to_ipv6_flow() -> None:
    c = Conversation(client="[2001:db8::1]:40000", server="[2001:db8::2]:443")
    c.syn()
    c.frame += 1
    c.syn(dt=1.0)
    src, sport = parse_endpoint("[2001:db8::1]:40000")
    dst, dport = parse_endpoint("[2001:db8::2]:443")
    router = parse_endpoint("[2001:db8::fe]:0")[0]
    ctx = CaptureContext()
    ctx.add_icmp(IcmpError(2, 0.001, 6, router, 1, 3, src, dst, sport, dport, 1000))
    flows, _ = results(c, ctx=ctx)
    f = only(flows[0].findings, "icmp-unreachable")
    assert "rejected by 2001:db8::fe" in f.message
    assert "ICMPv6 destination unreachable, address unreachable (type 1 code 3)" in f.message


def test_connect_then_immediate_reset_is_an_aborted_handshake() -> None:
    # tcp-scan-refused-rst-after-synack (public), flows 1-2: a connect() scan.
    c = Conversation().handshake()
    c.rst("c", dt=0.0001)
    found = diagnose(c)
    f = only(found, "handshake-aborted-by-client")
    assert "completed the handshake with 10.0.0.2:80 (ACK, frame 3)" in f.message
    assert "before either side sent any data" in f.message and f.frames == (1, 2, 3, 4)
    assert "abortive-close" not in names(found)


def test_near_miss_reset_after_the_server_greets_is_not_an_aborted_handshake() -> None:
    c = Conversation().handshake()
    c.send("s", 20, dt=0.01)
    c.rst("c", dt=0.01)
    assert "handshake-aborted-by-client" not in names(diagnose(c))


def test_rst_after_the_server_accepted_data_is_not_a_refusal() -> None:
    # tcp-lost-segment-refused-rst (public), flow 2: the SYN/ACK is missing from the capture,
    # but the server acknowledged the request and sent data before its RST.
    c = Conversation()
    c.syn()
    c.ack("c", dt=0.06, ack=5001)
    c.send("c", 119)
    c.ack("s", dt=0.09)
    c.send("s", 1391, dt=0.3)
    c.rst("s", dt=0.06)
    found = diagnose(c)
    assert "connection-refused" not in names(found)
    assert names(found) & {"reset-mid-stream", "reset-with-unread-data", "abortive-close"}


def test_bare_rst_refusal_says_the_client_would_ignore_it() -> None:
    # tcp-port-reuse-single (public), flow 1: a RST without ACK answers the SYN.
    c = Conversation()
    c.syn()
    c.rst("s", dt=0.0009, ack=False)
    f = only(diagnose(c), "connection-refused")
    assert "RST 0.9 ms after the SYN" in f.message and "RFC 9293 section 3.10.7.3" in f.message


def test_near_miss_rst_ack_refusal_has_no_such_note() -> None:
    c = Conversation()
    c.syn()
    c.rst("s", dt=0.0009)
    f = only(diagnose(c), "connection-refused")
    assert "RST/ACK 0.9 ms after the SYN" in f.message and "RFC 9293" not in f.message
