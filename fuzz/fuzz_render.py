"""Fuzz target: every renderer and the sanitiser on results whose packet-derived strings are
fuzz bytes (bad-inputs 47-49 and O1 under a fuzzer).

Byte 0 picks how the rest becomes text (UTF-8 with lone surrogates for invalid bytes, Latin-1
so C1 controls appear, UTF-16 with unpaired surrogates); the text is cut at "|" into the
strings put in every packet-derived field (SNI, ALPN, versions, alert description, verdict,
messages, timeline labels, link type, path). Invariants: plain text has no C0/C1/DEL byte and no
bidi control; colour text has only SGR sequences; JSON and SARIF parse strictly (no NaN, no
lone surrogates); JUnit parses as XML; the HTML page has exactly one <script>; GitHub
annotations are one line each without controls.
"""

from __future__ import annotations

import itertools
import json
import re
import xml.etree.ElementTree as ET

import common

with common.instrumented():
    from tcpdiag import sanitize
    from tcpdiag.report.github import render_github
    from tcpdiag.report.html import render_html
    from tcpdiag.report.json import render_json, render_jsonl
    from tcpdiag.report.junit import render_junit
    from tcpdiag.report.options import ReportOptions
    from tcpdiag.report.sarif import render_sarif
    from tcpdiag.report.text import render_check, render_text
    from tcpdiag.result import (
        AnalysisResult,
        CaptureResult,
        Finding,
        FlowResult,
        Severity,
        TimelineRow,
        TlsAlert,
        TlsMessage,
        TlsSummary,
    )

BAD_PLAIN = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SGR = re.compile(r"\x1b\[[0-9;]*m")


def strings(data: bytes) -> list[str]:
    mode, rest = (data[0] % 3, data[1:]) if data else (0, b"")
    if mode == 0:
        text = rest.decode("utf-8", "surrogateescape")
    elif mode == 1:
        text = rest.decode("latin-1")
    else:
        text = rest[: len(rest) & ~1].decode("utf-16-le", "surrogatepass")
    return text.split("|") or [""]


def build(values: list[str]) -> AnalysisResult:
    v = itertools.cycle(values)
    tls = TlsSummary(
        versions_offered=[next(v)],
        version=next(v),
        sni=next(v),
        alpn=[next(v), next(v)],
        cipher_suite=next(v),
        messages=[TlsMessage("client", 4, next(v), 10)],
        alerts=[TlsAlert("server", 6, "fatal", next(v), False)],
        ja3=next(v),
        ja4=next(v),
        starttls=next(v),
    )
    findings = [
        Finding("tls-alert", Severity.ERROR, next(v), (6,), 1.5, 1),
        Finding("retransmission", Severity.INFO, next(v), (5, 7), 1.6, 1, 2),
    ]
    rows = [
        TimelineRow(i, 1.0 + i / 1000, "client" if i % 2 else "server", 0x18, i, i, 10, 100)
        for i in range(1, 8)
    ]
    rows[3].tls = [next(v)]
    rows[5].notes = [next(v), "tls-alert"]
    flow = FlowResult(
        1,
        "10.0.0.1:40000",
        "10.0.0.2:443",
        4,
        False,
        1,
        7,
        1.0,
        1.0,  # zero duration: any rate is infinite
        state=next(v),
        history=next(v),
        tls=tls,
        findings=findings,
        verdict=next(v),
        timeline=rows,
    )
    cap = CaptureResult(next(v) or "x", "pcapng", [next(v)], 7, 7, 1.0, 1.0, True, flows=[flow])
    cap.findings = [Finding("capture-damaged", Severity.WARNING, next(v), (3,))]
    return AnalysisResult("0.1.0", [cap])


def _reject(name: str) -> None:
    raise ValueError(f"non-JSON constant {name}")


def check(result: AnalysisResult) -> None:
    plain = ReportOptions(color=False, show_all_timelines=True)
    for text in (render_text(result, plain), render_check(result, plain)):
        assert not BAD_PLAIN.search(text.encode("utf-8")), text
        assert not BIDI.search(text)
    color = render_text(result, ReportOptions(color=True, show_all_timelines=True, width=100))
    assert "\x1b]" not in color  # no OSC (title, clipboard, hyperlinks)
    stripped = SGR.sub("", color)
    assert not CONTROLS.search(stripped), repr(stripped)
    assert not BIDI.search(color)
    json.loads(render_json(result, plain), parse_constant=_reject)
    for line in render_jsonl(result, plain).splitlines():
        json.loads(line, parse_constant=_reject)
    sarif = json.loads(render_sarif(result, plain), parse_constant=_reject)
    assert sarif["version"] == "2.1.0"
    ET.fromstring(render_junit(result, plain).encode("utf-8"))
    for line in render_github(result, plain).splitlines():
        assert line.startswith("::") and not CONTROLS.search(line), line
    page = render_html(result, plain)
    page.encode("utf-8")
    assert page.count("<script") == 1
    for value in (result.captures[0].flows[0].tls.sni,):  # type: ignore[union-attr]
        out = sanitize.clean(value, ascii_only=True)
        assert not BAD_PLAIN.search(out.encode("utf-8")) and out.isascii()
        assert len(out) <= sanitize.DEFAULT_MAX_LEN * 10 + 3
        sanitize.xml_text(value).encode("utf-8")


def test_one_input(data: bytes) -> None:
    check(build(strings(data)))


def seeds() -> list[bytes]:
    hostile = [
        "\x1b]0;pwn\x07[bold red]x[/]\u202e",
        "\x1b[2J\x1b[H",
        "\x1b]52;c;aGk=\x07",
        "\x9b2J",
        "a\rb\bc",
        "[link=https://x]y[/link]",
        ":warning:",
        "]]>&<script>",
        "=cmd|' /C calc'!A0",
        "x" * 300,
    ]
    text = "|".join(hostile)
    return [
        b"\x00" + text.encode("utf-8"),
        b"\x00" + text.encode("utf-8") + b"|\xff\xfe\x80",
        b"\x01" + text.encode("latin-1", "replace") + b"|\x9b\x85",
        b"\x02" + text.encode("utf-16-le") + b"\x00\xd8|\x00",
    ]


if __name__ == "__main__":
    common.main(test_one_input, seeds)
