"""`tcpdiag analyze` options end to end: the report filters (`--flow`, `--host`, `--port`),
`--no-timeline`, `--version`, and the contract's internal-error exit status with and without
`--debug`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import tcpdiag.cli.analyze as analyze_module
from tcpdiag import __version__
from tcpdiag.cli.common import analysis_options
from tcpdiag.cli.main import cli
from tcpdiag.config import Limits
from tcpdiag.errors import CaptureError

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
BACKLOG = CAPTURES / "tcp-backlog-full.pcap"  # four flows to 127.0.0.1:39693
REFUSED_V4 = CAPTURES / "tcp-refused-ipv4.pcap"  # one flow to 127.0.0.1:48551
REFUSED_V6 = CAPTURES / "tcp-refused-ipv6.pcap"  # one flow to [::1]:33743
ALL = [BACKLOG, REFUSED_V4, REFUSED_V6]


def _run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tcpdiag", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _listed(*args: object) -> list[list[tuple[int, str]]]:
    """(flow id, server) of the flows each capture's JSON report lists."""
    proc = _run("analyze", *args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    return [[(f["id"], f["server"]) for f in c["flows"]] for c in doc["captures"]]


def test_without_a_filter_every_flow_is_listed() -> None:
    listed = _listed(*ALL)
    assert [len(flows) for flows in listed] == [4, 1, 1]


def test_flow_filter_keeps_that_flow_id() -> None:
    assert _listed(BACKLOG, "--flow", 3) == [[(3, "127.0.0.1:39693")]]
    assert _listed(BACKLOG, "--flow", 9) == [[]]


def test_port_filter_keeps_flows_with_that_port_at_either_end() -> None:
    assert _listed(*ALL, "--port", 48551) == [[], [(1, "127.0.0.1:48551")], []]
    backlog_only = _listed(*ALL, "--port", 39693)
    assert [len(flows) for flows in backlog_only] == [4, 0, 0]


@pytest.mark.parametrize("host", ["::1", "0:0:0:0:0:0:0:1"])
def test_host_filter_matches_the_address_in_any_spelling(host: str) -> None:
    assert _listed(*ALL, "--host", host) == [[], [], [(1, "[::1]:33743")]]


def test_a_host_filter_that_is_not_an_address_is_a_usage_error() -> None:
    proc = _run("analyze", REFUSED_V4, "--host", "example.com")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "'example.com' is not an IP address" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_timeline_drops_the_packet_tables_only() -> None:
    header = "| frame |     time |"
    full = _run("analyze", REFUSED_V4, "--no-color")
    short = _run("analyze", REFUSED_V4, "--no-color", "--no-timeline")
    assert full.returncode == short.returncode == 0  # analyze reports; `check` judges
    assert header in full.stdout and header not in short.stdout
    assert "ERROR connection-refused" in short.stdout


@pytest.mark.parametrize(
    ("args", "timelines"),
    [
        (("--format", "text"), True),
        (("--format", "html"), True),
        (("--format", "text", "--no-timeline"), False),
        (("--format", "json"), False),
        (("--format", "sarif"), False),
        (("--format", "junit"), False),
        (("--format", "jsonl", "--all"), False),
    ],
)
def test_the_analysis_keeps_timelines_only_for_a_report_that_shows_them(
    args: tuple[str, ...], timelines: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    def analyze_split(path: str, options: object, workers: int) -> object:
        raise AssertionError("one small capture is not split")

    def analyze_capture(path: str, options: Any) -> Any:
        seen.append(options.timelines)
        return real(path, options)

    real = analyze_module.analyze_capture
    monkeypatch.setattr(analyze_module, "analyze_capture", analyze_capture)
    monkeypatch.setattr(analyze_module, "analyze_split", analyze_split)
    result = CliRunner().invoke(cli, ["analyze", str(REFUSED_V4), *args])
    assert result.exit_code == 0, result.output
    assert seen == [timelines]


def test_help_lists_every_command() -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    commands = proc.stdout.split("Commands:", 1)[1].split()
    assert {"analyze", "check", "explain", "lab", "live"} <= set(commands)


def test_live_linger_flag_sets_the_close_linger() -> None:
    assert analysis_options({"close_linger": 0.5}).limits.close_linger == 0.5
    assert analysis_options({}).limits.close_linger == Limits().close_linger  # a file: 60 s
    proc = _run("live", "--help")
    assert proc.returncode == 0 and "--linger" in proc.stdout
    assert "[default: 3.0;" in " ".join(proc.stdout.split("--linger", 1)[1].split())


def test_version() -> None:
    proc = _run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"tcpdiag, version {__version__}"


def _boom(*_: Any) -> Any:
    raise RuntimeError("boom")


def test_a_bug_is_exit_3_with_one_line_and_the_traceback_only_with_debug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(analyze_module, "analyze_capture", _boom)
    monkeypatch.delenv("TCPDIAG_DEBUG", raising=False)
    runner = CliRunner()
    plain = runner.invoke(cli, ["analyze", str(REFUSED_V4)])
    assert plain.exit_code == 3 and plain.stdout == ""
    assert plain.stderr.splitlines() == [
        "tcpdiag: internal error: RuntimeError: boom "
        "(this is a bug; run with --debug for the traceback)"
    ]
    debug = runner.invoke(cli, ["--debug", "analyze", str(REFUSED_V4)])
    assert debug.exit_code == 3
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().endswith("RuntimeError: boom")


def test_a_capture_error_shows_its_traceback_only_with_debug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unreadable(*_: Any) -> Any:
        raise CaptureError("unrecognised format (magic 0x00000000)")

    monkeypatch.setattr(analyze_module, "analyze_capture", unreadable)
    monkeypatch.delenv("TCPDIAG_DEBUG", raising=False)
    runner = CliRunner()
    plain = runner.invoke(cli, ["analyze", str(REFUSED_V4)])
    assert plain.exit_code == 2
    assert "Traceback" not in plain.stderr and len(plain.stderr.splitlines()) == 1
    debug = runner.invoke(cli, ["--debug", "analyze", str(REFUSED_V4)])
    assert debug.exit_code == 2 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.splitlines()[-1] == plain.stderr.splitlines()[0]
