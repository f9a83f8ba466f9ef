"""The flows of a JSON or JSON Lines report made into text by forked processes
(`report/parallel.py`, `analyze --jobs N`): the same report, byte for byte."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

import tcpdiag.report.parallel as parallel
from tcpdiag import __version__
from tcpdiag.config import AnalysisOptions
from tcpdiag.engine import analyze_capture
from tcpdiag.report import ReportOptions, render
from tcpdiag.result import AnalysisResult, FlowResult
from tcpdiag.split import analyze_split
from tests.synthetic import short_connections
from tests.unit.report_fixtures import refused_flow


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return short_connections(tmp_path_factory.mktemp("parallel") / "failures.pcap", 12_000, seed=5)


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "MIN_PARALLEL_FLOWS", 10)
    monkeypatch.setattr(parallel, "BATCH_FLOWS", 7)


def _report(result: AnalysisResult, fmt: str, jobs: int, show_all: bool = False) -> str:
    options = ReportOptions(color=False, jobs=jobs, show_all_timelines=show_all)
    return "".join(render(fmt, result, options))


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_the_report_is_the_same_made_in_parallel(capture: Path, fmt: str) -> None:
    stored = analyze_capture(str(capture), AnalysisOptions(keep_all_timelines=True))
    assert len(stored.flows) > 300
    merged = analyze_split(str(capture), AnalysisOptions(keep_all_timelines=True), 2)
    result = AnalysisResult(version=__version__, captures=[stored, merged])
    one = _report(result, fmt, 1, show_all=True)
    assert stored.flows[0].timeline  # timelines are part of what the children make
    for jobs in (2, 3):
        assert _report(result, fmt, jobs, show_all=True) == one


def _flows(n: int) -> list[FlowResult]:
    return [refused_flow(fid=i, frame=2 * i) for i in range(1, n + 1)]


def _texts(chunks: list[str]) -> list[str]:
    """The flows' texts (each ends with ';') in the chunks `flow_texts` handed back."""
    return "".join(chunks).split(";")[:-1]


def test_flows_are_made_by_other_processes() -> None:
    flows = _flows(100)
    chunks = list(parallel.flow_texts(flows, lambda i, f: f"{i}:{f.id}:{os.getpid()};", 2))
    texts = _texts(chunks)
    # in order, each given its position
    assert [t.split(":")[:2] for t in texts] == [[str(i), str(i + 1)] for i in range(100)]
    makers = {int(t.split(":")[2]) for t in texts}
    assert os.getpid() not in makers
    assert 1 <= len(makers) <= 2
    # one chunk per batch (BATCH_FLOWS is 7 here), each from one process
    assert len(chunks) == -(-100 // parallel.BATCH_FLOWS)
    assert all(len({t.split(":")[2] for t in _texts([c])}) == 1 for c in chunks)


def test_children_grow_with_the_square_root_of_the_batches() -> None:
    assert [parallel.children_for(n) for n in (1, 2, 8, 16, 157, 1000)] == [1, 2, 4, 8, 24, 62]
    # 15 batches of 7 flows (here), 64 CPUs: 6 children make them, in order.
    flows = _flows(100)
    texts = _texts(list(parallel.flow_texts(flows, lambda i, f: f"{i}:{os.getpid()};", 64)))
    assert [int(t.split(":")[0]) for t in texts] == list(range(100))
    assert len({t.split(":")[1] for t in texts}) == parallel.children_for(15) == 6


def test_few_flows_are_made_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "MIN_PARALLEL_FLOWS", 2_000)
    flows = _flows(49)
    texts = list(parallel.flow_texts(flows, lambda i, f: str(os.getpid()), 4))
    assert texts == [str(os.getpid())] * 49  # one chunk per flow


def test_a_reader_that_stops_early_leaves_no_process() -> None:
    # `| head -1`: the report stops after its first flow; the children are stopped at once,
    # whatever they were doing (a pool could deadlock here, its task thread on a queue lock).
    flows = _flows(5_000)
    texts = parallel.flow_texts(flows, lambda i, f: f"{f.id};", 3)
    assert next(texts) == "".join(f"{i};" for i in range(1, parallel.BATCH_FLOWS + 1))
    texts.close()
    assert multiprocessing.active_children() == []


def test_an_error_in_a_child_is_raised_here_in_order() -> None:
    def text(i: int, flow: FlowResult) -> str:
        if flow.id == 700:
            raise ValueError("flow 700")
        return f"{flow.id};"

    made: list[str] = []
    with pytest.raises(ValueError, match="flow 700"):
        made.extend(parallel.flow_texts(_flows(1_000), text, 2))
    before = 699 // parallel.BATCH_FLOWS * parallel.BATCH_FLOWS  # the batches before 700's
    assert _texts(made) == [str(i) for i in range(1, before + 1)]
    assert multiprocessing.active_children() == []
