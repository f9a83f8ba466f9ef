"""Bad-inputs cases 33-40: TCP level (partial flows, wraparound, inconsistent overlaps, huge and
never-acknowledged transfers, SYN floods, state confusion, keep-alives, idle flows)."""

from __future__ import annotations

import gc
import re
import struct
import tracemalloc
from pathlib import Path
from typing import Any, BinaryIO

from tcpdiag.config import AnalysisOptions
from tcpdiag.flow import FlowTable
from tcpdiag.result import FlowResult
from tests.hostile import packets as p
from tests.hostile.helpers import (
    analyze,
    analyze_bytes,
    assert_read,
    finding,
    names,
    options,
)

T0 = 1_700_000_000 * 10**9
SEC = 10**9


def only_flow(data: bytes, opts: AnalysisOptions | None = None) -> FlowResult:
    result = analyze_bytes(data, opts)
    assert len(result.flows) == 1, result.flows
    return result.flows[0]


# -- 33: mid-stream pickup and one-sided flows -------------------------------------------------


def test_case33_midstream_one_sided() -> None:
    s = p.Session(dport=80)
    for _ in range(5):
        s.raw("c", p.ACK | p.PSH, b"z" * 100)
        s.next["c"] += 100
    result = analyze_bytes(p.pcap(s.packets))
    (flow,) = result.flows
    assert flow.client_inferred is True
    assert flow.bytes_client == 500 and flow.packets_server == 0
    assert not flow.handshake.syn
    assert "capture-started-mid-flow" in names(result)


def test_case33_server_side_only() -> None:
    s = p.Session(dport=80)
    s.raw("s", p.ACK | p.PSH, b"r" * 50)
    s.next["s"] += 50
    s.raw("s", p.FIN | p.ACK)
    flow = only_flow(p.pcap(s.packets))
    assert flow.client_inferred and flow.bytes_client == 50  # the first sender is the "client"


# -- 34: sequence wraparound -------------------------------------------------------------------


def _transfer(isn: int, size: int = 1 << 20) -> bytes:
    s = p.Session(dport=80, isn_c=isn, step_ns=100_000)
    s.handshake()
    s.send("c", bytes(range(256)) * (size // 256), mss=1400)
    # one retransmission of a segment in the middle
    s.raw("c", p.ACK | p.PSH, b"\x00" * 1400, seq=(isn + 1 + 700 * 1400) & 0xFFFFFFFF)
    s.close()
    return p.pcap(s.packets)


def test_case34_sequence_wraparound_matches_control() -> None:
    wrap = only_flow(_transfer(0xFFFFFF00))
    control = only_flow(_transfer(1000))
    assert wrap.bytes_client == control.bytes_client == 1 << 20
    assert wrap.tcp.retransmissions == control.tcp.retransmissions == 1
    assert wrap.tcp.lost_segments == control.tcp.lost_segments == 0
    assert wrap.state == control.state == "SF"
    assert sorted(f.name for f in wrap.findings) == sorted(f.name for f in control.findings)


# -- 35: overlapping retransmission with different bytes --------------------------------------


def test_case35_overlap_with_different_bytes_keeps_first() -> None:
    first = p.record(p.client_hello(b"first.example"))
    second = p.record(p.client_hello(b"other.example"))
    assert len(first) == len(second)
    s = p.Session()
    s.handshake()
    s.send("c", first)
    s.raw("c", p.ACK | p.PSH, second, seq=s.next["c"] - len(first))
    s.send("s", p.record(p.server_hello()))
    s.close()
    flow = only_flow(p.pcap(s.packets))
    assert flow.tls is not None and flow.tls.sni == "first.example"
    assert "tcp-overlap-inconsistent" in {f.name for f in flow.findings}


# -- 36: huge never-acknowledged transfer / hole at the start ----------------------------------


def _handshake_written(fh: BinaryIO) -> p.Session:
    """A pcap header and a handshake to port 443, written to `fh`: the session, for its next
    sequence numbers."""
    fh.write(p.pcap_header())
    s = p.Session(dport=443)
    s.handshake()
    for ts, frame in s.packets:
        fh.write(struct.pack("<IIII", ts // SEC, ts % SEC // 1000, len(frame), len(frame)))
        fh.write(frame)
    return s


def _one_way(path: Path, megabytes: int, hole: bool) -> None:
    """A transfer of `megabytes` from client to server, never ACKed, optionally with the first
    segment missing; written straight to disk (no list of frames in memory)."""
    seg = 1448
    payload = b"\x17\x03\x03" + bytes(seg - 3)
    with open(path, "wb") as fh:
        s = _handshake_written(fh)
        seq = s.next["c"]
        head = p.eth(p.ipv4(p.tcp(sport=40000, dport=443, seq=0, ack=s.next["s"], payload=payload)))
        for i in range((megabytes << 20) // seg):
            seq_i = (seq + i * seg) & 0xFFFFFFFF
            if hole and i == 0:
                continue
            frame = bytearray(head)
            frame[38:42] = struct.pack("!I", seq_i)
            t = T0 + 10 * SEC + i * 10_000
            fh.write(struct.pack("<IIII", t // SEC, t % SEC // 1000, len(frame), len(frame)))
            fh.write(frame)


def test_case36_unacked_transfer_bounded(tmp_path: Path) -> None:
    small, large = tmp_path / "small.pcap", tmp_path / "large.pcap"
    _one_way(small, 1, hole=True)
    _one_way(large, 48, hole=True)
    base = analyze(small)
    big = analyze(large)
    assert_read(base)
    assert_read(big)
    growth = big.rss_mb - base.rss_mb
    assert growth < 64, (base.rss_mb, big.rss_mb)
    (flow,) = big.capture["flows"]
    assert flow["bytes"]["client"] >= (48 << 20) - 2 * 1448
    found = {f["name"] for f in big.findings()}
    assert "reassembly-limit" in found, found
    (limit,) = big.findings("reassembly-limit")
    assert re.search(r"buffered more than (1,048,576 bytes|1048\.6 KB)", limit["message"]), limit


def _lossy(path: Path, dup_acks: int, zero_windows: bool = False) -> None:
    """A transfer from server to client whose first segment the capture missed: the client
    answers each later segment with a duplicate ACK (a long transfer through a lossy tap). With
    `zero_windows`, no segment is missing: the client's ACK closes its window and a second one
    opens it again (a receiver that reads slowly, for hours)."""
    with open(path, "wb") as fh:
        s = _handshake_written(fh)
        c_seq, s_seq = s.next["c"], s.next["s"]
        back = p.tcp(sport=443, dport=40000, seq=0, ack=c_seq, payload=b"x")
        data = bytearray(p.eth(p.ipv4(back, src=p.SERVER_IP, dst=p.CLIENT_IP)))
        dup = p.eth(p.ipv4(p.tcp(sport=40000, dport=443, seq=c_seq, ack=s_seq)))
        for i in range(dup_acks):
            data[38:42] = struct.pack("!I", (s_seq + i + (0 if zero_windows else 1)) & 0xFFFFFFFF)
            frames: tuple[bytes, ...] = (bytes(data), dup)
            if zero_windows:
                acked = (s_seq + i + 1) & 0xFFFFFFFF
                shut, reopen = (
                    p.eth(p.ipv4(p.tcp(sport=40000, dport=443, seq=c_seq, ack=acked, window=w)))
                    for w in (0, 65535)
                )
                frames = (bytes(data), shut, reopen)
            for k, frame in enumerate(frames):
                t = T0 + 10 * SEC + (3 * i + k) * 10_000
                fh.write(struct.pack("<IIII", t // SEC, t % SEC // 1000, len(frame), len(frame)))
                fh.write(frame)


def test_case36_flagged_frames_cost_little_memory(tmp_path: Path) -> None:
    # The report lists every flagged frame (spec/report.md), so its memory grows with them:
    # once each, ~50 bytes (an int in a list), not several times over.
    small, large = tmp_path / "small.pcap", tmp_path / "large.pcap"
    _lossy(small, 2_000)
    _lossy(large, 200_000)
    base = analyze(small, "--jobs", "1")
    big = analyze(large, "--jobs", "1")
    assert_read(base)
    assert_read(big)
    (dup,) = big.findings("duplicate-ack")
    assert dup["count"] == len(dup["frames"]) == 200_000
    growth = big.rss_mb - base.rss_mb
    assert growth < 20, (base.rss_mb, big.rss_mb)


def test_case36_zero_window_periods_cost_little_memory(tmp_path: Path) -> None:
    # 100,000 zero-window periods: each costs its two flagged frames (zero-window, then
    # window-update), not a record of its own.
    small, large = tmp_path / "small.pcap", tmp_path / "large.pcap"
    _lossy(small, 1_000, zero_windows=True)
    _lossy(large, 100_000, zero_windows=True)
    base = analyze(small, "--jobs", "1")
    big = analyze(large, "--jobs", "1")
    assert_read(base)
    assert_read(big)
    (zero,) = big.findings("zero-window")
    assert zero["count"] == 100_000
    assert "(100,000 periods, " in zero["message"]
    growth = big.rss_mb - base.rss_mb
    assert growth < 16, (base.rss_mb, big.rss_mb)


# -- 37: SYN flood -----------------------------------------------------------------------------


def syn_flood(path: Path, count: int) -> None:
    frame = bytearray(p.tcp_frame(flags=p.SYN, dport=80, seq=1))
    with open(path, "wb") as fh:
        fh.write(p.pcap_header())
        for i in range(count):
            frame[26:30] = bytes([10, 128 | (i >> 16) & 63, (i >> 8) & 255, i & 255])
            frame[34:36] = struct.pack("!H", 1024 + i % 60000)
            t = T0 + i * 10_000
            fh.write(struct.pack("<IIII", t // SEC, t % SEC // 1000, len(frame), len(frame)))
            fh.write(frame)


def test_case37_syn_flood_evictions_reported(tmp_path: Path) -> None:
    path = tmp_path / "flood.pcap"
    syn_flood(path, 20_000)
    run = analyze(path, "--max-flows", "1000", fmt="text")
    assert run.rc == 0, run.err
    assert "flow-table-full" in run.out
    assert "19,000 flows were finalised early" in run.out, run.out[-2000:]
    assert run.cpu < 20, run.cpu


def test_case37_syn_flood_memory_bounded(tmp_path: Path) -> None:
    small, large = tmp_path / "small.pcap", tmp_path / "large.pcap"
    syn_flood(small, 4_000)
    syn_flood(large, 24_000)
    limits = ("--max-flows", "1000", "--max-report-flows", "1000")
    a = analyze(small, *limits, fmt="text")
    b = analyze(large, *limits, fmt="text")
    assert a.rc == b.rc == 0
    # 20,000 more flows through a 1,000-flow table and a 1,000-flow report: bounded means
    # (almost) no growth, and the flows not listed are still counted.
    assert b.rss_mb - a.rss_mb < 16, (a.rss_mb, b.rss_mb)
    assert "capture-report-limit" in b.out and "23,500 more flows" in b.out, b.out[:3000]


def test_case37_embryonic_flows_evicted_first() -> None:
    established = p.Session(sport=50000, dport=80, t0_ns=T0)
    established.handshake()
    frames = list(established.packets)
    frame = bytearray(p.tcp_frame(flags=p.SYN, dport=80, seq=1))
    for i in range(50):
        frame[26:30] = bytes([10, 9, 0, i])
        frames.append((T0 + SEC + i, bytes(frame)))
    established.t = T0 + 2 * SEC
    established.send("c", b"still here")
    established.close()
    frames += established.packets[3:]
    result = analyze_bytes(p.pcap(frames), options(max_flows=10))
    full = finding(result, "flow-table-full")
    assert full.count == 41, full
    (kept,) = [f for f in result.flows if f.client.endswith(":50000")]
    assert kept.bytes_client == 10 and kept.state == "SF", kept


# -- 38: state confusion -----------------------------------------------------------------------


def test_case38_state_confusion() -> None:
    s = p.Session(dport=80)
    s.raw("c", p.SYN, ack=0)
    s.raw("c", p.SYN, ack=0, seq=777_777)  # SYN retransmitted with a different ISN
    s.next["c"] = 777_778
    s.raw("s", p.SYN | p.ACK)
    s.next["s"] += 1
    s.raw("c", p.ACK)
    s.send("c", b"hello")
    s.raw("s", p.RST | p.ACK)
    s.raw("c", p.ACK | p.PSH, b"after reset")  # data after RST
    s.raw("s", p.RST, seq=123)  # injected out-of-window RST
    # the 4-tuple reused right after the close, TFO-style SYN with data
    s.raw("c", p.SYN, b"tfo data", seq=9_000_000, ack=0)
    s.next["c"] = 9_000_001 + 8
    s.raw("s", p.SYN | p.ACK, seq=44_000, ack=s.next["c"])
    s.next["s"] = 44_001
    s.raw("c", p.ACK)
    s.raw("c", p.FIN | p.ACK)
    s.raw("c", p.FIN | p.ACK)  # FIN retransmission
    s.next["c"] += 1
    s.raw("s", p.FIN | p.ACK)
    s.next["s"] += 1
    s.raw("c", p.ACK)
    result = analyze_bytes(p.pcap(s.packets))
    # Like Wireshark: the SYN with another ISN starts a new incarnation (the first SYN stays
    # unanswered); the ambiguity is reported as port reuse on each later incarnation.
    summary = [(f.state, f.history, f.bytes_client) for f in result.flows]
    assert summary == [("S0", "S", 0), ("RSTR", "ShADarr", 16), ("SF", "ShAFf", 8)], summary
    _, reset, tfo = result.flows
    assert reset.close.kind == "rst" and tfo.handshake.syn_ack
    for flow in (reset, tfo):
        assert "port-reused" in {f.name for f in flow.findings}
    assert "retransmission" in {f.name for f in tfo.findings}  # the repeated FIN


# -- 39: keep-alives and zero-window probes ----------------------------------------------------


def test_case39_keepalives_for_hours_not_retransmissions() -> None:
    s = p.Session(dport=80, step_ns=1_000_000)
    s.handshake()
    s.send("c", b"x" * 100)
    for _ in range(3 * 3600 // 75):  # every 75 s for 3 hours
        s.t += 75 * SEC
        s.raw("c", p.ACK, b"\x00", seq=s.next["c"] - 1)  # keep-alive with one garbage byte
        s.raw("s", p.ACK)
    s.close()
    flow = only_flow(p.pcap(s.packets))
    assert flow.tcp.keep_alives == 144
    assert flow.tcp.retransmissions == 0
    assert "retransmission" not in {f.name for f in flow.findings}


def test_case39_zero_window_probes_not_retransmissions() -> None:
    s = p.Session(dport=80)
    s.handshake()
    s.send("c", b"y" * 1000)
    s.raw("s", p.ACK, window=0)
    for _ in range(200):
        s.t += 30 * SEC
        s.raw("c", p.ACK, b"y")  # probe: the next byte, not advancing
        s.raw("s", p.ACK, window=0)
    flow = only_flow(p.pcap(s.packets))
    assert flow.tcp.zero_window_probes >= 199, flow.tcp
    assert flow.tcp.retransmissions <= 1, flow.tcp


# -- 40: idle flows expire and memory returns --------------------------------------------------


def test_case40_idle_flows_expire_memory_returns() -> None:
    from tests.craft import ack, synack
    from tests.craft import syn as craft_syn

    opts = AnalysisOptions()
    opts.limits.idle_timeout = 300.0
    closed = 0

    def on_close(flow: Any) -> None:
        nonlocal closed
        closed += 1

    table = FlowTable(opts, on_close=on_close)
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    n = 4_000
    for i in range(n):
        client = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:40000"
        t = i * 0.001
        table.add(craft_syn(src=client, time=t, frame=3 * i + 1))
        table.add(synack(dst=client, src="10.0.0.2:80", time=t, frame=3 * i + 2))
        table.add(ack(src=client, time=t, frame=3 * i + 3))
    peak = tracemalloc.get_traced_memory()[0]
    assert len(table) == n
    table.expire(n * 0.001 + 301.0)  # capture time moves on: all idle
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(table) == 0 and closed == n
    grew = peak - baseline
    assert grew > 1 << 20, grew  # the flows did cost memory...
    assert after - baseline < 0.1 * grew, (baseline, peak, after)  # ...and it came back


def test_case40_idle_timeout_flag() -> None:
    s = p.Session(dport=80)
    s.handshake()
    s.t += 400 * SEC
    s.send("c", b"late")
    result = analyze_bytes(p.pcap(s.packets), options(idle_timeout=300.0))
    assert len(result.flows) == 2  # the late data starts a new (mid-stream) flow
    result = analyze_bytes(p.pcap(s.packets), options(idle_timeout=1000.0))
    assert len(result.flows) == 1
