"""The HTML report in a real headless browser (Debian's chromium): it loads with no console
message at all (no script error, no blocked fetch), and the SVG diagrams are in the DOM."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from report_fixtures import hostile_result, seed_result

from tcpdiag.report.html import render_html
from tcpdiag.report.options import ReportOptions
from tcpdiag.result import AnalysisResult

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (apt-get install chromium; .ci/run does)"
)


def _chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


class _Svgs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.svg_classes: list[str] = []
        self.elements: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements[tag] = self.elements.get(tag, 0) + 1
        if tag == "svg":
            self.svg_classes.append(dict(attrs).get("class") or "")


def _dump(result: AnalysisResult, tmp_path: Path, opts: ReportOptions) -> tuple[str, list[str]]:
    page = tmp_path / "report.html"
    page.write_text(render_html(result, opts), encoding="utf-8")
    proc = _chromium(page, tmp_path, "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, _console(proc.stderr)


def test_console_messages_are_detected(tmp_path: Path) -> None:
    """The check below can fail: a page with a script error shows up in the log."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><script>console.error('x'); nope();</script>")
    proc = _chromium(page, tmp_path, "--dump-dom")
    assert len(_console(proc.stderr)) == 2


def test_report_loads_cleanly_with_diagrams(tmp_path: Path) -> None:
    dom, console = _dump(seed_result(), tmp_path, ReportOptions())
    assert console == []
    parser = _Svgs()
    parser.feed(dom)
    assert parser.svg_classes == ["ladder", "tsg", "ladder", "tsg"]
    # Ladders: 2 lifelines + 1 arrow per packet each; graphs: 3 lines per data segment.
    assert parser.elements.get("line", 0) == 2 * 2 + 14 + 3 * 6
    assert "TLS handshake failed" in dom
    assert dom.count('class="pkt"') == 14  # 2 + 12 packets in the two ladders


def test_hostile_report_runs_no_injected_script(tmp_path: Path) -> None:
    dom, console = _dump(hostile_result(), tmp_path, ReportOptions(show_all_timelines=True))
    assert console == []
    parser = _Svgs()
    parser.feed(dom)
    assert parser.elements.get("script") == 1
    assert parser.svg_classes == ["ladder", "tsg"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_screenshot(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(seed_result(), ReportOptions(flow_filter=2)), encoding="utf-8")
    shot = tmp_path / "shot.png"
    proc = _chromium(
        page, tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", "--hide-scrollbars"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _console(proc.stderr) == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 1600)
    assert len(data) > 50_000  # a real rendering, not a blank page
    assert re.search(rb"IDAT", data)
