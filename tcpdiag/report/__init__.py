"""Renderers: `render_X(result, options) -> str` for each output format (text, json, jsonl,
sarif, junit, github, html), and `text.print_text(result, console, options)` for a live console.
"""

from tcpdiag.report.options import ReportOptions

__all__ = ["ReportOptions"]
