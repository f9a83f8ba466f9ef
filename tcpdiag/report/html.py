"""A single self-contained HTML report: flow table, findings, and per problem flow a ladder
(sequence) diagram and a time-sequence graph, both inline SVG.

Self-contained means no fetch of any kind: inline CSS, a few lines of inline JS, inline SVG, and
a Content-Security-Policy that forbids everything else (`default-src 'none'`), so even a bug
could not make the page load a remote resource. Every packet-derived string is `clean()`ed and
then HTML-escaped (`_e`); nothing from a capture is ever placed in an attribute unescaped or in
the script.

The ladder diagram draws one arrow per timeline row from the sender's column to the receiver's,
labelled with flags, relative seq, length and the TLS records in the segment; rows with a
finding are marked in the finding's colour and named at the right. The time-sequence graph is
tcptrace's: for each direction, relative sequence number over time, each data segment an I-beam
from seq to seq+len, retransmissions (a segment that starts below the highest sequence already
sent, or a row marked by a retransmission finding) in red, and the peer's ACK line as a step.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Iterable, Sequence

from tcpdiag.report.options import (
    ReportOptions,
    count_problems,
    flow_matches,
    is_problem,
    problem_order,
)
from tcpdiag.report.summary import summarize_captures
from tcpdiag.report.text import flag_names
from tcpdiag.result import AnalysisResult, CaptureResult, Finding, FlowResult, Severity, TimelineRow
from tcpdiag.sanitize import clean

_SEV_CLASS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "info"}
_SEV_COLOR = {Severity.ERROR: "#c62828", Severity.WARNING: "#b26a00", Severity.INFO: "#1565c0"}
_RETRANS = ("retransmission", "fast-retransmission", "spurious-retransmission")

CSS = """
:root{--fg:#1d232a;--muted:#5f6b76;--line:#d5dbe1;--bg:#fff;--soft:#f5f7f9;--c:#2e7d32;--s:#1565c0}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
 background:var(--bg);margin:0;padding:24px 32px;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 4px;word-break:break-all}
h3{font-size:16px;margin:28px 0 6px;padding-top:12px;border-top:1px solid var(--line)}
.muted{color:var(--muted)}code,.mono,td.num{font-family:ui-monospace,SFMono-Regular,Menlo,
 Consolas,monospace;font-size:12.5px}
table{border-collapse:collapse;margin:8px 0;width:100%}th,td{padding:4px 8px;text-align:left;
 border-bottom:1px solid var(--line);vertical-align:top}th{background:var(--soft);font-weight:600}
td.num{text-align:right;white-space:nowrap}tr.problem td:first-child{border-left:3px solid #c62828}
.badge{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;font-weight:600;
 color:#fff;margin-right:6px;white-space:nowrap}
.badge.error{background:#c62828}.badge.warning{background:#b26a00}.badge.info{background:#1565c0}
.badge.ok{background:#2e7d32}
ul.findings{list-style:none;padding:0;margin:6px 0}ul.findings li{margin:4px 0}
.verdict{font-weight:600}.tls{margin:4px 0}
.diagrams{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start;margin-top:8px}
.diagram{border:1px solid var(--line);border-radius:4px;padding:8px;background:#fff;
 overflow-x:auto;max-width:100%}
.diagram h4{margin:0 0 6px;font-size:13px;color:var(--muted);font-weight:600}
svg text{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.more{color:var(--muted);font-style:italic}
input#filter{padding:4px 8px;width:320px;border:1px solid var(--line);border-radius:4px}
details{margin:6px 0}summary{cursor:pointer;color:var(--muted)}
"""

# Filters the flow tables by text; touches no packet-derived data beyond reading cell text.
JS = """
document.addEventListener('DOMContentLoaded', function () {
  var box = document.getElementById('filter');
  if (!box) { return; }
  box.addEventListener('input', function () {
    var q = box.value.toLowerCase();
    document.querySelectorAll('table.flows tbody tr').forEach(function (tr) {
      tr.style.display = tr.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
    });
  });
});
"""

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)


def _e(value: object, max_len: int | None = 256) -> str:
    """Clean, then HTML-escape (quotes too: safe in attributes and SVG text)."""
    return html.escape(clean(value, max_len=max_len), quote=True)


def _dur(seconds: float) -> str:
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "?"
    if round(seconds * 1e6) < 1000:
        return f"{seconds * 1e6:.0f} \u00b5s"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.3f} s"


def _badge(sev: Severity | None) -> str:
    if sev is None:
        return '<span class="badge ok">ok</span>'
    return f'<span class="badge {_SEV_CLASS[sev]}">{sev.label}</span>'


def _findings(findings: Iterable[Finding]) -> str:
    items = []
    for f in sorted(findings, key=Finding.sort_key):
        frames = ""
        if f.frames:
            shown = ", ".join(map(str, f.frames[:10]))
            more = f" (+{len(f.frames) - 10})" if len(f.frames) > 10 else ""
            word = "frames" if len(f.frames) > 1 else "frame"
            frames = f' <span class="muted">{word} {shown}{more}</span>'
        count = f" \u00d7{f.count}" if f.count > 1 else ""
        items.append(
            f"<li>{_badge(f.severity)}<code>{_e(f.name, 64)}</code>{count}: "
            f"{_e(f.message, 1024)}{frames}</li>"
        )
    return '<ul class="findings">' + "".join(items) + "</ul>" if items else ""


# -- ladder diagram ------------------------------------------------------------------------------


def _note_severity(flow: FlowResult) -> dict[str, Severity]:
    out: dict[str, Severity] = {}
    for f in flow.findings:
        out[f.name] = max(f.severity, out.get(f.name, f.severity))
    return out


def _gap_index(flow: FlowResult) -> int | None:
    """Index of the first row after the elided middle of the timeline, if any."""
    rows = flow.timeline or []
    if not flow.timeline_skipped or len(rows) < 2:
        return None
    return max(range(1, len(rows)), key=lambda i: rows[i].frame - rows[i - 1].frame)


def ladder_svg(flow: FlowResult) -> str:
    rows = flow.timeline or []
    sev_of = _note_severity(flow)
    gap = _gap_index(flow)
    left, right = 250, 690
    width = 1010
    top = 50
    height = top + sum(map(_row_height, rows)) + (_ROW if gap is not None else 0) + 16
    t0 = rows[0].time if rows else flow.start
    parts = [
        f'<svg class="ladder" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="ladder diagram of flow {flow.id}">',
        "<defs>"
        '<marker id="ah" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        'fill="context-stroke"/></marker></defs>',
        f'<text x="{left}" y="18" text-anchor="middle" font-size="13" font-weight="bold" '
        f'fill="#2e7d32">client</text>',
        f'<text x="{left}" y="34" text-anchor="middle" font-size="11">{_e(flow.client, 64)}</text>',
        f'<text x="{right}" y="18" text-anchor="middle" font-size="13" font-weight="bold" '
        f'fill="#1565c0">server</text>',
        f'<text x="{right}" y="34" text-anchor="middle" font-size="11">'
        f"{_e(flow.server, 64)}</text>",
        f'<line x1="{left}" y1="42" x2="{left}" y2="{height - 8}" stroke="#8a96a3" '
        'stroke-width="2"/>',
        f'<line x1="{right}" y1="42" x2="{right}" y2="{height - 8}" stroke="#8a96a3" '
        'stroke-width="2"/>',
        '<text x="8" y="50" font-size="10" fill="#5f6b76">frame  time (s)</text>',
    ]
    y = top
    for i, r in enumerate(rows):
        if gap is not None and i == gap:
            parts.append(
                f'<text x="{(left + right) // 2}" y="{y + 18}" text-anchor="middle" '
                f'font-size="11" fill="#5f6b76" font-style="italic">\u2026 '
                f"{flow.timeline_skipped} packets not shown \u2026</text>"
            )
            y += _ROW
        parts.append(_ladder_row(r, y, t0, left, right, sev_of))
        y += _row_height(r)
    parts.append("</svg>")
    return "".join(parts)


_ROW = 34  # px per packet; +14 when the segment carries TLS records (a second label line)


def _row_height(r: TimelineRow) -> int:
    return _ROW + (14 if r.tls else 0)


def _ladder_row(
    r: TimelineRow, y: int, t0: float, left: int, right: int, sev_of: dict[str, Severity]
) -> str:
    from tcpdiag.model import RST, SYN

    client = r.sender == "client"
    x1, x2 = (left, right) if client else (right, left)
    # Labels sit above their arrow: TLS records (if any), then flags; the arrow slopes down.
    label_y = y + (24 if r.tls else 10)
    y1 = label_y + 4
    y2 = y1 + 14
    worst = max((sev_of[n] for n in r.notes if n in sev_of), default=None)
    color = "#2e7d32" if client else "#1565c0"
    if r.flags & RST:
        color = "#c62828"
    if worst is not None and worst >= Severity.WARNING:
        color = _SEV_COLOR[worst]
    label = flag_names(r.flags)
    if r.length:
        label += f" len={r.length}"
    label += f" seq={r.seq}"
    weight = ' font-weight="bold"' if r.flags & (SYN | RST) else ""
    tip = _e(label, 200) + (" | " + _e(" \u00b7 ".join(r.tls), 400) if r.tls else "")
    out = [
        f'<g class="pkt" data-frame="{r.frame}"><title>frame {r.frame}: {tip}</title>',
        f'<text x="8" y="{y1 + 9}" font-size="11" fill="#5f6b76">{r.frame:>5}  '
        f"{r.time - t0:.6f}</text>",
        f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{color}" stroke-width="1.6" '
        'marker-end="url(#ah)"/>',
        f'<text x="{(left + right) // 2}" y="{label_y}" text-anchor="middle" font-size="11" '
        f'fill="{color}"{weight}>{_e(label, 120)}</text>',
    ]
    if r.tls:
        tls = " \u00b7 ".join(clean(t, max_len=64) for t in r.tls[:6])
        if len(r.tls) > 6:
            tls += f" \u00b7 +{len(r.tls) - 6}"
        out.append(
            f'<text x="{(left + right) // 2}" y="{y + 10}" text-anchor="middle" font-size="10.5" '
            f'fill="#6a1b9a">{html.escape(clean(tls, max_len=90), quote=True)}</text>'
        )
    if r.notes:
        note_color = _SEV_COLOR.get(worst, "#b26a00") if worst else "#b26a00"
        out.append(
            f'<circle cx="{x2}" cy="{y2}" r="5" fill="none" stroke="{note_color}" '
            'stroke-width="2"/>'
        )
        names = ", ".join(clean(n, max_len=48) for n in r.notes[:4])
        out.append(
            f'<text x="{right + 16}" y="{y2 + 4}" font-size="11" fill="{note_color}" '
            f'font-weight="bold">\u25c0 {html.escape(names, quote=True)}</text>'
        )
    out.append("</g>")
    return "".join(out)


# -- time-sequence graph -------------------------------------------------------------------------


class _TimeAxis:
    """Time -> x, with long idle stretches cut out: a gap longer than a quarter of the flow's
    span (and over half a second) is drawn `GAP_PX` wide and labelled, so 60 s of silence
    before a RST does not squeeze the interesting part into one pixel column."""

    GAP_PX = 28

    def __init__(self, times: list[float], x0: float, width: float) -> None:
        times = sorted(times) or [0.0]
        self.t0 = times[0]
        span = times[-1] - times[0]
        limit = max(0.25 * span, 0.5)
        # (start, length) of every cut gap, in time.
        self.gaps = [(a, b - a) for a, b in itertools.pairwise(times) if b - a > limit]
        kept = span - sum(g for _, g in self.gaps)
        usable = width - self.GAP_PX * len(self.gaps)
        self.scale = usable / kept if kept > 0 else 0.0
        self.x0 = x0

    def x(self, t: float) -> float:
        cut = 0.0
        n = 0
        for start, length in self.gaps:
            if t > start:
                cut += length
                n += 1
        return self.x0 + (t - self.t0 - cut) * self.scale + n * self.GAP_PX

    def gap_marks(self, y: float, h: float) -> str:
        out = []
        for start, length in self.gaps:
            x = self.x(start) + self.GAP_PX / 2
            out.append(
                f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y + h:.1f}" stroke="#9e9e9e" '
                f'stroke-dasharray="3,3"/><text x="{x:.1f}" y="{y + h / 2:.1f}" font-size="9" '
                f'text-anchor="middle" fill="#5f6b76" transform="rotate(-90 {x:.1f} '
                f'{y + h / 2:.1f})">{_dur(length)} idle</text>'
            )
        return "".join(out)


def tsg_svg(flow: FlowResult) -> str:
    """tcptrace-style time-sequence graph, one panel per direction."""
    rows = flow.timeline or []
    width, panel_h = 640, 200
    pad_l, pad_r, pad_t, pad_b = 70, 16, 22, 30
    height = 2 * (panel_h + 12)
    t0 = rows[0].time if rows else flow.start
    t_max = max((r.time - t0 for r in rows), default=0.0) or 1e-6
    axis = _TimeAxis([r.time for r in rows], pad_l, width - pad_l - pad_r)
    parts = [
        f'<svg class="tsg" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="time-sequence graph of flow {flow.id}">'
    ]
    sev_of = _note_severity(flow)
    for panel, sender in enumerate(("client", "server")):
        oy = panel * (panel_h + 12)
        mine = [r for r in rows if r.sender == sender]
        acks = [r for r in rows if r.sender != sender and r.ack]
        top_seq = max([r.seq + r.length for r in mine] + [r.ack for r in acks] + [1])
        plot_w = width - pad_l - pad_r
        plot_h = panel_h - pad_t - pad_b

        sx = axis.x

        def sy(seq: float, _h: int = plot_h, _oy: int = oy, _top: int = top_seq) -> float:
            return _oy + pad_t + _h - seq / _top * _h

        title = ("client \u2192 server" if sender == "client" else "server \u2192 client") + " data"
        parts.append(
            f'<text x="{pad_l}" y="{oy + 14}" font-size="12" font-weight="bold" '
            f'fill="{"#2e7d32" if sender == "client" else "#1565c0"}">{title}</text>'
            f'<rect x="{pad_l}" y="{oy + pad_t}" width="{plot_w}" height="{plot_h}" fill="none" '
            'stroke="#d5dbe1"/>'
            f'<text x="{pad_l - 6}" y="{oy + pad_t + 8}" font-size="10" text-anchor="end">'
            f"{top_seq}</text>"
            f'<text x="{pad_l - 6}" y="{oy + pad_t + plot_h}" font-size="10" '
            'text-anchor="end">0</text>'
            f'<text x="{pad_l}" y="{oy + panel_h - 12}" font-size="10">0 s</text>'
            f'<text x="{pad_l + plot_w}" y="{oy + panel_h - 12}" font-size="10" '
            f'text-anchor="end">{t_max:.6f} s</text>'
            + axis.gap_marks(oy + pad_t, plot_h)
            + f'<text x="12" y="{oy + pad_t + plot_h / 2:.1f}" font-size="10" '
            f'transform="rotate(-90 12 {oy + pad_t + plot_h / 2:.1f})" '
            'text-anchor="middle">rel. seq</text>'
        )
        if acks:
            points = []
            last: float | None = None
            for r in acks:
                x = sx(r.time)
                if last is not None:
                    points.append(f"{x:.1f},{sy(last):.1f}")
                points.append(f"{x:.1f},{sy(r.ack):.1f}")
                last = r.ack
            parts.append(
                f'<polyline class="ackline" points="{" ".join(points)}" fill="none" '
                'stroke="#9e9e9e" stroke-width="1"/>'
            )
        highest = 0
        for r in mine:
            x = sx(r.time)
            retrans = bool(r.length) and (
                r.seq + r.length <= highest or any(n in _RETRANS for n in r.notes)
            )
            noted = max((sev_of[n] for n in r.notes if n in sev_of), default=None)
            color = "#c62828" if retrans else ("#2e7d32" if sender == "client" else "#1565c0")
            tip = f"frame {r.frame} {flag_names(r.flags)} seq={r.seq} len={r.length}"
            if retrans:
                tip += " (retransmission)"
            if r.length:
                ya, yb = sy(r.seq), sy(r.seq + r.length)
                parts.append(
                    f'<g class="{"retrans" if retrans else "seg"}"><title>{_e(tip)}</title>'
                    f'<line x1="{x:.1f}" y1="{ya:.1f}" x2="{x:.1f}" y2="{yb:.1f}" '
                    f'stroke="{color}" stroke-width="1.5"/>'
                    f'<line x1="{x - 3:.1f}" y1="{ya:.1f}" x2="{x + 3:.1f}" y2="{ya:.1f}" '
                    f'stroke="{color}"/><line x1="{x - 3:.1f}" y1="{yb:.1f}" x2="{x + 3:.1f}" '
                    f'y2="{yb:.1f}" stroke="{color}"/>'
                    + (
                        f'<text x="{x + 4:.1f}" y="{yb - 2:.1f}" font-size="10" '
                        f'fill="{color}">R</text>'
                        if retrans
                        else ""
                    )
                    + "</g>"
                )
                highest = max(highest, r.seq + r.length)
            else:
                parts.append(
                    f'<circle cx="{x:.1f}" cy="{sy(r.seq):.1f}" r="2" fill="{color}">'
                    f"<title>{_e(tip)}</title></circle>"
                )
            if noted is not None and noted >= Severity.WARNING:
                parts.append(
                    f'<circle cx="{x:.1f}" cy="{sy(r.seq + r.length):.1f}" r="6" fill="none" '
                    f'stroke="{_SEV_COLOR[noted]}" stroke-width="2"/>'
                )
    parts.append("</svg>")
    return "".join(parts)


# -- page --------------------------------------------------------------------------------------


def _flow_table(flows: Sequence[FlowResult], cap_no: int, limit: int) -> str:
    rows = []
    for flow in flows[:limit]:
        cls = ' class="problem"' if is_problem(flow) else ""
        rows.append(
            f'<tr{cls}><td class="num"><a href="#c{cap_no}-f{flow.id}">{flow.id}</a></td>'
            f'<td class="mono">{_e(flow.client, 64)}</td><td class="mono">{_e(flow.server, 64)}'
            f'</td><td class="mono">{_e(flow.state, 8)}</td><td class="num">'
            f"{_dur(flow.duration)}</td><td>{_badge(flow.max_severity)}{_e(flow.verdict, 300)}"
            "</td></tr>"
        )
    more = ""
    if len(flows) > limit:
        more = f'<p class="more">{len(flows) - limit} more flows not shown.</p>'
    return (
        '<table class="flows"><thead><tr><th>#</th><th>client</th><th>server</th><th>state</th>'
        "<th>duration</th><th>verdict</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + more
    )


def _tls(flow: FlowResult) -> str:
    tls = flow.tls
    if tls is None:
        return ""
    bits = [_e(tls.version or "TLS (version unknown)", 40)]
    if tls.sni:
        bits.append("SNI <code>" + _e(tls.sni, 128) + "</code>")
    if tls.alpn:
        bits.append("ALPN " + ", ".join(_e(a, 32) for a in tls.alpn[:6]))
    if tls.cipher_suite:
        bits.append(_e(tls.cipher_suite, 64))
    bits.append("handshake complete" if tls.handshake_complete else "<b>handshake NOT complete</b>")
    return '<p class="tls">TLS: ' + " \u00b7 ".join(bits) + "</p>"


def _timeline_table(flow: FlowResult) -> str:
    rows = flow.timeline or []
    if not rows:
        return ""
    t0 = rows[0].time
    body = []
    for r in rows:
        arrow = "\u2192" if r.sender == "client" else "\u2190"
        body.append(
            f'<tr><td class="num">{r.frame}</td><td class="num">{r.time - t0:.6f}</td>'
            f'<td>{arrow}</td><td class="mono">{flag_names(r.flags)}</td>'
            f'<td class="num">{r.seq}</td><td class="num">{r.ack}</td>'
            f'<td class="num">{r.length}</td><td class="num">{r.window}</td>'
            f"<td>{_e(' · '.join(r.tls), 400)} {_e(', '.join(r.notes), 200)}</td></tr>"
        )
    return (
        "<details><summary>packet table</summary><table><thead><tr><th>frame</th><th>time</th>"
        "<th></th><th>flags</th><th>seq</th><th>ack</th><th>len</th><th>win</th>"
        "<th>TLS / notes</th></tr></thead><tbody>" + "".join(body) + "</tbody></table></details>"
    )


def _flow_detail(flow: FlowResult, cap_no: int, timelines: bool) -> str:
    out = [
        f'<section class="flow" id="c{cap_no}-f{flow.id}"><h3>Flow {flow.id} '
        f'<span class="mono">{_e(flow.client, 64)} \u2192 {_e(flow.server, 64)}</span> '
        f'<span class="muted">{_e(flow.state, 8)} {_e(flow.history, 32)} \u00b7 '
        f"{_dur(flow.duration)} \u00b7 frames {flow.first_frame}\u2013{flow.last_frame}</span>"
        "</h3>",
        f'<p class="verdict">{_badge(flow.max_severity)}{_e(flow.verdict or "-", 400)}</p>',
        _tls(flow),
        _findings(flow.findings),
    ]
    if timelines and flow.timeline:
        out.append(
            '<div class="diagrams"><div class="diagram"><h4>Ladder diagram</h4>'
            + ladder_svg(flow)
            + '</div><div class="diagram"><h4>Time-sequence graph (tcptrace style: I-beams are '
            "segments, grey is the peer's ACK line, red R marks retransmissions)</h4>"
            + tsg_svg(flow)
            + "</div></div>"
            + _timeline_table(flow)
        )
    out.append("</section>")
    return "".join(out)


def _capture(cap: CaptureResult, cap_no: int, options: ReportOptions) -> str:
    # Unfiltered, a store's flows stay on disk: only those shown are read (a list of them
    # all held every flow of the capture in memory, timelines included).
    filtered = any(
        x is not None for x in (options.flow_filter, options.host_filter, options.port_filter)
    )
    flows = problem_order(
        [f for f in cap.flows if flow_matches(f, options)] if filtered else cap.flows
    )
    summary = summarize_captures([cap])
    facts = [cap.format, ", ".join(_e(t, 64) for t in cap.link_types)]
    facts.append(f"{cap.packets} packets ({cap.tcp_packets} TCP)")
    if cap.first_time is not None and cap.last_time is not None:
        facts.append(_dur(max(0.0, cap.last_time - cap.first_time)))
    out = [
        f'<section class="capture"><h2>{_e(cap.path, 512)}</h2>',
        '<p class="muted">' + " \u00b7 ".join(x for x in facts if x) + "</p>",
        f"<p>{summary.flows} flows, {summary.problem_flows} with problems"
        + (" \u00b7 <b>capture damaged</b>" if cap.damaged else "")
        + "</p>",
    ]
    if cap.findings:
        out.append("<h4>Capture findings</h4>" + _findings(cap.findings))
    out.append(_flow_table(flows, cap_no, options.max_rows))
    if options.flow_filter is not None or options.show_all_timelines:
        detailed = flows
    else:
        detailed = flows[: count_problems(flows)]
    for flow in detailed[: options.max_details]:
        out.append(_flow_detail(flow, cap_no, options.timelines))
    if len(detailed) > options.max_details:
        out.append(
            f'<p class="more">{len(detailed) - options.max_details} more flow details not '
            "shown.</p>"
        )
    out.append("</section>")
    return "".join(out)


def render_html(result: AnalysisResult, options: ReportOptions) -> str:
    s = summarize_captures(result.captures)
    worst = s.max_severity.label if s.max_severity else "none"
    body = "".join(_capture(cap, i, options) for i, cap in enumerate(result.captures))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>tcpdiag report</title><style>{CSS}</style><script>{JS}</script></head><body>"
        f'<h1>tcpdiag report</h1><p class="muted">tcpdiag {_e(result.version, 32)} \u00b7 '
        f"{len(result.captures)} capture(s) \u00b7 {s.flows} flows \u00b7 {s.problem_flows} "
        f"with problems \u00b7 worst severity: {worst}</p>"
        '<p><input id="filter" type="search" placeholder="filter flows (address, state, '
        'verdict)" aria-label="filter flows"></p>'
        f"{body}</body></html>\n"
    )
