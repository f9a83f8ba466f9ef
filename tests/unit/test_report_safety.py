"""Property test (target O1): random text in every packet-derived field keeps every renderer's
output safe and well-formed (bad-inputs cases 47-49)."""

from __future__ import annotations

import itertools
import json
import re
import xml.etree.ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_fixtures import truncated_tls_flow

from tcpdiag.report.github import render_github
from tcpdiag.report.html import render_html
from tcpdiag.report.json import render_json
from tcpdiag.report.junit import render_junit
from tcpdiag.report.options import ReportOptions
from tcpdiag.report.sarif import render_sarif
from tcpdiag.report.text import render_check, render_text
from tcpdiag.result import AnalysisResult, CaptureResult, Finding

BAD_PLAIN = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
nasty = st.text(
    alphabet=st.one_of(
        st.characters(codec=None),
        st.sampled_from(["\x1b", "\x9b", "\x07", "[", "]", "/", ":", "<", "&", "\udcff"]),
    ),
    max_size=60,
)


def _result(values: list[str]) -> AnalysisResult:
    v = itertools.cycle(values)
    flow = truncated_tls_flow()
    assert flow.tls is not None and flow.timeline is not None
    flow.tls.sni = next(v)
    flow.tls.alpn = [next(v), next(v)]
    flow.tls.version = next(v)
    flow.tls.cipher_suite = next(v)
    flow.tls.alerts[0].description = next(v)
    flow.verdict = next(v)
    flow.history = next(v)
    flow.findings = [
        Finding(f.name, f.severity, next(v), f.frames, f.time, 2) for f in flow.findings
    ]
    flow.timeline[3].tls = [next(v)]
    flow.timeline[5].notes = [next(v), "tls-alert"]
    cap = CaptureResult(next(v) or "x", "pcap", [next(v)], flows=[flow])
    cap.findings = [Finding("capture-damaged", flow.findings[0].severity, next(v))]
    return AnalysisResult("0.1.0", [cap])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(nasty, min_size=1, max_size=8))
def test_every_renderer_stays_safe(values: list[str]) -> None:
    result = _result(values)
    plain = ReportOptions(color=False, show_all_timelines=True)
    for text in (render_text(result, plain), render_check(result, plain)):
        assert not BAD_PLAIN.search(text.encode("utf-8"))
        assert not BIDI.search(text)
    color = render_text(result, ReportOptions(color=True))
    stripped = re.sub(r"\x1b\[[0-9;]*m", "", color)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", stripped)
    assert not BIDI.search(color)

    def bad(name: str) -> None:
        raise ValueError(name)

    json.loads(render_json(result, plain), parse_constant=bad)
    sarif = json.loads(render_sarif(result, plain), parse_constant=bad)
    assert sarif["version"] == "2.1.0"
    ET.fromstring(render_junit(result, plain).encode("utf-8"))
    for line in render_github(result, plain).splitlines():
        assert line.startswith("::") and not re.search("[\x00-\x1f\x7f-\x9f]", line)
    page = render_html(result, plain)
    page.encode("utf-8")
    assert page.count("<script") == 1
