"""`tcpdiag explain [NAME]`: the documentation of a finding, or the table of all findings.

Like `ruff rule`: one page per finding with fixed sections. Rendered with rich on a terminal,
as plain wrapped text when piped, with --no-color or NO_COLOR. `markdown_page()` is the single
source of a page's text; `docs/gen_findings.py` builds docs/findings.md from it.
"""

from __future__ import annotations

import shutil
import sys
import textwrap

import click
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from tcpdiag.cli.common import use_color
from tcpdiag.findings.registry import REGISTRY, FindingSpec, names, suggest

PLAIN_WIDTH = 88


def severity_text(s: FindingSpec) -> str:
    label = s.severity.label
    return f"{label} ({s.severity_note})" if s.severity_note else label


def markdown_page(s: FindingSpec, heading: str = "#") -> str:
    """The page of one finding as Markdown (sections at one level below `heading`)."""
    sub = heading + "#"
    lines = [
        f"{heading} {s.name}",
        "",
        f"**{s.title}**",
        "",
        f"Severity: {severity_text(s)}. Category: {s.category}"
        + (
            " (capture quality: a fault of the capture, not of the network)."
            if s.capture_quality
            else "."
        ),
    ]
    for title, body in s.sections():
        lines += ["", f"{sub} {title}", ""]
        if title == "Example":
            lines += ["```text", body, "```"]
        else:
            lines.append(body)
    return "\n".join(lines) + "\n"


def _wrap_block(block: str, width: int) -> list[str]:
    if block.startswith("- "):
        return textwrap.wrap(block, width, initial_indent="", subsequent_indent="  ") or [""]
    return textwrap.wrap(block, width) or [""]


def plain_page(s: FindingSpec, width: int = PLAIN_WIDTH) -> str:
    """The page as plain text: no colour, ASCII layout, paragraphs wrapped to `width`."""
    out = [f"{s.name} ({s.severity.label}, {s.category})", "", *textwrap.wrap(s.title, width)]
    if s.severity_note:
        out += textwrap.wrap(f"Severity: {severity_text(s)}.", width)
    if s.capture_quality:
        out.append("Capture quality: a fault of the capture, not of the network.")
    for title, body in s.sections():
        out += ["", title, "-" * len(title)]
        if title == "Example":
            out += ["    " + line if line else "" for line in body.splitlines()]
            continue
        for block in body.split("\n"):
            out += _wrap_block(block, width) if block else [""]
    return "\n".join(out) + "\n"


def plain_table() -> str:
    rows = [
        (n, REGISTRY[n].severity.label, REGISTRY[n].category, REGISTRY[n].title) for n in names()
    ]
    w_name = max(len(r[0]) for r in rows)
    w_sev = max(len("severity"), *(len(r[1]) for r in rows))
    w_cat = max(len("category"), *(len(r[2]) for r in rows))
    head = f"{'name':<{w_name}}  {'severity':<{w_sev}}  {'category':<{w_cat}}  title"
    lines = [head, "-" * len(head)]
    lines += [f"{a:<{w_name}}  {b:<{w_sev}}  {c:<{w_cat}}  {d}" for a, b, c, d in rows]
    lines += ["", "tcpdiag explain NAME shows what a finding means and what to do about it."]
    return "\n".join(lines) + "\n"


def _rich_table(console: Console) -> None:
    colours = {"error": "red", "warning": "yellow", "info": "cyan"}
    table = Table(title="tcpdiag findings", show_lines=False)
    for col in ("name", "severity", "category", "title"):
        table.add_column(col, no_wrap=col != "title")
    for n in names():
        s = REGISTRY[n]
        table.add_row(
            Text(n, style="bold"),
            Text(s.severity.label, style=colours[s.severity.label]),
            Text(s.category),
            Text(s.title),
        )
    console.print(table)
    console.print(Text("tcpdiag explain NAME shows what a finding means and what to do about it."))


@click.command("explain")
@click.argument("name", required=False)
@click.option("--no-color", is_flag=True, help="Plain text even on a terminal (also NO_COLOR).")
def explain(name: str | None, no_color: bool) -> None:
    """Explain a finding: what it means, how it is detected, causes, how to confirm, what to do.

    Without NAME, list every finding with its severity and category.
    """
    color = use_color(no_color, to_file=False)
    if name is None:
        if color:
            _rich_table(Console())
        else:
            click.echo(plain_table(), nl=False)
        return
    key = name.strip().lower()
    s = REGISTRY.get(key)
    if s is None:
        hints = suggest(name)
        hint = f"; did you mean {', '.join(hints)}?" if hints else ""
        click.echo(
            f"tcpdiag explain: unknown finding {name!r}{hint} (`tcpdiag explain` lists them all)",
            err=True,
        )
        sys.exit(2)
    if color:
        Console().print(Markdown(markdown_page(s)))
    else:
        width = min(PLAIN_WIDTH, max(40, shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns))
        click.echo(plain_page(s, width), nl=False)
