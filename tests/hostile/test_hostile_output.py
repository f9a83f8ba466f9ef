"""Bad-inputs cases 47-50: output safety end to end, through the CLI, with captures whose
packet-derived strings (SNI, ALPN, a non-TLS reply) are terminal escapes, rich markup, bidi
controls, XML/CSV metacharacters and invalid UTF-8; and the ways of writing a report (-o,
pipes, signals)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tcpdiag.report.options import ReportOptions
from tcpdiag.report.text import render_text
from tcpdiag.result import AnalysisResult, CaptureResult, FlowResult, Severity
from tests.hostile import packets as p
from tests.hostile.helpers import REPO, analyze, assert_error, assert_read, cli

SNI = "\x1b]0;pwn\x07[bold red]x[/]\u202e".encode()
ALPNS = [
    b"\x1b[2J\x1b[H",
    b"\x1b]52;c;aGVsbG8=\x07",
    "\x9b2J".encode(),
    b"a\rb\bc",
    b"[link=https://x]y[/link]",
    b":warning:",
    b"]]>&<tag>",
    b"=cmd|' /C calc'!A0",
    b"\xff\xfe\x00nul",
]
# A plaintext reply quoted in tls-no-server-hello's message.
REPLY = b"HTTP/1.1 400 \x1b]0;pwn\x07\x9b2J"
BAD_PLAIN = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
SGR = re.compile(r"\x1b\[[0-9;]*m")
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def hostile_capture() -> bytes:
    tls = p.tls_session(
        p.record(p.client_hello(SNI, ALPNS[:4])),
        p.record(p.server_hello()),
        sport=40001,
    )
    more = p.tls_session(p.record(p.client_hello(b"b.example", ALPNS[4:])), b"", sport=40002)
    plain = p.tls_session(p.record(p.client_hello(SNI)), REPLY, sport=40003)
    # A flow whose every packet has the same timestamp: any rate would be infinite.
    zero = p.Session(sport=40004, dport=80, step_ns=0)
    zero.handshake()
    zero.send("c", b"x" * 100)
    zero.raw("s", p.RST | p.ACK)
    packets = sorted(tls.packets + more.packets + plain.packets + zero.packets)
    return p.pcap(packets)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "hostile.pcap"
    path.write_bytes(hostile_capture())
    return path


def _reject(name: str) -> None:
    raise ValueError(f"non-JSON constant {name}")


def _strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


# -- 47 / 48: terminal output -----------------------------------------------------------------


def test_case47_plain_text_has_no_controls(hostile: Path) -> None:
    run = cli("analyze", str(hostile), "--no-color", "--all")
    assert_read(run, report=False)
    raw = run.out.encode("utf-8")
    assert not BAD_PLAIN.search(raw), BAD_PLAIN.search(raw)
    assert not BIDI.search(run.out)
    assert raw.isascii()
    # the values are there, escaped and literal (case 48): markup is not interpreted
    assert "\\x1b]0;pwn\\x07[bold red]x[/]\\u202e" in run.out, run.out
    assert "[link=https://x]y[/link]" in run.out and ":warning:" in run.out
    assert "non-TLS bytes (frame 23): '48 54 54 50 2f 31 2e 31 20 34 30" in run.out


def _tty_run(*args: str) -> bytes:
    """Run the CLI with stdout on a pseudo-terminal (colour on), return what it wrote."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpdiag", *args],
        stdout=slave,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=env,
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(10)
    os.close(master)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else None
    return b"".join(chunks)


def test_case47_colour_text_only_sgr(hostile: Path) -> None:
    out = _tty_run("analyze", str(hostile), "--all").decode("utf-8")
    assert "\x1b[" in out  # colour is on
    assert "\x1b]" not in out  # no OSC: title, clipboard (52), hyperlinks (8)
    stripped = SGR.sub("", out)
    assert not CONTROLS.search(stripped.replace("\r\n", "\n")), CONTROLS.search(stripped)
    assert not BIDI.search(out)
    assert "[bold red]x[/]" in stripped and ":warning:" in stripped  # case 48: literal


def test_case48_markup_never_interpreted_api() -> None:
    flow = FlowResult(1, "10.0.0.1:1", "10.0.0.2:443", 4, False, 1, 2, 1.0, 1.0)
    flow.verdict = "[bold red]OK[/] [link=https://x]y[/link] :warning: [/]"
    cap = CaptureResult("[/]x.pcap", "pcap", flows=[flow])
    result = AnalysisResult("0", [cap])
    for color in (False, True):
        out = render_text(result, ReportOptions(color=color, width=200))  # no MarkupError
        plain = SGR.sub("", out)
        assert "[bold red]OK[/]" in plain and ":warning:" in plain and "\u26a0" not in plain
        assert "\x1b]8;" not in out


def _stderr_on_tty(*args: str) -> bytes:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpdiag", *args],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        cwd=REPO,
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(30)
    os.close(master)
    return b"".join(chunks)


def test_case47_file_names_on_stderr_escaped(tmp_path: Path) -> None:
    evil = tmp_path / "in"
    evil.mkdir()
    (evil / "a\x1b[2J.txt").write_bytes(b"not a capture")
    (evil / "b\x1b]0;pwn\x07.pcap").write_bytes(b"")
    (evil / "ok.pcap").write_bytes(hostile_capture())
    for args in (
        ("analyze", str(evil), "--format", "json"),
        ("analyze", str(evil / "b\x1b]0;pwn\x07.pcap")),
    ):
        err = _stderr_on_tty(*args)
        assert err, args
        assert b"\x1b" not in err and b"\x07" not in err, err


# -- 49: structured output ---------------------------------------------------------------------

SARIF_SUBSET = {
    # The parts of the SARIF 2.1.0 schema that tcpdiag's output uses (required properties,
    # types and enums as in sarif-schema-2.1.0.json; the full schema is not vendored).
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "version": {"const": "2.1.0"},
        "$schema": {"type": "string", "format": "uri"},
        "runs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["tool"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "rules": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["id"],
                                            "properties": {"id": {"type": "string"}},
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["message"],
                            "properties": {
                                "ruleId": {"type": "string"},
                                "level": {"enum": ["none", "note", "warning", "error"]},
                                "message": {
                                    "type": "object",
                                    "anyOf": [{"required": ["text"]}, {"required": ["id"]}],
                                    "properties": {"text": {"type": "string"}},
                                },
                                "locations": {"type": "array"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_case49_json_strict(hostile: Path) -> None:
    for fmt in ("json", "jsonl"):
        run = analyze(hostile, fmt=fmt)
        assert_read(run, report=False)
        if fmt == "jsonl":
            docs = [json.loads(line, parse_constant=_reject) for line in run.out.splitlines()]
            assert len(docs) == 5  # four flows, then the summary
        else:
            docs = [json.loads(run.out, parse_constant=_reject)]
            flows = docs[0]["captures"][0]["flows"]
            assert len(flows) == 4
            zero = next(f for f in flows if f["client"].endswith(":40004"))
            assert zero["duration"] == 0.0
            snis = {f["tls"]["sni"] for f in flows if f["tls"]}
            assert "\x1b]0;pwn\x07[bold red]x[/]\u202e" in snis, snis
        for doc in docs:
            for s in _strings(doc):
                s.encode("utf-8")  # no lone surrogates


def test_case49_sarif_and_junit(hostile: Path) -> None:
    run = analyze(hostile, fmt="sarif")
    assert_read(run, report=False)
    doc = json.loads(run.out, parse_constant=_reject)
    jsonschema.validate(doc, SARIF_SUBSET)
    assert doc["runs"][0]["results"], doc
    junit = cli("check", str(hostile), "--format", "junit", "--fail-on", "error")
    assert junit.rc == 1, junit.err
    root = ET.fromstring(junit.out.encode("utf-8"))  # strict: a bad character raises
    texts = " ".join(el.text or "" for el in root.iter()) + " ".join(
        v for el in root.iter() for v in el.attrib.values()
    )
    assert not CONTROLS.search(texts.replace("\n", " ").replace("\t", " ")), texts


def test_case49_html_escaped(hostile: Path) -> None:
    run = analyze(hostile, "--all", fmt="html")
    assert_read(run, report=False)
    page = run.out
    assert page.count("<script") == 1 and "<tag>" not in page
    assert "&lt;tag&gt;" in page or "&lt;tag>" in page
    assert "\x1b" not in page and "\u202e" not in page


# -- 50: writing the report --------------------------------------------------------------------


def test_case50_output_refusals(hostile: Path, tmp_path: Path) -> None:
    before = hostile.read_bytes()
    line = assert_error(analyze(hostile, "-o", str(hostile)), "refusing to overwrite the input")
    assert str(hostile) in line
    assert hostile.read_bytes() == before
    hardlink = tmp_path / "same-inode.pcap"
    os.link(hostile, hardlink)
    assert_error(analyze(hostile, "-o", str(hardlink)), "refusing to overwrite the input")
    hardlink.unlink()
    assert hostile.read_bytes() == before

    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "report.json"
    link.symlink_to(target)
    assert_error(analyze(hostile, "-o", str(link)), "symbolic link")
    assert target.read_text() == "keep me" and link.is_symlink()

    missing = tmp_path / "no" / "such" / "dir" / "r.json"
    assert_error(analyze(hostile, "-o", str(missing)), "does not exist")
    assert not missing.parent.exists()

    # A directory is refused by click's option check: a usage error (exit 2, no traceback).
    run = analyze(hostile, "-o", str(tmp_path))
    assert run.rc == 2 and "is a directory" in run.err and "Traceback" not in run.err
    assert sorted(os.listdir(tmp_path)) == ["precious.txt", "report.json"]  # no partial file


KILL_IN_RENAME = """
import os, sys, time
ready = sys.argv[1]
real = os.replace
def slow_replace(src, dst):
    open(ready, "w").close()   # the report is fully in the temporary file now
    time.sleep(60)
    real(src, dst)
os.replace = slow_replace
sys.argv = ["tcpdiag", *sys.argv[2:]]
from tcpdiag.cli.main import main
main()
"""


def test_case50_sigkill_during_write_keeps_previous(hostile: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    out.write_text("PREVIOUS")
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_IN_RENAME, str(ready), "analyze", str(hostile),
         "--format", "json", "-o", str(out)],
        cwd=REPO,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists()
    proc.kill()  # SIGKILL between writing the data and the rename
    proc.wait(10)
    assert out.read_text() == "PREVIOUS"
    # and a normal run replaces it completely
    assert_read(analyze(hostile, "-o", str(out)).__class__(0, '{"captures": [1]}', "", 0, 0, 0))
    run = analyze(hostile, "-o", str(out))
    assert run.rc == 0 and json.loads(out.read_text())["captures"]


def _big_capture(path: Path, flows: int) -> None:
    frame = bytearray(p.tcp_frame(flags=p.SYN, dport=80, seq=1))
    with open(path, "wb") as fh:
        fh.write(p.pcap_header())
        for i in range(flows):
            frame[26:30] = bytes([10, 200, (i >> 8) & 255, i & 255])
            t = 1_700_000_000 * 10**9 + i * 1000
            fh.write(struct.pack("<IIII", t // 10**9, t % 10**9 // 1000, len(frame), len(frame)))
            fh.write(frame)


def test_case50_head_closes_pipe(tmp_path: Path) -> None:
    path = tmp_path / "many.pcap"
    _big_capture(path, 3000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpdiag", "analyze", str(path), "--format", "jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    rc = proc.wait(60)
    assert first.startswith(b"{")
    assert rc == 0, (rc, err)
    assert err == "", err


def _interrupted(tmp_path: Path) -> tuple[int, bytes, bytes]:
    """Analyse standard input that stays open (a live pipe: the analysis is mid-way whatever
    the machine's speed), then send SIGINT."""
    path = tmp_path / "many.pcap"
    _big_capture(path, 2000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpdiag", "analyze", "-", "--format", "json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdin is not None
    proc.stdin.write(path.read_bytes())
    proc.stdin.flush()
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_case50_sigint_exits_130(tmp_path: Path) -> None:
    rc, _, err = _interrupted(tmp_path)
    assert rc == 130, (rc, err)
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tcpdiag: interrupted"), err


def test_case50_sigint_partial_report(tmp_path: Path) -> None:
    rc, out, _ = _interrupted(tmp_path)
    assert rc == 130
    assert b"incomplete" in out


def test_case50_live_without_cap_net_raw() -> None:
    if not os.path.exists("/usr/sbin/capsh") or os.geteuid() != 0:
        pytest.skip("needs root and capsh to drop CAP_NET_RAW")
    cmd = [
        "/usr/sbin/capsh",
        "--drop=cap_net_raw",
        "--",
        "-c",
        f"{sys.executable} -m tcpdiag live -i lo --duration 1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tcpdiag: error: "), lines
    assert "CAP_NET_RAW" in lines[0]


def test_case50_million_flow_report_renders_top_n() -> None:
    # 100k flows in CI (benchmarks/hostile.py renders 1M): top-N tables keep it fast.
    flows = []
    template = FlowResult(1, "10.0.0.1:1", "10.0.0.2:80", 4, False, 1, 1, 1.0, 1.0)
    from tcpdiag.findings.registry import make_finding

    finding = make_finding("syn-unanswered", "no answer", frames=[1])
    for i in range(100_000):
        flow = FlowResult(i + 1, f"10.0.{i >> 8 & 255}.{i & 255}:{1024 + i % 60000}",
                          template.server, 4, False, i + 1, i + 1, 1.0 + i, 1.0 + i)  # fmt: skip
        flow.findings = [finding]
        flow.state = "S0"
        flows.append(flow)
    result = AnalysisResult("0", [CaptureResult("flood.pcap", "pcap", flows=flows)])
    start = time.process_time()
    out = render_text(result, ReportOptions(color=False))
    took = time.process_time() - start
    assert took < 2.0, took
    assert "more" in out and len(out.splitlines()) < 2000
    assert Severity.ERROR.label in out or "error" in out.lower()
