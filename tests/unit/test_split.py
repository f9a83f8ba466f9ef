"""One capture split by flow across local processes (`split.py`, `analyze --jobs N`) gives the
single-process report, byte for byte.

The workers are real processes. Each comparison runs both ways with the C block reader (built
from `_scan.c` as in `test_scan.py`; forked workers inherit it) and with the pure-Python path.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

import tcpdiag.split as split
import tcpdiag.store as store_module
from tcpdiag.capture import open_capture
from tcpdiag.cli.main import cli
from tcpdiag.config import AnalysisOptions, Limits
from tcpdiag.decode import scan
from tcpdiag.distributed import merge_shards
from tcpdiag.engine import (
    AnalysisInterrupted,
    Engine,
    FlowTableOverflow,
    analyze_capture,
    analyze_partial,
)
from tcpdiag.errors import CaptureError
from tcpdiag.model import NO_OPTIONS, RawPacket, Segment, TcpOptions
from tcpdiag.report.json import capture_json, dumps
from tcpdiag.report.options import ReportOptions
from tcpdiag.report.text import render_text
from tcpdiag.result import AnalysisResult, CaptureResult
from tcpdiag.shards import Numbering
from tcpdiag.store import MergedStore
from tests.capture_files import PUBLIC
from tests.cbuild import REPO, build_extension, load_extension
from tests.synthetic import short_connections


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    target = build_extension(
        REPO / "tcpdiag" / "decode" / "_scan.c",
        "tcpdiag.decode._scan",
        tmp_path_factory.mktemp("scan"),
    )
    module = load_extension(target, "tcpdiag.decode._scan")
    module.configure(RawPacket, Segment, TcpOptions, NO_OPTIONS)
    return module


@pytest.fixture(params=["c", "python"])
def reader(request: pytest.FixtureRequest, native: ModuleType) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scan, "_SCAN", native if request.param == "c" else None)
        yield request.param


@pytest.fixture(scope="module")
def many_flows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~30k packets of short connections, most of them failing: thousands of flows."""
    return short_connections(tmp_path_factory.mktemp("split") / "failures.pcap", 30_000, seed=3)


def _json(result: CaptureResult) -> str:
    return dumps(capture_json(result))


def _same(got: str, expected: str, what: object = "") -> None:
    """`got == expected`, failing with where they part (pytest's diff of two reports of
    thousands of flows takes minutes)."""
    if got != expected:
        at = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), None)
        at = min(len(got), len(expected)) if at is None else at
        pytest.fail(f"{what}: reports differ at {at}: {got[at - 80 : at + 80]!r}")


def _corpus() -> list[Path]:
    found = []
    for folder in (REPO / "captures", PUBLIC):
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if ".pcap" in p.name or p.suffix == ".cap")
    return found


def test_split_equals_one_process_on_every_capture(reader: str) -> None:
    compared = 0
    for path in _corpus():
        try:
            single = _json(analyze_capture(str(path)))
        except CaptureError as exc:
            with pytest.raises(CaptureError) as raised:
                split.analyze_split(str(path), AnalysisOptions(), 2)
            assert str(raised.value) == str(exc)
            continue
        for jobs in (2, 3):
            assert _json(split.analyze_split(str(path), AnalysisOptions(), jobs)) == single, (
                path.name,
                jobs,
            )
        compared += 1
    assert compared >= 20


@pytest.mark.parametrize("limit", [40_000, 600, 7])
def test_split_applies_the_report_quota_to_the_whole_capture(
    reader: str, many_flows: Path, limit: int
) -> None:
    """Each worker keeps at most the quota of its own flows; the merge keeps the quota of the
    whole capture, numbers flows as one process does and counts what it released."""
    options = AnalysisOptions(limits=Limits(max_report_flows=limit))
    single = analyze_capture(str(many_flows), options)
    merged = split.analyze_split(str(many_flows), options, 3)
    flows = list(merged.flows)
    assert len(flows) == len(single.flows) <= limit
    assert merged.flows_released == single.flows_released
    assert merged.released_findings == single.released_findings
    if limit == 40_000:
        assert single.flows_released == 0
        assert len(flows) > 1_500
    else:
        assert single.flows_released > 1_000  # the quota bound hard
    # In the one-process numbering: the flows kept are those of the same ids.
    assert [f.id for f in flows] == [f.id for f in single.flows]
    assert _json(merged) == _json(single)
    # The findings per severity, from the stores' facts: those of the flows kept.
    counted = Counter(f.severity for flow in flows for f in flow.findings)
    assert store_module.finding_severities(merged.flows) == counted
    assert store_module.finding_severities(single.flows) == counted
    plain = ReportOptions(color=False)
    text = render_text(AnalysisResult("0", [single]), plain)
    assert render_text(AnalysisResult("0", [merged]), plain) == text


@pytest.mark.parametrize("limit", [40_000, 600])
def test_dask_shards_merge_to_the_same_report(reader: str, many_flows: Path, limit: int) -> None:
    """The Dask path's shards (flows kept in lists, merged by `distributed.merge_shards`) share
    the numbering and the quota of the whole capture (`shards.py`)."""
    options = AnalysisOptions(limits=Limits(max_report_flows=limit))
    parts = [analyze_partial(str(many_flows), options, (i, 3)) for i in range(3)]
    assert all(p.finish_keys is not None and len(p.finish_keys) == len(p.flows) for p in parts)
    merged = merge_shards(parts, options)
    single = analyze_capture(str(many_flows), options)
    assert merged.flows_released == single.flows_released
    assert _json(merged) == _json(single)


@pytest.mark.parametrize("closed", [1, 130])
def test_split_is_exact_when_closed_flows_are_finalised_early(
    reader: str, many_flows: Path, closed: int
) -> None:
    """The limit on closed flows (and tombs) is kept per bucket of flows, and a shard holds
    whole buckets: the shards finalise early exactly the flows one process does, so even with
    that limit and the report quota both reached, the report is the same, byte for byte."""
    options = AnalysisOptions(limits=Limits(max_closed_flows=closed, max_report_flows=600))
    with open_capture(str(many_flows)) as reader_:
        engine = Engine(options, path=str(many_flows))
        engine.feed_capture(reader_)
        single = engine.finish(reader_)
    assert engine._table.closed_early > 900  # the limit bound
    assert single.flows_released > 1_000
    expected = _json(single)
    for jobs in (2, 3):
        _same(_json(split.analyze_split(str(many_flows), options, jobs)), expected, jobs)
    parts = [analyze_partial(str(many_flows), options, (i, 3)) for i in range(3)]
    _same(_json(merge_shards(parts, options)), expected, "dask")


def test_a_split_has_at_most_one_shard_per_bucket(many_flows: Path) -> None:
    """More jobs than buckets of flows: one worker per bucket, the same report."""
    options = AnalysisOptions(limits=Limits(max_report_flows=600))
    with pytest.raises(ValueError, match="at most 64 shards"):
        analyze_partial(str(many_flows), options, (0, 65))
    expected = _json(analyze_capture(str(many_flows), options))
    _same(_json(split.analyze_split(str(many_flows), options, 70)), expected, 70)


def test_workers_share_the_flow_table_limits(many_flows: Path) -> None:
    """Each worker's table gets 1/N of the limit on flows, rounded down (those on closed flows
    are kept per bucket of flows, and a worker holds whole buckets)."""
    options = AnalysisOptions(limits=Limits(max_flows=9, max_closed_flows=5))
    shared = split.worker_options(options, 2).limits
    assert (shared.max_flows, shared.max_closed_flows) == (4, 5)
    assert shared.max_report_flows == options.limits.max_report_flows


@pytest.mark.parametrize("max_flows", [9, 400])
def test_a_worker_that_must_evict_hands_the_capture_to_one_process(
    many_flows: Path, monkeypatch: pytest.MonkeyPatch, max_flows: int
) -> None:
    """Which flow a full table evicts depends on every flow it follows: at a worker's first
    eviction the workers stop, and one process analyses the capture, so the report is still
    one process's (and names the limit as given)."""
    options = AnalysisOptions(limits=Limits(max_flows=max_flows))
    expected = analyze_capture(str(many_flows), options)
    fallbacks: list[str] = []

    def one_process(path: str, opts: AnalysisOptions) -> CaptureResult:
        fallbacks.append(path)
        return analyze_capture(path, opts)

    monkeypatch.setattr(split, "analyze_capture", one_process)
    merged = split.analyze_split(str(many_flows), options, 2)
    assert fallbacks == [str(many_flows)]
    _same(_json(merged), _json(expected))
    if max_flows == 9:
        messages = {f.name: f.message for f in merged.findings}
        assert "(9 flows)" in messages["flow-table-full"]


def test_workers_that_never_evict_are_merged(
    many_flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The near miss: room for every worker's flows; no fallback.
    monkeypatch.setattr(split, "analyze_capture", None)
    options = AnalysisOptions(limits=Limits(max_flows=5_000))
    merged = split.analyze_split(str(many_flows), options, 2)
    monkeypatch.undo()
    _same(_json(merged), _json(analyze_capture(str(many_flows), options)))


def test_a_worker_stops_at_its_first_eviction(many_flows: Path, tmp_path: Path) -> None:
    options = split.worker_options(AnalysisOptions(limits=Limits(max_flows=9)), 2)
    with pytest.raises(FlowTableOverflow) as overflow:
        split.analyze_shard(str(many_flows), options, (0, 2), str(tmp_path / "s"), True)
    assert overflow.value.evictions == 1
    done = split.analyze_shard(str(many_flows), options, (0, 2), str(tmp_path / "t"))
    assert done.part.context.evicted_flows > 1


def test_flow_ids_follow_first_frames(many_flows: Path) -> None:
    """The merge numbers flows by first frame: that is how the flow table numbers them."""
    flows = list(analyze_capture(str(many_flows)).flows)
    assert [f.id for f in flows] == list(range(1, len(flows) + 1))
    frames = [f.first_frame for f in flows]
    assert frames == sorted(frames)


def test_a_worker_that_dies_is_a_capture_error(
    many_flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dies(*args: object, **kwargs: object) -> None:
        os._exit(3)

    monkeypatch.setattr(split, "analyze_shard", dies)
    with pytest.raises(CaptureError, match=r"worker process ended without a result \(exit code 3"):
        split.analyze_split(str(many_flows), AnalysisOptions(), 2)


def test_a_worker_error_is_raised_in_the_parent(
    many_flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in a worker (a full disk, a bug) reaches the parent as itself: the CLI then
    says it in one line, with the exit code it has in one process."""

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(split, "analyze_shard", full)
    with pytest.raises(OSError, match="No space left on device"):
        split.analyze_split(str(many_flows), AnalysisOptions(), 2)


def test_ctrl_c_reports_what_every_worker_read(
    reader: str, many_flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker interrupted part-way sends its flows so far; the merged result says it is
    incomplete, as one process's does."""
    feed = Engine.feed_capture

    def interrupted(self: Engine, capture: object) -> None:
        if self._shard is not None and self._shard[0] == 1:
            os.kill(os.getpid(), signal.SIGINT)  # to this worker only
        feed(self, capture)  # type: ignore[arg-type]

    monkeypatch.setattr(Engine, "feed_capture", interrupted)
    with pytest.raises(AnalysisInterrupted) as stop:
        split.analyze_split(str(many_flows), AnalysisOptions(), 2)
    partial = stop.value.partial
    assert partial.incomplete
    whole = analyze_capture(str(many_flows))
    assert 0 < len(list(partial.flows)) < len(whole.flows)


def test_ctrl_c_sent_to_the_parent_is_passed_on(many_flows: Path) -> None:
    """A SIGINT to the parent only (not from a terminal): it passes it on to the workers and
    reports what they read."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scan, "_SCAN", None)  # the slower path: the workers are still reading
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(AnalysisInterrupted) as stop:
                split.analyze_split(str(many_flows), AnalysisOptions(), 2)
        finally:
            timer.cancel()
    assert stop.value.partial.incomplete
    assert 0 < stop.value.partial.packets < 30_000


def test_only_large_local_files_are_split(
    tmp_path: Path, many_flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = many_flows.stat().st_size
    assert split.split_jobs(str(many_flows), 1) == 1
    assert split.split_jobs("-", 4) == 1
    assert split.split_jobs(str(tmp_path / "missing.pcap"), 4) == 1
    monkeypatch.setattr(split, "MIN_SPLIT_BYTES", size + 1)
    assert split.split_jobs(str(many_flows), 2) == 1
    monkeypatch.setattr(split, "MIN_SPLIT_BYTES", size)
    assert split.split_jobs(str(many_flows), 2) == 2


def _splits_counted(monkeypatch: pytest.MonkeyPatch, where: str) -> list[int]:
    """Every capture may be split (3 usable CPUs, any size worth up to 64 workers); the `jobs`
    of each call of `analyze_split` (at `where`, as the command imports it) are recorded."""
    calls: list[int] = []
    real = split.analyze_split

    def counted(path: str, options: AnalysisOptions, jobs: int) -> CaptureResult:
        calls.append(jobs)
        return real(path, options, jobs)

    monkeypatch.setattr(split, "MIN_SPLIT_BYTES", 0)
    monkeypatch.setattr(split, "WORKER_BYTES", 1)
    monkeypatch.setattr(where, counted)
    monkeypatch.setattr("tcpdiag.cli.analyze.usable_cpus", lambda: 3)
    return calls


def test_check_jobs_on_one_capture_splits_it(
    many_flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check` splits a large capture as `analyze` does: the same output and exit code."""
    calls = _splits_counted(monkeypatch, "tcpdiag.split.analyze_split")
    runner = CliRunner()
    outputs = {}
    for jobs in ("1", "2", "auto"):
        for fmt in ("text", "json"):
            got = runner.invoke(cli, ["check", "-j", jobs, str(many_flows), "--format", fmt])
            assert got.exit_code == 1, got.output  # the capture has errors
            outputs[jobs, fmt] = got.stdout
    assert calls == [2, 2, 3, 3]
    for fmt in ("text", "json"):
        assert outputs["1", fmt] == outputs["2", fmt] == outputs["auto", fmt]
    assert "ERROR" in outputs["1", "text"]


def test_check_jobs_on_several_captures_runs_them_in_parallel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`check` of several captures with `--jobs 2`: one capture per worker process, in input
    order, with the output and exit code of one after the other."""
    paths = [str(p) for p in sorted((REPO / "captures").glob("*.pcap"))[:6]]
    assert len(paths) == 6
    used: list[int] = []
    real = split.analyze_each

    def counted(
        paths: list[str], options: AnalysisOptions, jobs: int, spool: str
    ) -> Iterator[CaptureResult]:
        used.append(jobs)
        yield from real(paths, options, jobs, spool)

    monkeypatch.setattr(split, "analyze_each", counted)
    # The stores the commands leave registered go with this test.
    monkeypatch.setattr(store_module, "_open_lazily", OrderedDict())
    runner = CliRunner()
    for fmt in ("text", "json"):
        one = runner.invoke(cli, ["check", "-j", "1", *paths, "--format", fmt])
        two = runner.invoke(cli, ["check", "-j", "2", *paths, "--format", fmt])
        assert one.exit_code == two.exit_code == 1, two.output  # the captures hold errors
        assert two.stdout == one.stdout
    assert used == [2, 2]


def test_workers_grow_with_the_square_root_of_the_size(
    many_flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mb = 1 << 20
    assert [split.workers_for(size * mb) for size in (0, 1, 16, 64, 256, 1024, 1500)] == [
        2,
        2,
        8,
        16,
        32,
        64,
        77,
    ]
    # Many CPUs, a capture just large enough to split: 8 workers, not 64.
    size = many_flows.stat().st_size
    monkeypatch.setattr(split, "MIN_SPLIT_BYTES", size)
    monkeypatch.setattr(split, "WORKER_BYTES", size // 64)
    assert split.split_jobs(str(many_flows), 64) == 8
    assert split.split_jobs(str(many_flows), 5) == 5
    assert split.split_jobs(str(many_flows), 1) == 1


def test_analyze_jobs_on_one_capture_splits_it(
    many_flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _splits_counted(monkeypatch, "tcpdiag.cli.analyze.analyze_split")
    runner = CliRunner()
    one = runner.invoke(cli, ["analyze", "-j", "1", str(many_flows), "--format", "json"])
    two = runner.invoke(cli, ["analyze", "-j", "2", str(many_flows), "--format", "json"])
    auto = runner.invoke(cli, ["analyze", str(many_flows), "--format", "json"])  # the default
    # A capture too small for more than 2 workers gets 2 of the 3 CPUs.
    monkeypatch.setattr(split, "WORKER_BYTES", many_flows.stat().st_size // 6)
    capped = runner.invoke(cli, ["analyze", str(many_flows), "--format", "json"])
    assert one.exit_code == two.exit_code == auto.exit_code == capped.exit_code == 0, two.output
    assert calls == [2, 3, 2]
    assert two.stdout == one.stdout == auto.stdout == capped.stdout


def test_several_captures_keep_their_flows_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several captures with --jobs: each worker leaves its capture's flows in the spool, and
    this process reads them from there (never more than MAX_OPEN_STORES files open at once):
    the same results as one capture at a time."""
    monkeypatch.setattr(store_module, "MAX_OPEN_STORES", 2)
    # (only this test's stores: another test's results may still be registered)
    monkeypatch.setattr(store_module, "_open_lazily", OrderedDict())
    paths: list[str] = []
    expected: list[str] = []
    for path in _corpus()[:12]:
        try:
            expected.append(_json(analyze_capture(str(path))))
        except CaptureError:
            continue
        paths.append(str(path))
    assert len(paths) >= 8
    results = list(split.analyze_each(paths, AnalysisOptions(), 3, str(tmp_path)))
    assert all(isinstance(r.flows, MergedStore) for r in results)
    with pytest.raises(RuntimeError, match="takes no more flows"):
        some = next(r.flows for r in results if len(r.flows))
        some.add(some[0])  # type: ignore[union-attr]
    # read twice, interleaved: stores close their files and open them again
    for _ in range(2):
        assert [_json(r) for r in results] == expected
        assert len(store_module._open_lazily) <= 2


def test_a_reader_that_stops_early_stops_the_other_captures(tmp_path: Path) -> None:
    """`analyze a b c d`: when what reads the results stops (Ctrl-C sent to this process
    only, an error), the captures not started are cancelled and the running ones killed,
    rather than analysed to the end for nobody."""
    small = short_connections(tmp_path / "small.pcap", 500, seed=1)
    large = short_connections(tmp_path / "large.pcap", 60_000, seed=2)
    spool = tmp_path / "spool"
    spool.mkdir()
    paths = [str(small), str(large), str(large), str(large)]
    results = split.analyze_each(paths, AnalysisOptions(), 2, str(spool))
    assert next(results).packets == 500
    results.close()
    deadline = time.monotonic() + 30
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert multiprocessing.active_children() == []
    assert not (spool / "capture-3.flows").exists()  # never started


def test_numbering_counts_the_flows_of_every_shard_that_began_before() -> None:
    # Flow ids follow first frames across shards, whatever the order each shard lists them in.
    number = Numbering([[9, 1, 5], [], [7, 3]])
    assert [number.of(frame) for frame in (1, 3, 5, 7, 9)] == [1, 2, 3, 4, 5]
    assert number.of(4) == 3  # (not a first frame: one more than those before it)
    assert Numbering([]).of(10) == 1
