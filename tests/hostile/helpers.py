"""Helpers for the hostile-input tests (docs/hostile-inputs.md maps each bad-inputs case to its
test): run the CLI in a measured subprocess, analyse bytes through the API, look up findings.

Time limits are asserted on the child's CPU time (user + sys), not wall time: CI runners share
their cores, and a loaded machine stretches wall time without the program doing more work.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcpdiag.capture import open_capture
from tcpdiag.config import AnalysisOptions
from tcpdiag.engine import Engine
from tcpdiag.result import CaptureResult, Finding

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MEASURE = HERE / "measure.py"
ERROR_LINE = re.compile(r"^tcpdiag: error: .+$")
# Peak RSS of `python -m tcpdiag` on an empty input is ~34 MB; limits below are absolute.
MB = 1024


@dataclass
class Run:
    rc: int
    out: str
    err: str
    cpu: float  # seconds of CPU, user + sys, of the tcpdiag process
    rss_mb: float  # its peak RSS
    wall: float
    _json: Any = field(default=None, repr=False)

    @property
    def json(self) -> Any:
        if self._json is None:
            self._json = json.loads(self.out)
        return self._json

    @property
    def capture(self) -> dict[str, Any]:
        caps = self.json["captures"]
        assert len(caps) == 1, caps
        return caps[0]  # type: ignore[no-any-return]

    def findings(self, name: str | None = None) -> list[dict[str, Any]]:
        cap = self.capture
        out = list(cap["findings"])
        for flow in cap["flows"]:
            out.extend(flow["findings"])
        return [f for f in out if name is None or f["name"] == name]


def cli(*args: str, stdin: bytes | None = None, timeout: float = 120, env: Any = None) -> Run:
    """`python -m tcpdiag ARGS` in a measured subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = os.path.join(tmp, "stats.json")
        cmd = [sys.executable, str(MEASURE), stats_path, "--", sys.executable, "-m", "tcpdiag"]
        proc = subprocess.run(
            [*cmd, *args],
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=timeout,
            cwd=REPO,
            env=env,
            check=False,
        )
        with open(stats_path, encoding="utf-8") as fh:
            stats = json.load(fh)
    return Run(
        stats["rc"],
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
        stats["cpu"],
        stats["maxrss_kb"] / MB,
        stats["wall"],
    )


def analyze(path: str | Path, *more: str, fmt: str = "json") -> Run:
    return cli("analyze", str(path), "--format", fmt, *more)


def assert_error(run: Run, *words: str) -> str:
    """Bad-inputs E / target E1: exit 2, exactly one stderr line `tcpdiag: error: ...`, no
    traceback, under 1 s of CPU; returns the line."""
    lines = run.err.splitlines()
    assert run.rc == 2, (run.rc, run.err)
    assert len(lines) == 1, lines
    assert ERROR_LINE.match(lines[0]), lines[0]
    assert "Traceback" not in run.err
    assert run.out == "", run.out
    assert run.cpu < 1.0, run.cpu
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def assert_read(run: Run, report: bool = True) -> None:
    """Damaged-but-readable (E2): exit 0, nothing on stderr, (with `report`) a JSON report."""
    assert run.rc == 0, (run.rc, run.err)
    assert "Traceback" not in run.err and run.err == "", run.err
    assert run.out
    if report:
        assert run.json["captures"]


def options(**limits: Any) -> AnalysisOptions:
    opts = AnalysisOptions()
    for key, value in limits.items():
        setattr(opts.limits, key, value)
    return opts


def analyze_bytes(data: bytes, opts: AnalysisOptions | None = None) -> CaptureResult:
    """The API path on bytes (standard input, no seeking)."""
    opts = opts or AnalysisOptions()
    with open_capture("-", opts.limits.max_input_bytes, stdin=io.BytesIO(data)) as cap:
        engine = Engine(opts, path="-")
        for raw in cap:
            engine.feed(raw)
        return engine.finish(cap)


def all_findings(result: CaptureResult) -> list[Finding]:
    return result.all_findings()


def names(result: CaptureResult) -> set[str]:
    return {f.name for f in result.all_findings()}


def finding(result: CaptureResult, name: str, containing: str = "") -> Finding:
    hits = [f for f in result.all_findings() if f.name == name and containing in f.message]
    assert hits, (name, containing, [(f.name, f.message) for f in result.all_findings()])
    return hits[0]
