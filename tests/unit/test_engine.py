"""The engine wires decode, flow, TLS and rules: these tests feed it whole packets."""

from __future__ import annotations

from tcpdiag.config import AnalysisOptions
from tcpdiag.decode import Decoder
from tcpdiag.engine import Engine, ReportQuota, shard_of
from tcpdiag.model import Segment
from tcpdiag.report.summary import summarize_captures
from tests.craft import Conversation, raw_packets, syn


def _refused_and_healthy() -> list[Segment]:
    refused = Conversation(client="10.0.0.1:40001", server="10.0.0.2:8080")
    refused.syn()
    refused.rst("s", ack=refused.next_seq("c"))
    ok = Conversation(client="10.0.0.1:40002", server="10.0.0.2:80", start=1.0)
    ok.syn()
    ok.synack()
    ok.ack()
    ok.send("c", b"hello")
    ok.send("s", b"world")
    ok.fin("c")
    ok.fin("s")
    ok.ack("c")
    segs = [*refused.segments, *ok.segments]
    return [s._replace(frame=i) for i, s in enumerate(segs, 1)]


def test_encoded_segments_decode_back_to_themselves() -> None:
    decoder = Decoder()
    for seg, raw in zip(_refused_and_healthy(), raw_packets(_refused_and_healthy()), strict=True):
        back = decoder.decode(raw)
        assert isinstance(back, Segment)
        assert (back.seq, back.ack, back.flags, back.payload) == (
            seg.seq,
            seg.ack,
            seg.flags,
            seg.payload,
        )


def test_flows_ordered_by_first_frame_with_verdicts() -> None:
    engine = Engine(AnalysisOptions(), path="x")
    engine.feed_all(raw_packets(_refused_and_healthy()))
    result = engine.finish()
    assert [f.id for f in result.flows] == [1, 2]
    assert [f.first_frame for f in result.flows] == [1, 3]
    assert result.flows[0].state == "REJ"
    assert [x.name for x in result.flows[0].findings] == ["connection-refused"]
    assert result.flows[0].verdict.startswith("connection refused by 10.0.0.2:8080")
    assert result.flows[1].state == "SF"
    assert result.flows[1].bytes_client == 5 and result.flows[1].bytes_server == 5
    assert result.packets == result.tcp_packets == 10


def test_released_flows_still_count_in_the_summary() -> None:
    seen: list[int] = []
    engine = Engine(AnalysisOptions(), path="x", on_flow=lambda f: seen.append(f.id), retain=None)
    engine.feed_all(raw_packets(_refused_and_healthy()))
    assert len(engine.finish().flows) == 2
    keep_none = Engine(AnalysisOptions(), path="x", on_flow=lambda f: None, retain=lambda f: False)
    keep_none.feed_all(raw_packets(_refused_and_healthy()))
    result = keep_none.finish()
    assert result.flows == []
    assert result.flows_released == 2
    assert result.released_findings == {"connection-refused": 1}
    summary = summarize_captures([result])
    assert summary.flows == 2
    assert summary.findings == {"capture-report-limit": 1, "connection-refused": 1}


def test_report_quota_keeps_each_kind_up_to_half_the_limit() -> None:
    keep = ReportQuota(2)
    engine = Engine(AnalysisOptions(), path="x")
    engine.feed_all(raw_packets(_refused_and_healthy()))
    refused, healthy = engine.finish().flows
    assert keep.keep(healthy) is True
    assert keep.keep(healthy) is False  # the healthy half is spent
    assert keep.keep(refused) is True
    assert keep.keep(refused) is False


def test_flows_beyond_the_report_limit_are_counted_and_reported() -> None:
    options = AnalysisOptions()
    options.limits.max_report_flows = 2  # one healthy, one problem
    again = Conversation(client="10.0.0.1:40003", server="10.0.0.2:8080", start=5.0)
    again.syn()
    again.rst("s", ack=again.next_seq("c"))
    segments = [*_refused_and_healthy(), *again.segments]
    engine = Engine(options, path="x")
    engine.feed_all(raw_packets([s._replace(frame=i) for i, s in enumerate(segments, 1)]))
    result = engine.finish()
    assert [f.first_frame for f in result.flows] == [1, 3]
    assert result.flows_released == 1
    (limit,) = [f for f in result.findings if f.name == "capture-report-limit"]
    assert limit.count == 1 and limit.message.startswith(
        "1 more flow was analysed but is not listed: the report keeps at most 2 flows"
    )
    assert limit.message.endswith("; it counts in the summary (its findings: connection-refused 1)")
    assert summarize_captures([result]).findings["connection-refused"] == 2


def test_shards_partition_the_flows() -> None:
    segments = [
        syn(src=f"10.0.{i // 250}.{i % 250 + 1}:{1024 + i}", frame=i + 1) for i in range(400)
    ]
    counts = [0, 0, 0]
    for seg in segments:
        counts[shard_of(seg.src, seg.sport, seg.dst, seg.dport, 3)] += 1
        # Both directions of a flow land in the same shard.
        assert shard_of(seg.src, seg.sport, seg.dst, seg.dport, 3) == shard_of(
            seg.dst, seg.dport, seg.src, seg.sport, 3
        )
    assert all(c > 80 for c in counts), counts
    total = 0
    for index in range(3):
        engine = Engine(AnalysisOptions(), path="x", shard=(index, 3))
        engine.feed_all(raw_packets(segments))
        part = engine.finish()
        assert part.packets == 400  # every shard reads every packet
        total += len(part.flows)
    assert total == 400


def test_tls_summary_lists_the_server_certificate_sizes() -> None:
    from tcpdiag.engine import analyze_capture
    from tests.conftest import PROJECT_CAPTURES

    tls12 = analyze_capture(str(PROJECT_CAPTURES / "tls12-ok.pcapng")).flows[0].tls
    assert tls12 is not None and tls12.version == "TLS1.2"
    assert tls12.certificates == [401]  # one self-signed ECDSA certificate
    tls13 = analyze_capture(str(PROJECT_CAPTURES / "tls13-ok.pcap")).flows[0].tls
    assert tls13 is not None and tls13.version == "TLS1.3"
    assert tls13.certificates == []  # TLS 1.3 sends it encrypted
