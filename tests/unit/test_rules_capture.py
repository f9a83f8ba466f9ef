"""Capture-quality findings, the capture context, the verdict and problem flows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tcpdiag.config import AnalysisOptions, Thresholds
from tcpdiag.decode.stats import DecodeStats
from tcpdiag.findings import capture_rules, tcp_rules
from tcpdiag.findings.context import (
    MAX_FRAMES,
    MAX_ICMP_TUPLES,
    CaptureContext,
    fmt_bytes,
    fmt_duration,
    fmt_frames,
    note_finding_name,
)
from tcpdiag.findings.registry import make_finding
from tcpdiag.findings.verdict import main_finding, problem_flow, verdict
from tcpdiag.model import IcmpError
from tcpdiag.result import FlowResult, Severity
from tests.craft import Conversation
from tests.unit.rules_craft import diagnose, names, only, results


class _Sink:
    """A stream consumer that wants bytes (reassembly then keeps them)."""

    wants_data = True

    def on_data(self, *args: object) -> None:
        pass

    def on_gap(self, *args: object) -> None:
        pass

    def on_end(self, *args: object) -> None:
        pass


# -- capture-started-mid-flow ----------------------------------------------------------------


def test_started_mid_flow() -> None:
    c = Conversation()
    c.send("c", 100)
    c.send("s", 100)
    c.ack("c")
    f = only(diagnose(c), "capture-started-mid-flow")
    assert f.severity is Severity.INFO and f.frames == (1,)
    assert "already open when the capture started" in f.message
    flows, _ = results(c)
    assert not problem_flow(flows[0])
    assert "already opened" not in flows[0].verdict
    assert flows[0].verdict.startswith("ok: 200 bytes")
    assert "capture began after the connection was opened" in flows[0].verdict


def test_near_miss_handshake_seen() -> None:
    c = Conversation().handshake()
    c.send("c", 100)
    assert "capture-started-mid-flow" not in names(diagnose(c))


# -- capture-packet-loss ---------------------------------------------------------------------


def test_acked_unseen_without_retransmission_is_capture_loss() -> None:
    c = Conversation().handshake()
    c.send("c", 50)
    c.send("s", 1000)
    c.sides[1].nxt += 1000  # a segment the capture missed
    c.send("s", 1000)
    c.ack("c")
    found = diagnose(c)
    f = only(found, "capture-packet-loss")
    assert f.severity is Severity.INFO
    assert "the capture missed 1,000 bytes" in f.message
    assert "capture loss, not network loss" in f.message
    assert "acked-unseen-segment" in names(found)
    flows, _ = results(c)
    assert not problem_flow(flows[0])


def test_a_thousand_holes_neither_hide_the_reset_nor_undercount_the_loss() -> None:
    # A long connection through a lossy tap: more holes than the flow keeps events for.
    c = Conversation().handshake()
    c.send("c", 50)
    for _ in range(1100):
        c.send("s", 1000)
        c.sides[1].nxt += 1000  # a segment the capture missed
        c.send("s", 1000)
        c.ack("c")
    c.send("s", 1448)
    c.rst("s", dt=0.001)
    found = diagnose(c)
    loss = only(found, "capture-packet-loss")
    assert "the capture missed 1100.0 KB" in loss.message and loss.count == 1100
    reset = only(found, "reset-mid-stream")
    assert "reset the connection (frame 3306)" in reset.message
    flow = c.flow()
    assert len(flow.events) == 1001 and flow.events[-1].kind == "rst"
    assert flow.events_dropped == 103  # gaps past the cap and its per-kind allowance


def test_near_miss_hole_filled_by_retransmission() -> None:
    c = Conversation().handshake()
    c.send("c", 50)
    c.send("s", 1000)
    lost = c.send("s", 1000)
    c.send("s", 1000)
    c.ack("c", ack=lost.seq)
    c.retransmit(lost.frame, dt=0.2)
    c.ack("c")
    assert "capture-packet-loss" not in names(diagnose(c))


# -- tcp-overlap-inconsistent and reassembly-limit -------------------------------------------


def test_overlap_with_different_bytes() -> None:
    c = Conversation().handshake()
    d = c.send("c", b"hello world")
    c.send("c", b"HELLO", seq=d.seq, advance=False, dt=0.2)
    c.send("s", 10)
    c.ack("c")
    (flow,) = c.run(on_open=lambda f: f.attach(_Sink()))
    f = only(tcp_rules.diagnose(flow, Thresholds()), "tcp-overlap-inconsistent")
    assert f.frames == (5,) and "5 bytes with different contents" in f.message


def test_near_miss_identical_retransmission() -> None:
    c = Conversation().handshake()
    d = c.send("c", b"hello world")
    c.retransmit(d.frame, dt=0.2)
    (flow,) = c.run(on_open=lambda f: f.attach(_Sink()))
    assert "tcp-overlap-inconsistent" not in names(tcp_rules.diagnose(flow, Thresholds()))


def test_reassembly_limit() -> None:
    options = AnalysisOptions()
    options.limits.max_flow_buffer = 2000
    c = Conversation().handshake()
    x = c.next_seq("c")
    for i in range(5):
        c.send("c", 1000, seq=x + 1000 + i * 1000, advance=False)
    (flow,) = c.run(options=options, on_open=lambda f: f.attach(_Sink()))
    found = tcp_rules.diagnose(flow, Thresholds())
    f = only(found, "reassembly-limit")
    assert "more than 2,000 bytes beyond a hole" in f.message
    assert "capture-packet-loss" not in names(found)


# -- the capture context and capture-level notes ---------------------------------------------


def test_decode_stats_become_capture_findings() -> None:
    ctx = CaptureContext()
    stats = DecodeStats(packets=100, tcp=90, non_ip=5, vlan_tagged=3, truncated=2)
    stats.snaplen_truncated = 7
    stats.unsupported_linktypes[127] = 4
    pairs = capture_rules.diagnose_capture([], ctx, Thresholds(), stats)
    found = [f for _, f in pairs]
    assert all(flow is None for flow, _ in pairs)
    assert names(found) == {
        "capture-truncated-packets",
        "capture-snaplen-truncated",
        "capture-link-unsupported",
    }
    assert only(found, "capture-snaplen-truncated").count == 7
    assert "link type 127" in only(found, "capture-link-unsupported").message


def test_near_miss_ordinary_counters_are_not_findings() -> None:
    stats = DecodeStats(packets=100, tcp=90, non_ip=5, non_tcp=5, vlan_tagged=3)
    assert capture_rules.diagnose_capture([], CaptureContext(), Thresholds(), stats) == []


def test_capture_reader_notes_map_to_registered_findings() -> None:
    assert note_finding_name("bogus-snaplen") == "capture-header-anomaly"
    assert note_finding_name("invalid-timestamp") == "capture-timestamps-invalid"
    assert note_finding_name("pcapng-corrupt-block") == "capture-damaged"
    assert note_finding_name("capture-link-unsupported") == "capture-link-unsupported"
    ctx = CaptureContext()
    ctx.add_note("invalid-timestamp", "frame 3: timestamp goes backwards")
    ctx.add_note("invalid-timestamp", "frame 3: timestamp goes backwards")
    ctx.add_damage(1024, "record length 4294967280 is larger than the file", 12)
    ctx.add_evictions(10, 200)
    found = [f for _, f in capture_rules.diagnose_capture([], ctx, Thresholds())]
    assert only(found, "capture-timestamps-invalid").count == 2
    damaged = only(found, "capture-damaged")
    assert damaged.severity is Severity.WARNING and "byte offset 1,024" in damaged.message
    assert "10 flows" in only(found, "flow-table-full").message


def test_unusual_snaplen_is_a_header_anomaly_not_damage() -> None:
    # Trigger: the public tcp-fast-port-reuse.pcap.gz declares snaplen 1,000,000; every record
    # was read, so this is an info header anomaly, not capture-damaged.
    note = SimpleNamespace(
        name="bogus-snaplen",
        message="pcap header snaplen 1000000 is not a usable snap length",
        count=1,
    )
    ctx = CaptureContext()
    ctx.add_capture_notes([note])
    found = [f for _, f in capture_rules.diagnose_capture([], ctx, Thresholds())]
    anomaly = only(found, "capture-header-anomaly")
    assert anomaly.severity is Severity.INFO
    assert "1000000" in anomaly.message and "not damage" in anomaly.message
    assert not [f for f in found if f.name == "capture-damaged"]


def test_near_miss_a_corrupt_block_is_still_damage() -> None:
    assert note_finding_name("pcapng-corrupt-block") == "capture-damaged"
    assert note_finding_name("pcapng-unknown-interface") == "capture-damaged"
    ctx = CaptureContext()
    ctx.add_damage(261, "record 3 has captured length 16711424, above the maximum 262144", 2)
    found = [f for _, f in capture_rules.diagnose_capture([], ctx, Thresholds())]
    assert only(found, "capture-damaged").severity is Severity.WARNING


def test_ip_length_beyond_the_frame_is_snaplen_truncation() -> None:
    # Trigger: tcptrace's fast_reuse dump cut frames at 128 B but recorded orig_len = caplen.
    stats = DecodeStats(packets=513, tcp=513, ip_length_exceeds_frame=202)
    found = [
        f for _, f in capture_rules.diagnose_capture([], CaptureContext(), Thresholds(), stats)
    ]
    cut = only(found, "capture-snaplen-truncated")
    assert cut.count == 202 and "not bytes lost on the network" in cut.message
    assert not [f for f in found if f.name == "capture-truncated-packets"]


def test_near_miss_bad_tcp_options_stay_truncated_packets() -> None:
    stats = DecodeStats(packets=10, tcp=10, bad_tcp_options=2)
    found = [
        f for _, f in capture_rules.diagnose_capture([], CaptureContext(), Thresholds(), stats)
    ]
    assert only(found, "capture-truncated-packets").count == 2
    assert not [f for f in found if f.name == "capture-snaplen-truncated"]


def test_context_memory_is_bounded() -> None:
    ctx = CaptureContext()
    for i in range(MAX_ICMP_TUPLES + 50):
        ctx.add_icmp(
            IcmpError(i, 0.0, 4, b"\1\1\1\1", 3, 1, b"\1\2\3\4", b"\5\6\7\10", i, 80, None)
        )
    assert len(ctx.icmp) == MAX_ICMP_TUPLES and ctx.icmp_dropped == 50
    for _ in range(MAX_FRAMES + 10):
        ctx.add_note("capture-damaged", "same", frames=[1, 2, 3])
    assert len(ctx.notes) == 1 and len(ctx.notes[0].frames) <= MAX_FRAMES


# -- formatting ------------------------------------------------------------------------------


def test_formatting_helpers() -> None:
    assert fmt_duration(0.0000170) == "17 µs"
    assert fmt_duration(0.0003) == "0.3 ms"
    assert fmt_duration(0.041) == "41 ms"
    assert fmt_duration(2.0) == "2.0 s"
    assert fmt_duration(300.0) == "300 s (5.0 min)"
    assert fmt_duration(-1.0) == "0.0 µs" or fmt_duration(-1.0) == "0 µs"
    assert fmt_bytes(1) == "1 byte" and fmt_bytes(12_300) == "12.3 KB"
    assert fmt_frames([3, 1, 2]) == "frames 1, 2, 3"
    assert fmt_frames(range(1, 20)) == "frames 1, 2, 3, 4, 5, 6, … (19 in all)"


# -- verdict and problem flows ---------------------------------------------------------------


def _result(**kw: object) -> FlowResult:
    base: dict[str, object] = dict(
        id=1, client="10.0.0.1:40000", server="10.0.0.2:80", ip_version=4,
        client_inferred=False, first_frame=1, last_frame=9, start=0.0, end=0.4,
        bytes_client=2000, bytes_server=10_000,
    )  # fmt: skip
    base.update(kw)
    return FlowResult(**base)  # type: ignore[arg-type]


def test_ok_verdict() -> None:
    r = _result()
    r.close.kind, r.close.by = "fin", "client"
    assert verdict(r) == "ok: 12.0 KB in 0.4 s, closed by client (FIN)"
    assert not problem_flow(r)


def test_most_severe_finding_wins_then_rank() -> None:
    r = _result()
    r.findings = [
        make_finding("retransmission", "2 retransmissions — loss", frames=[3]),
        make_finding("abortive-close", "x reset — abort", frames=[9]),
        make_finding("reset-mid-stream", "y reset mid-stream — cut", frames=[8]),
        make_finding("capture-damaged", "damaged — bad file", frames=[]),
    ]
    main = main_finding(r)
    assert main is not None and main.name == "reset-mid-stream"
    assert verdict(r) == "y reset mid-stream"
    assert problem_flow(r)


def test_capture_quality_warning_alone_is_not_a_problem_flow() -> None:
    r = _result()
    r.findings = [make_finding("tcp-overlap-inconsistent", "odd — bytes", frames=[4])]
    assert not problem_flow(r)
    assert verdict(r).startswith("ok:")


def test_info_findings_only_give_ok_verdict() -> None:
    r = _result()
    r.findings = [make_finding("retransmission", "1 retransmission — fine", frames=[3])]
    assert verdict(r).startswith("ok:") and not problem_flow(r)


def test_flow_times_behaves_like_a_dict() -> None:
    from tcpdiag.findings.context import FlowTimes

    times = FlowTimes()
    plain: dict[int, float] = {}
    for flow_id, t in ((3, 0.5), (1, 0.25), (7, 1.0), (3, 0.75)):
        times[flow_id] = t
        plain[flow_id] = t
    assert times == plain and len(times) == 3
    assert times.get(2, -1.0) == -1.0 and times.get(7) == 1.0
    assert sorted(times.items()) == sorted(plain.items())
    del times[1]
    assert 1 not in times and len(times) == 2
    del plain[1]
    for flow_id in (-1, 0, 1, 2, 3, 7, 8, 100):  # below, inside (with and without a time), above
        assert times.get(flow_id) == plain.get(flow_id)
        assert times.get(flow_id, "none") == plain.get(flow_id, "none")
        assert (flow_id in times) == (flow_id in plain)
        if flow_id not in plain:
            with pytest.raises(KeyError):
                times[flow_id]
