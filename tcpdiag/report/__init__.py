"""Renderers: `render_X(result, options) -> str` for each output format, `text.print_text(result,
console, options)` for a live console, and `renderer(fmt)` to pick one by its `--format` name.
"""

from __future__ import annotations

import importlib
import os as _os
from collections.abc import Callable, Iterable, Iterator

from tcpdiag._native import use_pure_python as _use_pure_python
from tcpdiag.report.options import ReportOptions
from tcpdiag.result import AnalysisResult

# Modules that setup.py may compile with mypyc (TCPDIAG_PURE=1 runs their source instead; the
# imports above do not import them).
COMPILED_MODULES = ("json",)
_use_pure_python(__name__, _os.path.dirname(__file__), COMPILED_MODULES)

Renderer = Callable[[AnalysisResult, ReportOptions], str]

# --format name -> (module, function). "check" is the compact CI listing of `tcpdiag check`.
FORMATS: dict[str, tuple[str, str]] = {
    "text": ("tcpdiag.report.text", "render_text"),
    "check": ("tcpdiag.report.text", "render_check"),
    "json": ("tcpdiag.report.json", "render_json"),
    "jsonl": ("tcpdiag.report.json", "render_jsonl"),
    "sarif": ("tcpdiag.report.sarif", "render_sarif"),
    "junit": ("tcpdiag.report.junit", "render_junit"),
    "github": ("tcpdiag.report.github", "render_github"),
    "html": ("tcpdiag.report.html", "render_html"),
}


# Formats that can be written in chunks as they are produced (bounded memory for huge reports).
STREAMING: dict[str, tuple[str, str]] = {
    "json": ("tcpdiag.report.json", "iter_json"),
    "jsonl": ("tcpdiag.report.json", "iter_jsonl"),
}


def render(fmt: str, result: AnalysisResult, options: ReportOptions) -> Iterable[str]:
    """The report in `fmt` as chunks of text: streamed where the format allows, else whole."""
    if fmt in STREAMING:
        module, name = STREAMING[fmt]
        chunks: Callable[[AnalysisResult, ReportOptions], Iterator[str]] = getattr(
            importlib.import_module(module), name
        )
        return chunks(result, options)
    return (renderer(fmt)(result, options),)


def renderer(fmt: str) -> Renderer:
    """The render function for `fmt` (imported on demand: `rich` only when text is wanted)."""
    module, name = FORMATS[fmt]
    func: Renderer = getattr(importlib.import_module(module), name)
    return func


__all__ = ["FORMATS", "STREAMING", "Renderer", "ReportOptions", "render", "renderer"]
