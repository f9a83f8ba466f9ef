"""`tcpdiag check` and report output plumbing (`-o FILE`, broken pipes)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from report_fixtures import healthy_tls_flow, hostile_result, seed_capture

from tcpdiag.cli import check as check_module
from tcpdiag.cli.check import check, run_check
from tcpdiag.cli.main import cli
from tcpdiag.cli.output import OutputError, write_file, write_stdout
from tcpdiag.config import AnalysisOptions
from tcpdiag.errors import ConfigError
from tcpdiag.result import CaptureResult

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def captures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Three capture files (content irrelevant: the analysis is replaced by fixtures), and the
    cwd in tmp_path so no project config is picked up."""
    files = {
        "seed": tmp_path / "seed.pcap",
        "ok": tmp_path / "ok.pcap",
        "evil": tmp_path / "evil.pcap",
    }
    for path in files.values():
        path.write_bytes(b"\xd4\xc3\xb2\xa1")
    results: dict[str, Callable[[str], CaptureResult]] = {
        str(files["seed"]): lambda p: seed_capture(p),
        str(files["ok"]): lambda p: CaptureResult(p, "pcap", flows=[healthy_tls_flow()]),
        str(files["evil"]): lambda p: _evil(p),
    }

    def fake(path: str, options: AnalysisOptions) -> CaptureResult:
        return results[path](path)

    monkeypatch.setattr(check_module, "_analyze", fake)
    monkeypatch.setattr(check_module, "expand_captures", lambda caps: list(caps))
    # In this process, where `_analyze` is replaced (`--jobs auto` would hand several captures
    # to worker processes).
    monkeypatch.setattr("tcpdiag.cli.analyze.usable_cpus", lambda: 1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return files


def _evil(path: str) -> CaptureResult:
    cap = hostile_result().captures[0]
    cap.path = path
    return cap


def _run(*args: str) -> Any:
    return CliRunner().invoke(check, list(args), catch_exceptions=False)


def test_exit_1_on_errors_and_text_lists_them(captures: dict[str, Path]) -> None:
    res = _run(str(captures["seed"]))
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 5
    assert lines[0].endswith(
        "seed.pcap: flow 1 (10.0.0.1:51000 -> 10.0.0.2:8080), frame 1: ERROR connection-refused: "
        "10.0.0.2 answered the SYN to port 8080 with RST/ACK after 0.184 ms: nothing listens on "
        "that port (or a firewall rejects)"
    )
    assert lines[-1] == "4 findings at or above error in 1 of 1 capture (2 below the threshold)"


def test_exit_0_when_clean(captures: dict[str, Path]) -> None:
    res = _run(str(captures["ok"]))
    assert res.exit_code == 0
    assert (
        res.output.strip()
        == "ok no findings at or above error in 1 capture (1 below the threshold)"
    )
    assert _run("--fail-on", "info", str(captures["ok"])).exit_code == 1


def test_config_ignores_and_severity(captures: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.tcpdiag]\n"
        'ignore = ["connection-refused", "reset-mid-stream"]\n'
        'severity = {tls-alert = "warning", tls-flight-incomplete = "warning"}\n'
    )
    assert _run(str(captures["seed"])).exit_code == 0
    assert _run("--fail-on", "warning", str(captures["seed"])).exit_code == 1


def test_config_expectation_failure_fails(captures: dict[str, Path], tmp_path: Path) -> None:
    cfg = tmp_path / "ci.toml"
    cfg.write_text('expect = [{port = 443, tls = "complete"}, "min-flows:2"]\n')
    res = _run("--config", str(cfg), str(captures["ok"]))
    assert res.exit_code == 1
    assert (
        "ERROR expectation-failed: expectation 'min-flows:2' failed: 1 flows, expected at least 2"
        in res.output
    )


def test_per_capture_override(captures: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "tcpdiag.toml").write_text(
        '[[overrides]]\npath = "seed.pcap"\nfail-on = "error"\n'
        'ignore = ["connection-refused", "tls-*", "reset-mid-stream"]\n'
    )
    res = _run(str(captures["seed"]), str(captures["ok"]))
    assert res.exit_code == 0, res.output


def test_bad_config_raises_config_error(captures: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "tcpdiag.toml").write_text('fail-on = "sometimes"\n')
    with pytest.raises(ConfigError, match="fail-on: unknown severity"):
        run_check([str(captures["seed"])])


def test_thresholds_from_config_reach_the_analysis(
    captures: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tcpdiag.toml").write_text("[thresholds]\nclose_wait_delay = 5\n")
    seen: list[AnalysisOptions] = []
    original = check_module._analyze

    def spy(path: str, options: AnalysisOptions) -> CaptureResult:
        seen.append(options)
        return original(path, options)

    monkeypatch.setattr(check_module, "_analyze", spy)
    _run(str(captures["ok"]))
    assert seen[0].thresholds.close_wait_delay == 5.0


def test_formats(captures: dict[str, Path], tmp_path: Path) -> None:
    seed = str(captures["seed"])
    doc = json.loads(_run("--format", "json", seed).output)
    assert doc["summary"]["max_severity"] == "error"
    root = ET.fromstring(_run("--format", "junit", seed).output)
    assert root.get("failures") == "2"
    sarif = json.loads(_run("--format", "sarif", seed).output)
    assert len(sarif["runs"][0]["results"]) == 6
    gh = _run("--format", "github", seed).output.splitlines()
    assert sum(line.startswith("::error ") for line in gh) == 4
    lines = _run("--format", "jsonl", seed).output.splitlines()
    assert len(lines) == 4


def test_hostile_capture_text_is_safe(captures: dict[str, Path]) -> None:
    res = _run("--fail-on", "info", str(captures["evil"]))
    assert res.exit_code == 1
    out = res.output.encode("utf-8")
    assert not any((b < 0x20 and b not in (0x0A,)) or 0x7F <= b <= 0x9F for b in out)


def test_output_file(captures: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.sarif"
    res = _run("--format", "sarif", "-o", str(out), str(captures["seed"]))
    assert res.exit_code == 1 and res.output == ""
    assert json.loads(out.read_text())["version"] == "2.1.0"


def test_output_refuses_the_input(captures: dict[str, Path]) -> None:
    before = captures["seed"].read_bytes()
    with pytest.raises(OutputError, match="refusing to overwrite the input capture"):
        run_check([str(captures["seed"])], output=str(captures["seed"]))
    assert captures["seed"].read_bytes() == before


# -- output.py -------------------------------------------------------------------------------------


def test_write_file_is_atomic_and_keeps_mode(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    write_file(str(target), "new \u2192")
    assert target.read_text("utf-8") == "new \u2192"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temp file left


def test_write_file_refusals(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("keep")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with pytest.raises(OutputError, match="symbolic link"):
        write_file(str(link), "x")
    assert real.read_text() == "keep"
    with pytest.raises(OutputError, match="does not exist"):
        write_file(str(tmp_path / "missing" / "r.txt"), "x")
    assert not (tmp_path / "missing").exists()
    with pytest.raises(OutputError, match="is a directory"):
        write_file(str(tmp_path), "x")
    # The input reached through another path is still the input.
    cap = tmp_path / "c.pcap"
    cap.write_bytes(b"data")
    with pytest.raises(OutputError, match="input capture"):
        write_file(str(tmp_path / "." / "c.pcap"), "x", inputs=[str(cap)])
    assert cap.read_bytes() == b"data"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_write_file_to_a_device_leaves_the_device(tmp_path: Path) -> None:
    """`-o /dev/null` writes to the device; the rename that makes a regular file atomic would
    have put a regular file in its place. (A device node of our own, like /dev/null.)"""
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    write_file(str(null), ["a report", " in chunks \u2192"])
    assert stat.S_ISCHR(null.stat().st_mode)
    assert os.major(null.stat().st_rdev) == 1 and os.minor(null.stat().st_rdev) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]  # no temp file left


def test_write_file_to_a_named_pipe_writes_through_it(tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    # (a daemon: were the pipe replaced by a file, its reader would wait for ever)
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_file(str(fifo), ["{", '"x": "\u2192"', "}"])
    reader.join(timeout=10)
    assert got == ['{"x": "\u2192"}'.encode()]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_cli_output_to_a_device_keeps_the_device(tmp_path: Path) -> None:
    """`analyze -o /dev/null` (what benchmarks and scripts do), on a device node of our own: a
    broken write must not take the machine's /dev/null with it."""
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    capture = REPO / "captures" / "tcp-refused-ipv4.pcap"
    result = CliRunner().invoke(cli, ["analyze", str(capture), "-o", str(null)])
    assert result.exit_code == 0, result.output
    assert stat.S_ISCHR(null.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_write_stdout_survives_a_closed_pipe() -> None:
    class Closed:
        def write(self, text: str) -> int:
            raise BrokenPipeError

        def flush(self) -> None:
            raise BrokenPipeError

    assert write_stdout("x", Closed()) is False  # type: ignore[arg-type]


def test_head_dash_1_gives_no_traceback() -> None:
    code = (
        "from tcpdiag.cli.output import write_stdout\n"
        "for _ in range(200):\n"
        "    write_stdout('line\\n' * 1000)\n"
    )
    proc = subprocess.run(
        f'{sys.executable} -c "{code}" | head -1',
        shell=True,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.stdout == "line\n"
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


# -- end to end on real captures ---------------------------------------------------------------

PUBLIC = REPO.parent / "shared" / "captures" / "public"
needs_public = pytest.mark.skipif(not PUBLIC.is_dir(), reason="../shared/captures/public absent")


@needs_public
def test_real_capture_fatal_alert_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    alert = str(PUBLIC / "tls12-alert-handshake-failure.pcap")
    res = _run(alert)
    assert res.exit_code == 1
    assert "ERROR tls-alert: fatal handshake_failure alert from the server" in res.output
    doc = json.loads(_run("--format", "sarif", alert).output)
    assert [r["ruleId"] for r in doc["runs"][0]["results"]] == ["tls-alert"]


@needs_public
def test_real_capture_expectations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    full = str(PUBLIC / "tls12-ecdhe-full.pcap")
    assert _run(full).exit_code == 0
    (tmp_path / "tcpdiag.toml").write_text(
        'expect = ["tls-handshake-complete", {port = 443, tls = "complete"}, "min-flows:1"]\n'
    )
    res = _run(full)
    assert res.exit_code == 0, res.output
    (tmp_path / "tcpdiag.toml").write_text('expect = [{port = 8443, tls = "complete"}]\n')
    res = _run(full)
    assert res.exit_code == 1
    assert "0 flows match the selector, expected at least 1" in res.output


def test_failed_write_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "r.html"
    target.write_text("previous")

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OutputError, match="No space left on device"):
        write_file(str(target), "new")
    assert target.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]
