"""The HTML report without a browser: self-contained, escaped, diagrams present."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from report_fixtures import big_capture, counted_store, hostile_result, long_flow, seed_result

from tcpdiag.report.html import ladder_svg, render_html, tsg_svg
from tcpdiag.report.options import ReportOptions
from tcpdiag.result import AnalysisResult, CaptureResult

OPTS = ReportOptions()


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.data: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.data.append(data)


def _parse(text: str) -> _Tags:
    p = _Tags()
    p.feed(text)
    p.close()
    return p


def test_self_contained() -> None:
    page = render_html(seed_result(), OPTS)
    tags = _parse(page).tags
    for tag, attrs in tags:
        assert tag not in {"link", "img", "iframe", "object", "embed"}, tag
        assert "src" not in attrs, (tag, attrs)
        href = attrs.get("href")
        assert href is None or href.startswith("#"), href
    assert "@import" not in page
    assert set(re.findall(r"url\(([^)]*)\)", page)) == {"#ah"}
    # Only namespace URIs mention http; the CSP forbids every fetch anyway.
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in page
    assert [t for t, _ in tags].count("script") == 1


def test_flow_table_and_details() -> None:
    page = render_html(seed_result(), OPTS)
    p = _parse(page)
    classes = [a.get("class") for t, a in p.tags if t == "svg"]
    # Two problem flows, each with a ladder and a time-sequence graph.
    assert classes == ["ladder", "tsg", "ladder", "tsg"]
    assert 'id="c0-f1"' in page and 'id="c0-f2"' in page and 'id="c0-f3"' not in page
    text = "".join(p.data)
    assert "connection refused by 10.0.0.2:8080" in text
    assert "tls-flight-incomplete" in text


def test_ladder_has_one_arrow_per_packet_and_marks_findings() -> None:
    flow = seed_result().captures[0].flows[1]
    svg = ladder_svg(flow)
    assert svg.count('class="pkt"') == 12
    assert svg.count('marker-end="url(#ah)"') == 12
    assert "\u25c0 tls-flight-incomplete" in svg
    assert "PSH/ACK len=245 seq=1" in svg and "ClientHello 245" in svg
    assert "Alert(fatal, unexpected_message) 7" in svg


def test_tsg_marks_retransmissions() -> None:
    healthy = seed_result().captures[0].flows[2]
    svg = tsg_svg(healthy)
    assert svg.count('class="retrans"') == 1
    assert "frame 23 PSH/ACK seq=518 len=80 (retransmission)" in svg
    assert 'class="ackline"' in svg
    assert tsg_svg(seed_result().captures[0].flows[1]).count('class="retrans"') == 0


def test_elided_timeline_in_ladder() -> None:
    svg = ladder_svg(long_flow(skipped=777))
    assert "777 packets not shown" in svg
    assert svg.count('class="pkt"') == 100


def test_hostile_strings_are_escaped() -> None:
    page = render_html(hostile_result(), ReportOptions(show_all_timelines=True))
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", page)
    page.encode("utf-8")  # no lone surrogates
    tags = [t for t, _ in _parse(page).tags]
    assert tags.count("script") == 1
    external = [a for t, a in _parse(page).tags if t == "a" and (a.get("href") or "#")[0] != "#"]
    assert external == []


def test_many_flows_are_capped() -> None:
    cap = CaptureResult("big.pcap", "pcap", flows=[long_flow(i) for i in range(1, 80)])
    page = render_html(AnalysisResult("0", [cap]), OPTS)
    assert "29 more flows not shown" in page
    assert "59 more flow details not shown" in page


def test_tsg_cuts_long_idle_gaps() -> None:
    flow = seed_result().captures[0].flows[2]
    assert flow.timeline is not None
    flow.timeline[-1].time += 60.0  # a minute of silence before the last ACK
    svg = tsg_svg(flow)
    assert svg.count("60.001 s idle") == 2  # one mark per panel
    # The data segments still spread over the plot instead of one pixel column.
    xs = sorted({float(x) for x in re.findall(r'<line x1="([0-9.]+)" y1="[0-9.]+" x2="\1"', svg)})
    assert xs[-1] - xs[0] > 300
    assert "idle" not in tsg_svg(seed_result().captures[0].flows[2])


def test_a_stored_capture_reads_only_the_flows_it_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flows kept in a store: the report reads those of its table and details, not every flow
    (a list of them all held the capture's flows, timelines included); it is the report of
    the same flows in a list."""
    cap = big_capture(3000, problems_every=100)
    listed = render_html(AnalysisResult("0", [cap]), OPTS)
    cap.flows, reads = counted_store(cap.flows, monkeypatch)
    assert render_html(AnalysisResult("0", [cap]), OPTS) == listed
    assert "more flow details not shown" in listed
    # the table (50), the details (20), a binary search: not the 3,000 flows
    assert len(reads) < 100, len(reads)
