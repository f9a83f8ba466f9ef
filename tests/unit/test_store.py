"""The flow store: flows spooled out of memory, read back in id order with amendments."""

from __future__ import annotations

import errno
import marshal
import pickle
import tempfile
from collections import Counter
from pathlib import Path

import pytest

import tcpdiag.engine as engine_module
from tcpdiag.capture import open_capture
from tcpdiag.config import AnalysisOptions, Limits
from tcpdiag.engine import Engine, PartialCapture, analyze_capture, conclude
from tcpdiag.errors import CaptureError
from tcpdiag.findings.context import CaptureContext
from tcpdiag.findings.registry import make_finding
from tcpdiag.flow.flow import TimelineState
from tcpdiag.report.json import capture_json, dumps
from tcpdiag.report.options import ReportOptions, count_problems, problem_order
from tcpdiag.report.summary import summarize_captures
from tcpdiag.report.text import render_text
from tcpdiag.result import AnalysisResult, FlowResult, Severity, flow_from_plain, flow_to_plain
from tcpdiag.store import (
    FlowStore,
    LazyFlows,
    finding_severities,
    flow_facts,
    flows_without_timelines,
)
from tests.capture_files import OWN, PUBLIC
from tests.unit.report_fixtures import (
    healthy_tls_flow,
    hostile_flow,
    refused_flow,
    truncated_tls_flow,
)


def _flows() -> list[FlowResult]:
    return [truncated_tls_flow(fid=2), refused_flow(fid=5), healthy_tls_flow(fid=1)]


def _store(flows: list[FlowResult], spool_bytes: int = 1 << 20) -> FlowStore:
    store = FlowStore(spool_bytes=spool_bytes)
    for flow in flows:
        store.add(flow)
    return store


def test_reads_back_in_id_order_equal_to_what_was_added() -> None:
    flows = _flows()
    store = _store(flows)
    store.seal()
    assert [f.id for f in store] == [1, 2, 5]
    assert len(store) == 3
    assert store[0] == flows[2] and store[-1] == flows[1]
    assert [f.id for f in store[1:]] == [2, 5]
    assert store[1] is not store[1]  # every read is a fresh object: nothing stays in memory


def test_plain_values_give_back_an_equal_flow_with_every_part() -> None:
    # TLS messages and alerts, RTT stats, findings, timeline rows, hostile strings (lone
    # surrogates): everything a stored flow may hold comes back equal, with its own types.
    for flow in [*_flows(), hostile_flow()]:
        copy = flow_from_plain(marshal.loads(marshal.dumps(flow_to_plain(flow))))
        assert copy == flow
        assert all(type(f.severity) is Severity and type(f.frames) is tuple for f in copy.findings)


def test_indexes_flows_by_finding_name_and_handshake_server() -> None:
    store = _store(_flows())  # ids 2 (TLS, completed), 5 (refused), 1 (TLS, completed)
    assert [f.id for f in store.with_finding("connection-refused")] == [5]
    assert [f.id for f in store.with_finding("tls-alert")] == [2]
    assert list(store.with_finding("syn-unanswered")) == []
    assert [(position, flow_id) for position, flow_id, _ in store.handshake_servers()] == [
        (0, 2),
        (2, 1),
    ]
    servers = [server for _, _, server in store.handshake_servers()]
    assert servers == ["93.184.216.34:443", "[2001:db8::2]:443"]


def test_spills_to_disk_beyond_the_spool_size() -> None:
    flows = [refused_flow(fid=i, frame=i) for i in range(1, 201)]
    store = _store(flows, spool_bytes=4096)
    assert store.on_disk and store.disk_error is None
    assert [f.id for f in store] == list(range(1, 201))
    assert store[150] == flows[150]


@pytest.mark.parametrize("spool_bytes", [1 << 20, 4096])
def test_reads_between_adds_see_every_flow_added_so_far(spool_bytes: int) -> None:
    flows = [refused_flow(fid=i, frame=i) for i in range(1, 201)]
    store = FlowStore(spool_bytes=spool_bytes)
    for i, flow in enumerate(flows, start=1):
        store.add(flow)
        if i % 7 == 0:  # a read moves the file position; the next add must still append
            assert [f.id for f in store.with_finding("connection-refused")][-2:] == [i - 1, i]
    assert store.on_disk == (spool_bytes == 4096)
    assert list(store) == flows


def test_appends_and_reads_do_not_seek() -> None:
    """A seek flushes a buffered file (a write system call per flow): appends follow one
    another, and reads (`os.pread`) leave the position where the next append goes."""
    flows = [refused_flow(fid=i, frame=i) for i in range(1, 301)]
    store = _store(flows[:100], spool_bytes=4096)
    assert store.on_disk
    file = store._file
    seeks: list[int] = []
    real_seek = file.seek

    def counting_seek(offset: int, whence: int = 0) -> int:
        seeks.append(offset)
        return real_seek(offset, whence)

    file.seek = counting_seek  # type: ignore[method-assign]
    for flow in flows[100:200]:
        store.add(flow)
    assert [f.id for f in store.with_finding("connection-refused")] == list(range(1, 201))
    for flow in flows[200:]:
        store.add(flow)
    assert list(store) == flows and store[150] == flows[150]
    assert seeks == []
    file.seek = real_seek  # type: ignore[method-assign]


def test_stays_in_memory_when_tmpdir_cannot_be_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "gone"
    monkeypatch.setattr(tempfile, "tempdir", str(missing))  # every temporary file fails
    flows = [refused_flow(fid=i, frame=i) for i in range(1, 101)]
    store = _store(flows, spool_bytes=4096)
    assert not store.on_disk
    assert store.disk_error is not None and str(missing) in store.disk_error
    assert [f.id for f in store] == list(range(1, 101))


def test_back_to_memory_when_the_disk_fills_up() -> None:
    flows = [refused_flow(fid=i, frame=i) for i in range(1, 101)]
    store = _store(flows[:50], spool_bytes=4096)
    assert store.on_disk
    disk = store._file
    real_write = disk.write

    def full(data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    disk.write = full  # type: ignore[method-assign]
    for flow in flows[50:]:
        store.add(flow)
    disk.write = real_write  # type: ignore[method-assign]
    assert not store.on_disk and "No space left" in (store.disk_error or "")
    assert list(store) == sorted(flows, key=lambda f: f.id)


def test_facts_match_the_flows_without_reading_them() -> None:
    flows = _flows()
    store = _store(flows)
    store.seal()
    assert flow_facts(store) == flow_facts(flows)
    problems, names, worst = flow_facts(store)
    assert problems == 2 and worst == Severity.ERROR
    assert names["connection-refused"] == 1
    assert [f.id for f in problem_order(store)] == [f.id for f in problem_order(flows)]
    assert count_problems(problem_order(store)) == 2


def test_amendments_replace_and_add_findings_and_update_the_facts() -> None:
    store = _store(_flows())
    note = make_finding("icmp-unreachable", "ICMP port unreachable", frames=(9,), flow=5)
    store.amend(5, note, drop={"icmp-unreachable", "connection-refused"})
    store.seal()
    amended = store[2]
    assert amended.id == 5
    assert [f.name for f in amended.findings] == ["icmp-unreachable"]
    assert store.finding_names()["connection-refused"] == 0
    assert store.finding_names()["icmp-unreachable"] == 1
    # the findings per severity follow, as the flows read back have them
    counted = Counter(f.severity for flow in store for f in flow.findings)
    assert store.finding_severities() == counted
    assert finding_severities(store) == finding_severities(list(store)) == counted
    assert note.severity in counted


def test_finisher_runs_on_every_read() -> None:
    store = _store(_flows())
    seen: list[tuple[int, bytes | None]] = []

    def finish(flow: FlowResult, packed: bytes | None) -> None:
        seen.append((flow.id, packed))
        flow.verdict = f"read {flow.id}"

    store.seal(finish)
    assert [f.verdict for f in store] == ["read 1", "read 2", "read 5"]
    assert [s[0] for s in seen] == [1, 2, 5]


def test_a_reader_without_timelines_gets_no_packed_timeline() -> None:
    store = FlowStore()
    for flow in _flows():
        store.add(flow, packed_timeline=b"rows")
    seen: list[bytes | None] = []
    store.seal(lambda flow, packed: seen.append(packed))
    list(store)
    assert [f.id for f in store.without_timelines()] == [1, 2, 5]
    assert [f.id for f in store.without_timelines()[1:]] == [2, 5]
    assert seen == [b"rows"] * 3 + [None] * 5


def test_flows_beneath_a_policy_are_read_without_timelines() -> None:
    """A reader that shows no timeline skips building them also through `LazyFlows` (a
    policy's adjusted flows, as `check` reads them): same flows, same order, no packed rows."""
    store = FlowStore()
    for flow in _flows():
        store.add(flow, packed_timeline=b"rows")
    seen: list[bytes | None] = []
    store.seal(lambda flow, packed: seen.append(packed))
    lazy = LazyFlows(store, [2, 0], adjust=lambda f: f)
    assert [f.id for f in flows_without_timelines(lazy)] == [f.id for f in lazy] == [5, 1]
    assert seen == [None, None, b"rows", b"rows"]
    flat = list(store)
    assert flows_without_timelines(flat) is flat  # a list is left as it is


def test_pickles_as_a_plain_list() -> None:
    store = _store(_flows())
    store.seal()
    copy = pickle.loads(pickle.dumps(store))
    assert isinstance(copy, list) and [f.id for f in copy] == [1, 2, 5]


def _part(flows: list[FlowResult] | FlowStore) -> PartialCapture:
    return PartialCapture(
        path="x.pcap",
        info=None,
        packets=10,
        tcp_packets=10,
        first_ns=0,
        last_ns=10**9,
        linktypes={1},
        damaged=False,
        flows=flows,
        context=CaptureContext(),
    )


def test_conclude_gives_the_same_result_from_a_store_as_from_a_list() -> None:
    options = AnalysisOptions()
    from_list = conclude(_part(_flows()), options)
    from_store = conclude(_part(_store(_flows())), options)
    assert list(from_store.flows) == from_list.flows
    assert from_store.findings == from_list.findings
    assert summarize_captures([from_store]) == summarize_captures([from_list])


@pytest.mark.parametrize(
    ("limits", "parked_as"),
    [(Limits(), tuple), (Limits(timeline_head=5, timeline_tail=3), dict)],
    ids=["default", "short"],
)
def test_stored_flows_show_the_tls_labels_a_flow_built_at_once_shows(
    limits: Limits, parked_as: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored flow keeps its TLS labels as the stream made them (or, when they outnumber its
    timeline rows, by frame), and gets them back on its rows when read: the same labels, on
    the same rows, as a flow whose rows are built when it ends (`on_flow`)."""
    parked: list[type] = []
    park = engine_module._park

    def noting(timeline: TimelineState, labels: object) -> bytes:
        parked.append(type(labels))
        return park(timeline, labels)  # type: ignore[arg-type]

    monkeypatch.setattr(engine_module, "_park", noting)
    options = AnalysisOptions(limits=limits, keep_all_timelines=True)
    labelled = 0
    for path in sorted(OWN.glob("tls*.pcap*")) + sorted(PUBLIC.glob("*tls*.pcap*")):
        stored = analyze_capture(str(path), options)
        at_once: list[FlowResult] = []
        analyze_capture(str(path), options, on_flow=at_once.append)
        built = {flow.id: flow for flow in at_once}
        for flow in stored.flows:
            rows, expected = flow.timeline or [], built[flow.id].timeline or []
            assert [(r.frame, r.tls) for r in rows] == [(r.frame, r.tls) for r in expected]
            labelled += sum(1 for r in rows if r.tls)
    assert labelled > 50
    assert parked.count(parked_as) > 10  # the form this test is about (short: many labels)


def test_streamed_flows_without_a_warning_get_no_timeline_rows_built() -> None:
    """Streamed (`on_flow`, the live command), a flow without a warning has its timeline
    dropped by the caller: the engine does not build its rows, and says how many packets the
    rows would have left out, as when they were built (`keep_all_timelines` builds them)."""
    paths = sorted(OWN.glob("*.pcap*")) + sorted(PUBLIC.glob("*.pcap*"))[:20]
    healthy = problems = 0
    for path in paths:
        streamed: list[FlowResult] = []
        built: list[FlowResult] = []
        try:
            analyze_capture(str(path), AnalysisOptions(), on_flow=streamed.append)
        except CaptureError:  # damaged on purpose: not this test's concern
            continue
        analyze_capture(str(path), AnalysisOptions(keep_all_timelines=True), on_flow=built.append)
        assert [f.id for f in streamed] == [f.id for f in built]
        for got, full in zip(streamed, built, strict=True):
            assert full.timeline is not None
            if got.max_severity is not None and got.max_severity >= Severity.WARNING:
                problems += 1
                assert got.timeline == full.timeline
                assert got.timeline_skipped == full.timeline_skipped
            else:
                healthy += 1
                assert got.timeline is None
                assert got.timeline_skipped == full.timeline_skipped
                assert got.findings == full.findings
    assert healthy > 20 and problems > 20


@pytest.mark.parametrize("limits", [Limits(), Limits(max_report_flows=4)], ids=["default", "quota"])
def test_streamed_flows_kept_in_a_store_report_as_kept_in_a_list(limits: Limits) -> None:
    """Streamed flows (`on_flow`, the live command) wait for the final report in a flow store,
    so that hours of capture hold the open connections, not every finished one: the report is
    the one a list of them gave (a `retain` callback still keeps them in a list)."""
    checked = 0
    for path in sorted(OWN.glob("*.pcap*")) + sorted(PUBLIC.glob("*.pcap*"))[:25]:
        reports = []
        for retain in (None, lambda flow: True):
            engine = Engine(
                AnalysisOptions(limits=limits),
                path=str(path),
                on_flow=lambda f: None,
                retain=retain,
            )
            try:
                with open_capture(path) as reader:
                    engine.feed_capture(reader)
                    result = engine.finish(reader)
            except CaptureError:
                break
            stored = isinstance(result.flows, FlowStore)
            assert stored == (retain is None)
            reports.append(dumps(capture_json(result)))
            reports.append(render_text(AnalysisResult("0", [result]), ReportOptions(color=False)))
        else:
            assert reports[0] == reports[2] and reports[1] == reports[3]
            checked += 1
    assert checked > 30


def test_an_analysis_for_a_report_without_timelines_keeps_none_and_reports_the_same() -> None:
    """`AnalysisOptions(timelines=False)` (a JSON report): no flow packs its timeline into the
    store, and the JSON report is the one the analysis with timelines gives."""
    packed: list[int] = []
    park = engine_module._park

    def noting(timeline: TimelineState, labels: object) -> bytes:
        blob = park(timeline, labels)  # type: ignore[arg-type]
        packed.append(len(blob))
        return blob

    compared = problems = 0
    paths = sorted(OWN.glob("*.pcap*")) + sorted(PUBLIC.glob("*.pcap*"))[:30]
    for path in paths:
        try:
            with_rows = analyze_capture(str(path), AnalysisOptions())
        except CaptureError:
            continue
        engine_module._park, before = noting, len(packed)
        try:
            without = analyze_capture(str(path), AnalysisOptions(timelines=False))
        finally:
            engine_module._park = park
        assert len(packed) == before  # nothing packed
        assert dumps(capture_json(without)) == dumps(capture_json(with_rows)), path
        assert all(flow.timeline is None for flow in without.flows)
        problems += sum(1 for flow in with_rows.flows if flow.timeline)
        compared += 1
    assert compared > 40 and problems > 40  # the analysis with timelines did build some
