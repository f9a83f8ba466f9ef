"""The text report: content, ordering, plain-ASCII mode, hostile strings, big captures."""

from __future__ import annotations

import io
import re
import time

import pytest
from report_fixtures import (
    HOSTILE_SNI,
    T0,
    big_capture,
    counted_store,
    hostile_result,
    long_flow,
    seed_result,
)

from tcpdiag.model import ACK, FIN, PSH, RST, SYN
from tcpdiag.report.options import ReportOptions
from tcpdiag.report.text import flag_names, make_console, print_text, render_check, render_text
from tcpdiag.result import AnalysisResult, CaptureResult, Finding, Severity
from tcpdiag.store import LazyFlows

PLAIN = ReportOptions(color=False)
# Case 47: no C0 (except \t \n), DEL, C1 byte anywhere in plain output; no bidi controls.
BAD_BYTES = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


ROW = re.compile(r"^\|\s*(\d+)\s*\|")


def _lines_with(text: str, needle: str) -> list[str]:
    """Table rows (lines starting with a number cell) that contain `needle`."""
    return [line for line in text.splitlines() if ROW.match(line) and needle in line]


def _first_cells(text: str) -> list[int]:
    return [int(m.group(1)) for line in text.splitlines() if (m := ROW.match(line))]


def test_flag_names_read_like_wireshark() -> None:
    assert flag_names(SYN) == "SYN"
    assert flag_names(SYN | ACK) == "SYN/ACK"
    assert flag_names(PSH | ACK) == "PSH/ACK"
    assert flag_names(FIN | ACK) == "FIN/ACK"
    assert flag_names(RST | ACK) == "RST/ACK"
    assert flag_names(0) == "none"


def test_header_and_flow_table() -> None:
    out = render_text(seed_result(), PLAIN)
    assert out.splitlines()[0] == "captures/seed-tls.pcap"
    assert "pcapng | ETHERNET | 28 packets (28 TCP) | 2.310 s" in out
    assert "3 flows, 2 with problems; findings: 4 error, 2 info" in out
    # Problem flows first (error flows, by id), the healthy one last.
    assert _first_cells(out)[:3] == [1, 2, 3]
    assert "| REJ   |   184 us | E connection refused by 10.0.0.2:8080" in out


def test_problem_flow_gets_findings_and_annotated_timeline() -> None:
    out = render_text(seed_result(), PLAIN)
    assert "Flow 2  192.168.1.10:40512 -> 93.184.216.34:443 | RSTR ShADadr | 68.2 ms" in out
    assert "ERROR tls-flight-incomplete client sent Finished* 45 B" in out
    # One row per packet: frame, relative time, delta, arrow, flags, seq, ack, len, win, TLS.
    row = _lines_with(out, "Finished* 45")
    assert row, out
    cells = [c.strip() for c in row[0].split("|")]
    assert cells[1:10] == ["12", "0.046700", "+2.4 ms", "->", "PSH/ACK", "246", "4204", "45", "501"]
    assert "E tls-flight-incomplete" in cells[10]
    alert = _lines_with(out, "Alert(fatal, unexpected_message) 7")[0]
    assert "<-" in alert and "PSH/ACK" in alert
    rst = _lines_with(out, "RST/ACK | 4211")[0]
    assert "E reset-mid-stream" in rst
    assert "ServerHello 127 + Certificate 2673+" in out
    # Flow 3 has only an info finding: listed, but no timeline by default.
    assert "Flow 3" not in out
    assert "Informational findings in other flows" in out
    assert "retransmission 1 retransmitted segment" in out


def test_all_shows_every_timeline_and_flow_filter_one() -> None:
    out = render_text(seed_result(), ReportOptions(color=False, show_all_timelines=True))
    assert "Flow 3  [2001:db8::1]:50100 -> [2001:db8::2]:443" in out
    assert "i retransmission" in out  # the inline note on frame 23
    one = render_text(seed_result(), ReportOptions(color=False, flow_filter=3))
    assert "Flow 3 " in one and "Flow 2 " not in one and "Flow 1 " not in one
    assert "1 flows, 0 with problems" not in one  # header counts the capture, not the filter


def test_no_timeline_option() -> None:
    out = render_text(seed_result(), ReportOptions(color=False, timelines=False))
    assert "Flow 2 " in out and not _lines_with(out, "Finished* 45")


def test_host_and_port_filters() -> None:
    out = render_text(seed_result(), ReportOptions(color=False, port_filter=8080))
    assert "Flow 1 " in out and "Flow 2 " not in out
    out = render_text(seed_result(), ReportOptions(color=False, host_filter="2001:db8:0::2"))
    assert "[2001:db8::2]:443" in out and "Flow 1 " not in out
    out = render_text(seed_result(), ReportOptions(color=False, port_filter=9))
    assert "no TCP flows match the filter" in out


def test_long_timeline_is_elided_in_the_middle() -> None:
    cap = CaptureResult("x.pcap", "pcap", flows=[long_flow(skipped=5000)])
    out = render_text(AnalysisResult("0", [cap]), PLAIN)
    lines = out.splitlines()
    gap = next(i for i, line in enumerate(lines) if "... 5000 packets not shown" in line)
    assert lines[gap].startswith("|   ... |")
    before = lines[gap - 1].split("|")[1].strip()
    after = lines[gap + 1].split("|")[1].strip()
    assert (before, after) == ("60", "5061")
    # The delta restarts after the gap (no bogus 12 s delta).
    assert lines[gap + 1].split("|")[3].strip() == ""


def test_plain_output_is_ascii() -> None:
    out = render_text(seed_result(), ReportOptions(color=False, show_all_timelines=True))
    assert out.isascii()
    assert "\x1b" not in out


def test_color_output_uses_unicode_and_only_sgr_sequences() -> None:
    out = render_text(seed_result(), ReportOptions(color=True))
    assert "\u2192" in out and "\u2716" in out
    assert "\x1b[" in out
    assert re.sub(r"\x1b\[[0-9;]*m", "", out).count("\x1b") == 0


def test_hostile_strings_plain() -> None:
    # Wide enough that no hostile string is folded across lines.
    for opts in (
        ReportOptions(color=False, width=3000),
        ReportOptions(color=False, width=3000, show_all_timelines=True),
    ):
        out = render_text(hostile_result(), opts)
        data = out.encode("utf-8")
        assert not BAD_BYTES.search(data)
        assert not BIDI.search(out)
        # Markup printed literally, not interpreted or dropped.
        assert "[bold red]OK[link=https://x]y[/link]:warning:" in out
        assert "\\x1b[2J\\x1b]0;pwn\\x07" in out


def test_hostile_strings_color() -> None:
    opts = ReportOptions(color=True, show_all_timelines=True, width=3000)
    out = render_text(hostile_result(), opts)
    # Only SGR sequences (made by tcpdiag), no OSC, no OSC 8 hyperlinks, no CSI other than m.
    stripped = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "\x1b" not in stripped
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", stripped)
    assert not BIDI.search(out)
    assert "[bold red]x[/]" in stripped  # the SNI's markup, literally
    assert HOSTILE_SNI not in out  # ... but never the raw escape sequences


def test_print_text_on_a_given_console() -> None:
    buf = io.StringIO()
    console = make_console(buf, ReportOptions(color=False, width=100))
    print_text(seed_result(), console, ReportOptions(color=False))
    assert "Flow 2  192.168.1.10:40512" in buf.getvalue()


def test_100k_flows_render_top_n_quickly() -> None:
    cap = big_capture(100_000)
    start = time.perf_counter()
    out = render_text(AnalysisResult("0", [cap]), PLAIN)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, elapsed
    assert "99950 more flows not shown (50 with problems)" in out
    assert "80 more flow details not shown" in out
    # The table starts with the problem flows (every 1000th is refused).
    assert _first_cells(out)[:3] == [1000, 2000, 3000]


def test_a_stored_capture_reads_only_the_flows_it_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flows kept in a store (every analysis of a file): the report reads the flows of its
    table, its details and the informational findings it prints, and only counts the other
    flows with findings (read whole, the 20,000 of a 2M-packet capture held ~90 MB). The
    report is the one of the same flows in a list."""
    cap = big_capture(3000, problems_every=100)
    for flow in cap.flows:
        if flow.id % 7 == 0 and not flow.findings:
            flow.findings = [
                Finding("zero-window", Severity.INFO, f"flow {flow.id}", (1,), T0, flow.id)
            ]
    listed = render_text(AnalysisResult("0", [cap]), PLAIN)
    store, reads = counted_store(cap.flows, monkeypatch)
    cap.flows = store
    assert render_text(AnalysisResult("0", [cap]), PLAIN) == listed
    # the info flows and the refused flows beyond the 20 detailed, less the 50 printed
    minor = sum(1 for i in range(1, 3001) if i % 7 == 0 and i % 100) + 30 - 20
    assert f"{minor - 50} more flows with findings not shown" in listed
    # the table (50), the details (20), the informational findings (50), a binary search: not
    # the 3,000 flows
    assert len(reads) < 140, len(reads)
    # Flows read through another sequence (a policy's adjustments): looked at one at a time,
    # the same report.
    cap.flows = LazyFlows(store)
    assert render_text(AnalysisResult("0", [cap]), PLAIN) == listed


def test_check_text_lists_failing_findings_and_verdict() -> None:
    out = render_check(seed_result(), ReportOptions(color=False))
    lines = out.strip().splitlines()
    assert lines[0].startswith(
        "captures/seed-tls.pcap: flow 1 (10.0.0.1:51000 -> 10.0.0.2:8080), frame 1: ERROR "
        "connection-refused:"
    )
    assert lines[-1] == "4 findings at or above error in 1 of 1 capture (2 below the threshold)"
    ok = render_check(AnalysisResult("0", [CaptureResult("a.pcap", "pcap")]), PLAIN)
    assert ok.strip() == "ok no findings at or above error in 1 capture"


def test_healthy_flow_verdict_says_ok_once() -> None:
    # The plain glyph of a healthy flow is "ok" and its verdict starts with "ok:": the table
    # used to print "ok ok: ...".
    result = seed_result()
    healthy = result.captures[0].flows[-1]
    healthy.findings = []
    healthy.verdict = "ok: 4,139 bytes in 61 ms, closed by both sides (FIN)"
    out = render_text(result, PLAIN)
    assert "ok ok" not in out
    assert "| ok: 4,139 bytes in 61 ms" in out


def test_near_miss_problem_flow_keeps_its_glyph() -> None:
    out = render_text(seed_result(), PLAIN)
    assert "| E connection refused by 10.0.0.2:8080" in out
