"""Issue 11: capture fleets on Dask give byte-identical reports to a local run.

The CLI tests start real `LocalCluster`s of worker processes (`--cluster local:N`) in a
subprocess; the URL, scheduler and Ctrl-C tests use in-process (thread) clusters, which start in
well under a second and see this process's `memory://` filesystem. The split-by-flow merge is
checked both without Dask (every shard in this process, several shard counts) and through the
CLI on a ~40 MB synthetic capture with a small `--split-size`.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from tcpdiag import __version__
from tcpdiag.capture import expand_inputs
from tcpdiag.cli.distributed import ProgressLine
from tcpdiag.cli.main import cli
from tcpdiag.config import AnalysisOptions
from tcpdiag.distributed import (
    MERGED_CONTEXT_FIELDS,
    DaskUnavailable,
    DistributedError,
    Progress,
    analyze_fleet,
    dask_client,
    expand_sources,
    merge_contexts,
    merge_shards,
    parse_cluster,
    parse_size,
    require_dask,
    run_fleet,
    shard_count,
)
from tcpdiag.engine import analyze_capture, analyze_partial, shard_of
from tcpdiag.findings import context as context_module
from tcpdiag.findings.context import CaptureContext
from tcpdiag.model import IcmpError
from tcpdiag.report import ReportOptions
from tcpdiag.report.json import render_json
from tcpdiag.result import AnalysisResult, CaptureResult

pytest.importorskip("distributed")
fsspec = pytest.importorskip("fsspec")

REPO = Path(__file__).resolve().parents[2]
CAPTURES = REPO / "captures"
GEN = REPO / "benchmarks" / "gen.py"

# The synthetic fleet: (pattern, seed, packets) for 20 small captures, and one large one.
FLEET = [(p, seed, 1500) for seed in range(5) for p in ("mixed", "web", "bulk", "failures")]
LARGE_PACKETS = 55_000  # ~40 MB of the `mixed` pattern
SPLIT = "8M"  # forces the large capture (and only it) through the split-by-flow path


def _gen_module() -> ModuleType | None:
    spec = importlib.util.spec_from_file_location("tcpdiag_bench_gen", GEN)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _generate(path: Path, packets: int, seed: int, pattern: str = "mixed") -> None:
    gen = _gen_module()
    if gen is not None and hasattr(gen, "generate"):
        try:
            gen.generate(str(path), packets, seed, pattern)  # in-process: no interpreter start
            return
        except TypeError:  # its signature changed: the command line is the stable interface
            pass
    cmd = [sys.executable, str(GEN), "--packets", str(packets), "--seed", str(seed)]
    subprocess.run([*cmd, "--pattern", pattern, "-o", str(path), "-q"], check=True)


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not GEN.exists():
        pytest.skip("benchmarks/gen.py is not there")
    top = tmp_path_factory.mktemp("fleet")
    for i, (pattern, seed, packets) in enumerate(FLEET):
        sub = top / f"run-{i // 5}"  # a few subdirectories: the walk must sort across them
        sub.mkdir(exist_ok=True)
        _generate(sub / f"{i:02d}-{pattern}-s{seed}.pcap", packets, seed, pattern)
    (top / "NOTES.txt").write_text("not a capture\n")
    return top


@pytest.fixture(scope="module")
def large_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not GEN.exists():
        pytest.skip("benchmarks/gen.py is not there")
    path = tmp_path_factory.mktemp("large") / "large-mixed.pcap"
    _generate(path, LARGE_PACKETS, seed=7)
    assert path.stat().st_size > 4 * parse_size(SPLIT)
    return path


def _tcpdiag(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tcpdiag", *args],
        cwd=cwd,
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )


def _local_json(*captures: str, cwd: Path = REPO) -> bytes:
    done = _tcpdiag("analyze", *captures, "--format", "json", cwd=cwd)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def _json(*captures: CaptureResult) -> str:
    return render_json(AnalysisResult(__version__, list(captures)), ReportOptions())


def _capture_files() -> list[str]:
    if not CAPTURES.is_dir():
        return []
    return [spec.path for spec in expand_inputs([str(CAPTURES)]) if spec.skipped is None]


# -- byte-identical through the CLI ----------------------------------------------------------------


@pytest.mark.slow
def test_cluster_equals_local_on_recorded_captures() -> None:
    if not _capture_files():
        pytest.skip("captures/ is empty")
    local = _local_json("captures")
    done = _tcpdiag("analyze", "--cluster", "local:2", "captures", "--format", "json")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == local
    # Only the directory walk's notes on stderr: no Dask logging, no progress (not a TTY).
    for line in done.stderr.decode().splitlines():
        assert line.startswith("tcpdiag: note: skipped "), line


@pytest.mark.slow
def test_cluster_equals_local_on_fleet_with_split(fleet_dir: Path, large_capture: Path) -> None:
    """20 synthetic captures analysed whole, plus one ~40 MB capture split by flow across the
    two workers (`--split-size 8M`): the same bytes as a local run."""
    big = fleet_dir / "zz-large.pcap"
    if not big.exists():
        shutil.copyfile(large_capture, big)
    try:
        local = _local_json(str(fleet_dir))
        done = _tcpdiag(
            "analyze",
            "--cluster",
            "local:2",
            "--split-size",
            SPLIT,
            str(fleet_dir),
            "--format",
            "json",
        )
    finally:
        big.unlink()
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == local


@pytest.mark.slow
def test_unreadable_capture_is_one_line_and_the_rest_is_reported(tmp_path: Path) -> None:
    files = _capture_files()[:2]
    if len(files) < 2:
        pytest.skip("captures/ is empty")
    bad = tmp_path / "broken.pcap"
    bad.write_bytes(b"this is not a capture at all")
    local_good = _local_json(*files)
    local_bad = _tcpdiag("analyze", files[0], str(bad), files[1], "--format", "json")
    assert local_bad.returncode == 2  # the local run stops at the first unreadable capture

    done = _tcpdiag(
        "analyze", "--cluster", "local:1", files[0], str(bad), files[1], "--format", "json"
    )
    assert done.returncode == 2
    assert done.stdout == local_good  # the other captures, in order
    errors = done.stderr.decode().splitlines()
    assert len(errors) == 1
    assert errors[0].startswith(f"tcpdiag: error: {bad}: ")
    assert "not a pcap or pcapng capture" in errors[0]


@pytest.mark.slow
def test_check_on_a_cluster_equals_local(tmp_path: Path) -> None:
    from tcpdiag.cli.check import check

    if "--cluster" not in {opt for param in check.params for opt in param.opts}:
        pytest.skip("tcpdiag check has no --cluster yet")
    files = _capture_files()[:6]
    if not files:
        pytest.skip("captures/ is empty")
    config = tmp_path / "tcpdiag.toml"
    config.write_text("")  # no policy from the checkout's pyproject.toml
    args = ["check", "--config", str(config), "--format", "json", *files]
    local = _tcpdiag(*args)
    done = _tcpdiag(*args[:1], "--cluster", "local:1", *args[1:])
    assert (done.returncode, done.stdout) == (local.returncode, local.stdout), done.stderr


# -- split by flow ------------------------------------------------------------------------------


def _split(path: str, count: int, options: AnalysisOptions | None = None) -> CaptureResult:
    options = options or AnalysisOptions()
    parts = [analyze_partial(path, options, (i, count)) for i in range(count)]
    return merge_shards(parts, options)


def test_split_equals_single_process_on_recorded_captures() -> None:
    files = _capture_files()
    if not files:
        pytest.skip("captures/ is empty")
    for path in files:
        single = _json(analyze_capture(path, AnalysisOptions()))
        for count in (2, 3, 5):
            assert _json(_split(path, count)) == single, (path, count)


@pytest.mark.slow
def test_split_equals_single_process_on_large_capture(large_capture: Path) -> None:
    single = _json(analyze_capture(str(large_capture), AnalysisOptions()))
    assert _json(_split(str(large_capture), 3)) == single


def test_split_renumbers_flows_findings_and_synack_times() -> None:
    files = _capture_files()
    if not files:
        pytest.skip("captures/ is empty")
    for path in files:
        options = AnalysisOptions()
        parts = [analyze_partial(path, options, (i, 2)) for i in range(2)]
        shard_flows = sum(len(p.flows) for p in parts)
        merged = merge_shards(parts, options)
        assert [f.id for f in merged.flows] == list(range(1, shard_flows + 1))
        assert [f.first_frame for f in merged.flows] == sorted(f.first_frame for f in merged.flows)
        for flow in merged.flows:
            assert all(f.flow in (None, flow.id) for f in flow.findings)


def test_merge_contexts_knows_every_context_field() -> None:
    # A new CaptureContext attribute must be merged on purpose (see merge_contexts).
    assert set(vars(CaptureContext())) == MERGED_CONTEXT_FIELDS


def _icmp(frame: int, sport: int, dport: int = 443) -> IcmpError:
    return IcmpError(
        frame=frame,
        time=frame / 10,
        ip_version=4,
        sender=b"\x0a\x00\x00\x01",
        icmp_type=3,
        icmp_code=13,
        src=b"\x0a\x00\x00\x02",
        dst=b"\x0a\x00\x00\x03",
        sport=sport,
        dport=dport,
        seq=1,
    )


def test_icmp_merge_reproduces_the_single_process_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context_module, "MAX_ICMP_TUPLES", 5)
    monkeypatch.setattr(context_module, "MAX_FRAMES", 3)
    monkeypatch.setattr("tcpdiag.distributed.MAX_ICMP_TUPLES", 5)
    errors = [_icmp(frame, 40000 + (frame * 7) % 11) for frame in range(1, 60)]
    single = CaptureContext()
    for err in errors:
        single.add_icmp(err)
    for count in (2, 3, 4):
        shards = [CaptureContext() for _ in range(count)]
        for err in errors:
            shards[shard_of(err.src, err.sport, err.dst, err.dport, count)].add_icmp(err)
        merged = merge_contexts(shards, [{} for _ in shards])
        assert list(merged.icmp.items()) == list(single.icmp.items())
        assert merged.icmp_dropped == single.icmp_dropped


def test_merge_contexts_notes_arp_and_evictions_come_from_the_right_shards() -> None:
    a, b = CaptureContext(), CaptureContext()
    for ctx in (a, b):  # every shard reads the capture's notes
        ctx.add_note("capture-damaged", "capture damaged at byte offset 10")
    a.add_evictions(3, 100)
    b.add_evictions(4, 100)
    a.synack_time = {1: 0.5, 2: 0.7}
    b.synack_time = {1: 0.6}
    merged = merge_contexts([a, b], [{1: 1, 2: 3}, {1: 2}])
    assert [(n.name, n.count) for n in merged.notes] == [("capture-damaged", 1)]
    assert (merged.evicted_flows, merged.max_flows) == (7, 100)
    assert merged.synack_time == {1: 0.5, 2: 0.6, 3: 0.7}
    assert merged.arp is a.arp


# -- inputs a worker reads: file:// and memory:// URLs, globs -----------------------------------


@pytest.fixture
def memory_fs() -> Iterator[object]:
    fs = fsspec.filesystem("memory")
    yield fs
    if fs.exists("/tcpdiag-test"):
        fs.rm("/tcpdiag-test", recursive=True)


def _with_path(result: CaptureResult, path: str) -> CaptureResult:
    result.path = path
    return result


def test_memory_urls_on_thread_workers_including_split(memory_fs: object) -> None:
    files = _capture_files()[:3]
    if not files:
        pytest.skip("captures/ is empty")
    names = []
    for path in files:
        name = f"memory://tcpdiag-test/caps/{Path(path).name}"
        with fsspec.open(name, "wb") as out:
            out.write(Path(path).read_bytes())
        names.append(name)
    with fsspec.open("memory://tcpdiag-test/caps/README.txt", "wb") as out:
        out.write(b"not a capture")
    # A directory URL: listed files in sorted order, the non-capture skipped with a note; a
    # split size of 1 byte and 2 shards send every capture through the split path too.
    fleet = analyze_fleet(
        ["memory://tcpdiag-test/caps"],
        cluster="local:2",
        processes=False,
        split_size=1,
        max_shards=2,
    )
    assert fleet.failures == []
    assert fleet.notes == [
        "skipped memory:///tcpdiag-test/caps/README.txt: "
        + fleet.notes[0].split("README.txt: ", 1)[1]
    ]
    expected = [
        _with_path(
            analyze_capture(path, AnalysisOptions()),
            f"memory:///tcpdiag-test/caps/{Path(path).name}",
        )
        for path in sorted(files)
    ]
    assert _json(*fleet.captures) == _json(*expected)


def test_file_urls_globs_and_a_running_scheduler(tmp_path: Path) -> None:
    from distributed import LocalCluster

    files = _capture_files()[:3]
    if not files:
        pytest.skip("captures/ is empty")
    for path in files:
        shutil.copyfile(path, tmp_path / Path(path).name)
    url = f"file://{tmp_path}/*.pcap*"
    expected = [
        _with_path(
            analyze_capture(str(tmp_path / Path(p).name), AnalysisOptions()),
            f"file://{tmp_path / Path(p).name}",
        )
        for p in sorted(files)
    ]
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        dashboard_address=None,
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
    ) as cluster:
        fleet = analyze_fleet([url], scheduler=cluster.scheduler_address)
    assert fleet.failures == [] and fleet.notes == []
    assert _json(*fleet.captures) == _json(*expected)


def test_missing_url_is_one_error_for_that_capture(tmp_path: Path) -> None:
    files = _capture_files()[:1]
    if not files:
        pytest.skip("captures/ is empty")
    missing = f"file://{tmp_path}/missing.pcap"
    fleet = analyze_fleet([files[0], missing], cluster="local:1", processes=False)
    assert [c.path for c in fleet.captures] == files
    assert [(f.name, f.kind) for f in fleet.failures] == [(missing, "unreadable")]
    assert fleet.failures[0].message.startswith(f"{missing}: ")
    assert fleet.exit_code == 2


def test_local_glob_is_expanded_sorted(tmp_path: Path) -> None:
    for name in ("b.pcap", "a.pcap"):
        (tmp_path / name).write_bytes(b"")
    sources, notes = expand_sources([str(tmp_path / "*.pcap")])
    assert [s.name for s in sources] == [str(tmp_path / "a.pcap"), str(tmp_path / "b.pcap")]
    assert notes == []
    with pytest.raises(DistributedError):
        expand_sources(["-"])


# -- interruption, errors, flags ------------------------------------------------------------------


def test_ctrl_c_cancels_and_closes_the_cluster() -> None:
    files = _capture_files()[:4]
    if not files:
        pytest.skip("captures/ is empty")
    sources, _ = expand_sources(files)

    def interrupt(progress: Progress) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), dask_client("local:1", processes=False) as client:
        try:
            run_fleet(client, sources, AnalysisOptions(), progress=interrupt)
        finally:
            seen = client
    assert seen.status == "closed"


def test_unreachable_scheduler_is_a_usage_error() -> None:
    with (
        pytest.raises(DistributedError, match="cannot reach the Dask scheduler"),
        dask_client(scheduler="tcp://127.0.0.1:9", connect_timeout=1.0),
    ):
        pass


def test_without_dask_the_flags_say_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    files = _capture_files()[:1]
    if not files:
        pytest.skip("captures/ is empty")
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(DaskUnavailable):
        require_dask()
    runner = CliRunner()
    for flag, value in (("--cluster", "local:2"), ("--scheduler", "tcp://127.0.0.1:8786")):
        result = runner.invoke(cli, ["analyze", flag, value, files[0]])
        assert result.exit_code == 2
        assert result.stderr == f"tcpdiag: error: {flag} needs Dask: pip install 'tcpdiag[dask]'\n"


def test_bad_cluster_and_split_size_are_usage_errors() -> None:
    assert parse_cluster("local:3") == 3
    assert parse_cluster("local") >= 1
    for bad in ("local:0", "remote:2", "local:x"):
        with pytest.raises(DistributedError):
            parse_cluster(bad)
    assert parse_size("256M") == parse_size("256MiB") == 256 << 20
    assert parse_size("1.5G") == 3 << 29
    assert parse_size("4096") == 4096
    with pytest.raises(ValueError):
        parse_size("lots")
    files = _capture_files()[:1]
    if files:
        result = CliRunner().invoke(cli, ["analyze", "--split-size", "lots", files[0]])
        assert result.exit_code == 2


def test_shard_count() -> None:
    assert shard_count(None, 100, 8) == 1
    assert shard_count(100, 100, 8) == 1
    assert shard_count(101, 100, 8) == 2
    assert shard_count(10_000, 100, 8) == 8  # never more shards than workers
    assert shard_count(10_000, 100, 1) == 1  # one worker: splitting only costs


def test_progress_line() -> None:
    out = io.StringIO()
    line = ProgressLine(out, every=0.0)
    line(Progress(done=1, total=20, failed=0, packets=1500, elapsed=0.5))
    line(Progress(done=20, total=20, failed=1, packets=30_000, elapsed=2.0))
    line.end()
    text = out.getvalue()
    assert text.startswith("\rtcpdiag: 1/20 captures, 1,500 packets, 3,000 packets/s")
    assert "\rtcpdiag: 20/20 captures, 30,000 packets, 15,000 packets/s, 1 failed" in text
    assert text.endswith("\n")
