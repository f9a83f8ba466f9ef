"""The human report: a header per capture, a flow table (problem flows first), findings per flow,
and an annotated packet timeline for each problem flow.

Two faces, one code path: rich colour and Unicode on a terminal, plain ASCII (ASCII box art, no
escape sequences, `->` arrows) for pipes, `--no-color` and NO_COLOR. Every packet-derived string
goes through `sanitize.clean` and is wrapped in `rich.text.Text`, which never interprets markup,
so a hostile SNI prints literally. Rich itself is told not to highlight, parse markup or emoji.

Tables are capped at `options.max_rows` rows ("N more flows not shown"): rich costs ~1 ms per
row, and a million-flow capture must still render in well under two seconds.
"""

from __future__ import annotations

import io
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from tcpdiag.model import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG
from tcpdiag.report.options import (
    ReportOptions,
    count_problems,
    flow_matches,
    problem_order,
    without_timelines,
)
from tcpdiag.report.summary import summarize_captures
from tcpdiag.result import AnalysisResult, CaptureResult, Finding, FlowResult, Severity, TimelineRow
from tcpdiag.sanitize import clean
from tcpdiag.store import StoreView, finding_severities

# Flag names in the order people say them: "SYN/ACK", "PSH/ACK", "FIN/ACK", "RST/ACK".
_FLAG_ORDER = (
    (SYN, "SYN"),
    (FIN, "FIN"),
    (RST, "RST"),
    (PSH, "PSH"),
    (URG, "URG"),
    (ECE, "ECE"),
    (CWR, "CWR"),
    (ACK, "ACK"),
)

SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def _sev_style(sev: Severity | None, default: str) -> str:
    return default if sev is None else SEVERITY_STYLE[sev]


def flag_names(flags: int) -> str:
    names = [name for bit, name in _FLAG_ORDER if flags & bit]
    return "/".join(names) if names else "none"


@dataclass(frozen=True, slots=True)
class _Glyphs:
    to_server: str
    to_client: str
    sep: str
    records: str  # between the TLS records of one segment (ASCII tables use "|" as borders)
    ellipsis: str
    marks: dict[Severity | None, str]
    micro: str


_UNICODE = _Glyphs(
    "\u2192",
    "\u2190",
    " \u00b7 ",
    " \u00b7 ",
    "\u2026",
    {Severity.ERROR: "\u2716", Severity.WARNING: "\u25b2", Severity.INFO: "\u00b7", None: "\u2714"},
    "\u00b5s",
)
_ASCII = _Glyphs(
    "->",
    "<-",
    " | ",
    " + ",
    "...",
    {Severity.ERROR: "E", Severity.WARNING: "W", Severity.INFO: "i", None: "ok"},
    "us",
)


class _Ctx:
    """Per-render settings: glyphs, styles, and the escaping every wire string goes through."""

    def __init__(self, options: ReportOptions) -> None:
        self.options = options
        self.color = options.color
        self.g = _UNICODE if options.color else _ASCII
        self.box = box.SIMPLE_HEAD if options.color else box.ASCII2

    def safe(self, value: object, max_len: int | None = 256) -> str:
        return clean(value, max_len=max_len, ascii_only=not self.color)

    def text(self, value: object, style: str = "", max_len: int | None = 256) -> Text:
        return Text(self.safe(value, max_len), style=style if self.color else "")

    def style(self, style: str) -> str:
        return style if self.color else ""

    def table(self, *columns: str, title: str | None = None) -> Table:
        table = Table(
            box=self.box,
            title=title,
            title_justify="left",
            show_edge=not self.color,
            pad_edge=not self.color,
            header_style=self.style("bold"),
            title_style=self.style("bold"),
            safe_box=True,
        )
        for col in columns:
            right = col in {"#", "frame", "time", "delta", "seq", "ack", "len", "win", "duration"}
            table.add_column(
                col,
                justify="right" if right else "left",
                overflow="fold",
                no_wrap=right,
            )
        return table


def _duration(seconds: float, ctx: _Ctx) -> str:
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "?"
    if round(seconds * 1e6) < 1000:
        return f"{seconds * 1e6:.0f} {ctx.g.micro}"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.3f} s"
    return f"{seconds / 60:.1f} min"


def _when(ts: float | None) -> str:
    if ts is None or ts != ts:
        return "?"
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return "?"


def _sev_text(sev: Severity | None, ctx: _Ctx) -> Text:
    label = sev.label if sev is not None else "ok"
    if not ctx.color:
        return Text(label.upper() if sev == Severity.ERROR else label)
    style = _sev_style(sev, "green")
    return Text(f"{ctx.g.marks[sev]} {label}", style=style)


def _header(cap: CaptureResult, ctx: _Ctx) -> RenderableType:
    g = ctx.g
    title = Text()
    title.append_text(ctx.text(cap.path, "bold", max_len=512))
    facts = [cap.format + (f" ({cap.compression})" if cap.compression else "")]
    if cap.link_types:
        facts.append(", ".join(ctx.safe(t, 64) for t in cap.link_types))
    facts.append(f"{cap.packets} packets ({cap.tcp_packets} TCP)")
    if cap.first_time is not None and cap.last_time is not None:
        facts.append(_duration(max(0.0, cap.last_time - cap.first_time), ctx))
        facts.append("from " + _when(cap.first_time))
    line2 = Text(g.sep.join(facts), style=ctx.style("dim"))
    summary = summarize_captures([cap])
    # (A store counts its flows' findings: reading 20,000 flows to count them took ~0.2 s.)
    counts = Counter(f.severity for f in cap.findings) + finding_severities(cap.flows)
    line3 = Text(f"{summary.flows} flows, {summary.problem_flows} with problems")
    if cap.flows_released:
        line3.append(f" ({cap.flows_released} healthy, reported while live and not kept)")
    if cap.incomplete:
        line3.append(" -- INCOMPLETE: interrupted, only the packets read so far", ctx.style("bold"))
    if counts:
        line3.append("; findings: ")
        parts = [
            (f"{counts[s]} {s.label}", SEVERITY_STYLE[s]) for s in sorted(counts, reverse=True)
        ]
        for i, (part, style) in enumerate(parts):
            if i:
                line3.append(", ")
            line3.append(part, style=ctx.style(style))
    if cap.damaged:
        line3.append("; capture damaged (read up to the damage)", style=ctx.style("yellow"))
    return Group(title, line2, line3)


def _findings_grid(findings: Iterable[Finding], ctx: _Ctx, indent: int = 2) -> Table:
    """Findings as a hanging-indent grid: severity, name (xcount), message and frames."""
    grid = Table.grid(padding=(0, 1), pad_edge=False)
    grid.add_column(width=max(0, indent - 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for f in findings:
        name = Text(ctx.safe(f.name, 64), style=ctx.style("bold"))
        if f.count > 1:
            name.append(f" x{f.count}")
        message = ctx.text(f.message, max_len=1024)
        if f.frames:
            frames = ", ".join(str(n) for n in f.frames[:8])
            if len(f.frames) > 8:
                frames += f" (+{len(f.frames) - 8} more)"
            message.append(
                f" [frame{'s' if len(f.frames) > 1 else ''} {frames}]", style=ctx.style("dim")
            )
        grid.add_row("", _sev_text(f.severity, ctx), name, message)
    return grid


def _flow_table(
    cap: CaptureResult, flows: Sequence[FlowResult], ctx: _Ctx, problems: int
) -> list[RenderableType]:
    table = ctx.table("#", "client", "server", "state", "duration", "verdict")
    limit = max(0, ctx.options.max_rows)
    for flow in flows[:limit]:
        sev = flow.max_severity
        verdict = Text()
        mark = ctx.g.marks[sev]
        said = flow.verdict or "-"
        # The plain glyph of a healthy flow is the word "ok", which healthy verdicts already
        # start with ("ok: 12 bytes ..."): print it once, not "ok ok: ...".
        if not said.startswith(f"{mark}:"):
            verdict.append(mark, style=ctx.style(_sev_style(sev, "green")))
            verdict.append(" ")
        verdict.append_text(ctx.text(said, max_len=200))
        table.add_row(
            str(flow.id),
            ctx.text(flow.client, max_len=64),
            ctx.text(flow.server, max_len=64),
            ctx.text(flow.state, max_len=8),
            _duration(flow.duration, ctx),
            verdict,
        )
    out: list[RenderableType] = [table]
    if len(flows) > limit:
        problems_hidden = max(0, problems - limit)
        more = f"{len(flows) - limit} more flows not shown"
        if problems_hidden:
            more += f" ({problems_hidden} with problems)"
        more += "; use --flow ID, --host, --port or --format json"
        out.append(Text(more, style=ctx.style("dim italic")))
    return out


def _tls_line(flow: FlowResult, ctx: _Ctx) -> Text | None:
    tls = flow.tls
    if tls is None:
        return None
    parts: list[str] = []
    if tls.starttls:
        parts.append("STARTTLS " + ctx.safe(tls.starttls, 16))
    parts.append(ctx.safe(tls.version or "TLS (version unknown)", 40))
    if tls.sni:
        parts.append("SNI " + ctx.safe(tls.sni, 128))
    if tls.alpn:
        parts.append("ALPN " + ",".join(ctx.safe(a, 32) for a in tls.alpn[:6]))
    if tls.cipher_suite:
        parts.append(ctx.safe(tls.cipher_suite, 64))
    parts.append("handshake complete" if tls.handshake_complete else "handshake NOT complete")
    line = Text(ctx.g.sep.join(parts))
    for alert in tls.alerts[:4]:
        desc = (
            "encrypted alert"
            if alert.encrypted
            else (
                f"alert {ctx.safe(alert.level or '?', 16)} {ctx.safe(alert.description or '?', 64)}"
            )
        )
        line.append(
            f"\n{ctx.safe(alert.sender, 8)} sent {desc} (frame {alert.frame})",
            style=ctx.style("red" if alert.level == "fatal" else ""),
        )
    return line


def _timeline(flow: FlowResult, ctx: _Ctx) -> list[RenderableType]:
    rows = flow.timeline
    if not rows:
        return [Text("  (no timeline kept for this flow)", style=ctx.style("dim"))]
    severity_of: dict[str, Severity] = {}
    for f in flow.findings:
        severity_of[f.name] = max(f.severity, severity_of.get(f.name, f.severity))
    table = ctx.table(
        "frame", "time", "delta", "", "flags", "seq", "ack", "len", "win", "TLS records / notes"
    )
    t0 = flow.start if rows[0].time >= flow.start else rows[0].time
    prev: TimelineRow | None = None
    head = len(rows) - _tail_len(flow)
    for i, r in enumerate(rows):
        if i == head and flow.timeline_skipped:
            gap = Text(
                f"{ctx.g.ellipsis} {flow.timeline_skipped} packets not shown",
                style=ctx.style("dim italic"),
            )
            table.add_row(ctx.g.ellipsis, "", "", "", "", "", "", "", "", gap)
            prev = None
        table.add_row(*_timeline_cells(r, prev, t0, severity_of, ctx))
        prev = r
    return [table]


def _tail_len(flow: FlowResult) -> int:
    """How many rows at the end of `flow.timeline` come after the elided middle: the rows after
    the first jump in frame numbers, or none if the timeline is contiguous."""
    rows = flow.timeline or []
    if not flow.timeline_skipped:
        return 0
    gaps = [i for i in range(1, len(rows)) if rows[i].frame - rows[i - 1].frame > 1]
    # The elision is where frames jump furthest; falls back to the end when nothing jumps.
    if not gaps:
        return 0
    cut = max(gaps, key=lambda i: rows[i].frame - rows[i - 1].frame)
    return len(rows) - cut


def _timeline_cells(
    r: TimelineRow,
    prev: TimelineRow | None,
    t0: float,
    severity_of: dict[str, Severity],
    ctx: _Ctx,
) -> list[RenderableType]:
    to_server = r.sender == "client"
    arrow = Text(
        ctx.g.to_server if to_server else ctx.g.to_client,
        style=ctx.style("green" if to_server else "blue"),
    )
    flags = flag_names(r.flags)
    flag_style = "bold red" if r.flags & RST else ("bold" if r.flags & (SYN | FIN) else "")
    delta = "" if prev is None else "+" + _duration(max(0.0, r.time - prev.time), ctx)
    detail = Text()
    if r.tls:
        detail.append(
            ctx.g.records.join(ctx.safe(label, 96) for label in r.tls[:12]),
            style=ctx.style("magenta"),
        )
        if len(r.tls) > 12:
            detail.append(f"{ctx.g.records}{len(r.tls) - 12} more records")
    for note in r.notes:
        sev = severity_of.get(note)
        if detail:
            detail.append("  ")
        detail.append(
            f"{ctx.g.marks.get(sev, '!')} {ctx.safe(note, 64)}",
            style=ctx.style(_sev_style(sev, "yellow")),
        )
    return [
        str(r.frame),
        f"{r.time - t0:.6f}",
        delta,
        arrow,
        Text(flags, style=ctx.style(flag_style)),
        str(r.seq),
        str(r.ack) if r.flags & ACK else "",
        str(r.length) if r.length else "0",
        str(r.window),
        detail,
    ]


def _flow_detail(flow: FlowResult, ctx: _Ctx, with_timeline: bool) -> list[RenderableType]:
    g = ctx.g
    title = Text(f"Flow {flow.id}  ", style=ctx.style("bold"))
    title.append(ctx.safe(flow.client, 64))
    title.append(f" {g.to_server} ")
    title.append(ctx.safe(flow.server, 64))
    title.append(g.sep + ctx.safe(flow.state, 8))
    if flow.history:
        title.append(" " + ctx.safe(flow.history, 32), style=ctx.style("dim"))
    title.append(g.sep + _duration(flow.duration, ctx))
    title.append(f"{g.sep}frames {flow.first_frame}-{flow.last_frame}", style=ctx.style("dim"))
    if flow.client_inferred:
        title.append(" (client inferred: no SYN seen)", style=ctx.style("dim"))
    out: list[RenderableType] = [title]
    # Label and value in a grid, so a long verdict wraps under itself, not under the label.
    facts = Table.grid(padding=(0, 1), pad_edge=False)
    facts.add_column(no_wrap=True, style=ctx.style("bold"))
    facts.add_column(overflow="fold")
    verdict = ctx.text(flow.verdict or "-", _sev_style(flow.max_severity, ""), max_len=400)
    facts.add_row("  verdict:", verdict)
    tls = _tls_line(flow, ctx)
    if tls is not None:
        facts.add_row("  TLS:", tls)
    out.append(facts)
    if flow.findings:
        out.append(_findings_grid(sorted(flow.findings, key=Finding.sort_key), ctx))
    if with_timeline:
        legend = Text(
            f"  {g.to_server} client to server, {g.to_client} server to client; "
            "time from the flow's first packet; seq/ack relative",
            style=ctx.style("dim"),
        )
        out.append(legend)
        out.extend(_timeline(flow, ctx))
    return out


def _capture(cap: CaptureResult, ctx: _Ctx) -> list[RenderableType]:
    opts = ctx.options
    out: list[RenderableType] = [_header(cap, ctx)]
    if cap.findings:
        out.append(Text("Capture findings", style=ctx.style("bold")))
        out.append(_findings_grid(sorted(cap.findings, key=Finding.sort_key), ctx))
    filtered = any(x is not None for x in (opts.flow_filter, opts.host_filter, opts.port_filter))
    flows = [f for f in cap.flows if flow_matches(f, opts)] if filtered else cap.flows
    if not flows:
        out.append(
            Text("no TCP flows" + (" match the filter" if filtered else ""), style=ctx.style("dim"))
        )
        return out
    ordered = problem_order(flows)
    problems = count_problems(ordered)
    out.append(Text(""))
    out.extend(_flow_table(cap, ordered, ctx, problems))
    if opts.flow_filter is not None or opts.show_all_timelines:
        detailed = ordered
    else:
        detailed = ordered[:problems]
    limit = max(0, opts.max_details)
    shown: set[int] = set()
    for flow in detailed[:limit]:
        out.append(Text(""))
        out.extend(_flow_detail(flow, ctx, opts.timelines))
        shown.add(flow.id)
    if len(detailed) > limit:
        out.append(Text(""))
        out.append(
            Text(
                f"{len(detailed) - limit} more flow details not shown; use --flow ID for one",
                style=ctx.style("dim italic"),
            )
        )
    rows = max(0, opts.max_rows)
    minor, minor_count = _other_flows_with_findings(ordered, shown, rows)
    if minor_count > 0:
        out.append(Text(""))
        out.append(Text("Informational findings in other flows", style=ctx.style("bold")))
        findings = [x for f in minor for x in f.findings]
        grid = _findings_grid(findings, ctx)
        out.append(grid)
        if minor_count > rows:
            out.append(
                Text(
                    f"{minor_count - rows} more flows with findings not shown",
                    style=ctx.style("dim italic"),
                )
            )
    return out


def _other_flows_with_findings(
    ordered: Sequence[FlowResult], shown: set[int], rows: int
) -> tuple[list[FlowResult], int]:
    """The first `rows` flows with a finding that are not in `shown`, in order, and how many
    such flows there are, holding no more than those `rows`. (Made as a list of them all, the
    20,000 of a 2M-packet capture held ~90 MB.) A store's view takes its flows with a finding
    from the store's facts and reads them (without timelines) only as far as printed; other
    sequences are looked at one flow at a time."""
    if isinstance(ordered, StoreView):
        others = ordered.with_findings().excluding(shown)
        return list(others[:rows]), len(others)
    minor: list[FlowResult] = []
    count = 0
    for flow in ordered:
        if flow.findings and flow.id not in shown:
            count += 1
            if len(minor) < rows:
                minor.append(flow)
    return minor, count


def renderables(result: AnalysisResult, options: ReportOptions) -> list[RenderableType]:
    ctx = _Ctx(options)
    out: list[RenderableType] = []
    for i, cap in enumerate(result.captures):
        if i:
            out.append(Text(""))
            out.append(Text("=" * 40 if not ctx.color else "\u2500" * 40, style=ctx.style("dim")))
        out.extend(_capture(cap, ctx))
    if len(result.captures) > 1:
        s = summarize_captures(result.captures)
        out.append(Text(""))
        out.append(
            Text(
                f"{len(result.captures)} captures, {s.flows} flows, "
                f"{s.problem_flows} with problems",
                style=ctx.style("bold"),
            )
        )
    return out


def make_console(file: object, options: ReportOptions) -> Console:
    """A console configured for the report: no markup, emoji or highlighting ever; colour only
    when `options.color`."""
    return Console(
        file=file,  # type: ignore[arg-type]
        width=options.width or (None if options.color else 120),
        force_terminal=options.color,
        no_color=not options.color,
        color_system="standard" if options.color else None,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=False,
        legacy_windows=False,
        force_jupyter=False,
    )


def print_text(result: AnalysisResult, console: Console, options: ReportOptions) -> None:
    for item in renderables(result, options):
        console.print(item, markup=False, emoji=False, highlight=False)


def render_text(result: AnalysisResult, options: ReportOptions) -> str:
    buf = io.StringIO()
    console = make_console(buf, options)
    if options.width is None:
        console.width = 140 if options.color else 120
    print_text(result, console, options)
    text = buf.getvalue()
    if not options.color:
        # Cells are padded to their column width; trailing blanks only make diffs noisy.
        text = "\n".join(line.rstrip() for line in text.split("\n"))
    return text


def check_renderables(result: AnalysisResult, options: ReportOptions) -> list[RenderableType]:
    """The `check` text output: one line per finding at or above the threshold (ruff style:
    location, severity, name, message), then a one-line verdict. Findings below the threshold
    are counted, not listed."""
    ctx = _Ctx(options)
    out: list[RenderableType] = []
    failing = below = 0
    failed_captures = 0
    for cap in result.captures:
        threshold = options.threshold(cap.path)
        cap_failed = False
        # One flow at a time (a list of every finding held every flow with one), read without
        # its timeline, which this output does not show.
        items: Iterator[tuple[FlowResult | None, Finding]] = itertools.chain(
            ((None, f) for f in cap.findings),
            ((flow, f) for flow in without_timelines(cap.flows) for f in flow.findings),
        )
        for flow, f in items:
            if f.severity < threshold:
                below += 1
                continue
            failing += 1
            cap_failed = True
            line = Text()
            line.append(ctx.safe(cap.path, 512), style=ctx.style("bold"))
            if flow is not None:
                line.append(
                    f": flow {flow.id} ({ctx.safe(flow.client, 64)} {ctx.g.to_server} "
                    f"{ctx.safe(flow.server, 64)})"
                )
            if f.frames:
                line.append(f", frame {f.frames[0]}")
            line.append(": ")
            line.append_text(_sev_text(f.severity, ctx))
            line.append(" ")
            line.append(ctx.safe(f.name, 64), style=ctx.style("bold"))
            line.append(": ")
            line.append_text(ctx.text(f.message, max_len=1024))
            out.append(line)
        failed_captures += cap_failed
    n = len(result.captures)
    thresholds = sorted({options.threshold(c.path) for c in result.captures} or {options.fail_on})
    level = "/".join(t.label for t in thresholds)
    if failing:
        verdict = Text(
            f"{failing} finding{'s' if failing != 1 else ''} at or above {level} in "
            f"{failed_captures} of {n} capture{'s' if n != 1 else ''}",
            style=ctx.style("bold red"),
        )
    else:
        verdict = Text(
            f"{ctx.g.marks[None]} no findings at or above {level} in {n} "
            f"capture{'s' if n != 1 else ''}",
            style=ctx.style("bold green"),
        )
    if below:
        verdict.append(f" ({below} below the threshold)", style=ctx.style("dim"))
    out.append(verdict)
    return out


def render_check(result: AnalysisResult, options: ReportOptions) -> str:
    buf = io.StringIO()
    console = make_console(buf, options)
    for item in check_renderables(result, options):
        # One finding per line, never wrapped: CI logs are grepped.
        console.print(item, markup=False, emoji=False, highlight=False, soft_wrap=True)
    return buf.getvalue()
