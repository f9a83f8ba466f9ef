"""JSON and JSONL are written in chunks (one flow at a time) with exactly the text of the
whole-document rendering, so huge reports cost no giant string."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcpdiag.cli.output import write_file
from tcpdiag.engine import analyze_capture
from tcpdiag.report import ReportOptions, render
from tcpdiag.report.json import dumps_outline, iter_json, iter_jsonl, result_json
from tcpdiag.result import AnalysisResult
from tests.conftest import PROJECT_CAPTURES

CAPTURES = sorted(PROJECT_CAPTURES.glob("*.pcap"))[:12]


@pytest.fixture(scope="module")
def result() -> AnalysisResult:
    return AnalysisResult("test", [analyze_capture(str(p)) for p in CAPTURES])


@pytest.mark.parametrize(
    "options",
    [ReportOptions(), ReportOptions(flow_filter=1), ReportOptions(port_filter=1)],
    ids=["all", "flow-1", "no-match"],
)
def test_streamed_json_equals_the_outline(result: AnalysisResult, options: ReportOptions) -> None:
    whole = dumps_outline(result_json(result, options)) + "\n"
    chunks = list(iter_json(result, options))
    assert "".join(chunks) == whole
    json.loads(whole)
    if options.port_filter is None:
        # One chunk per flow at least: nothing builds the document first.
        assert len(chunks) > sum(len(c.flows) for c in result.captures)


def test_streamed_jsonl_has_a_line_per_flow_then_the_summary(result: AnalysisResult) -> None:
    lines = "".join(iter_jsonl(result, ReportOptions())).splitlines()
    flows = sum(len(c.flows) for c in result.captures)
    assert len(lines) == flows + 1
    assert json.loads(lines[-1])["summary"]["flows"] == flows
    assert all("capture" in json.loads(line) for line in lines[:-1])


def test_chunks_are_written_atomically(result: AnalysisResult, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    out.write_text("previous")
    write_file(str(out), render("json", result, ReportOptions()))
    assert json.loads(out.read_text())["tcpdiag"] == "test"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
