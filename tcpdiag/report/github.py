"""GitHub Actions workflow commands: one `::error|warning|notice file=...,title=...::message`
line per finding, so findings show up as annotations on the run.

The command syntax is line-based: properties escape `%`, CR, LF, `:` and `,`; the message
escapes `%`, CR and LF. Everything is `sanitize.clean`ed first, so no packet-derived control
sequence reaches the log either.
"""

from __future__ import annotations

from tcpdiag.report._common import iter_findings, repo_path, where
from tcpdiag.report.options import ReportOptions
from tcpdiag.result import AnalysisResult, Severity
from tcpdiag.sanitize import clean

COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(result: AnalysisResult, options: ReportOptions) -> str:
    lines: list[str] = []
    for cap, flow, finding in iter_findings(result):
        path = escape_property(clean(repo_path(cap.path), max_len=1024))
        title = escape_property(f"tcpdiag {finding.name}")
        loc = where(flow, finding)
        message = clean(finding.message, max_len=2000) + (f" [{loc}]" if loc else "")
        lines.append(
            f"::{COMMANDS[finding.severity]} file={path},title={title}::{escape_data(message)}"
        )
    return "".join(line + "\n" for line in lines)
