"""Capture-level rules: run once, after every flow of a capture has been diagnosed.

They need more than one flow, or records that are not TCP: ICMP errors quoting a connection's
packets, ARP requests nobody answers, "other connections to this server completed while these
SYNs went unanswered", and the capture-quality notes of the capture and decode stages.

`diagnose_capture` returns findings: those with `flow` set belong to that flow (a finding with
the same name on that flow is superseded by it, see `superseded_by`), the others are
capture-level. `attach` applies them to the flow results and returns the capture-level ones.
The rules only read the flows, each at most once, and only when the capture holds what they
look for (ICMP errors, unanswered ARP, unanswered SYNs): the flows may be a `FlowStore` that
reads each flow from a file. From a store, the SYN-drop rule reads only the flows it can
concern (see `_syn_drop_flows`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from tcpdiag.config import Thresholds
from tcpdiag.findings.context import (
    CaptureContext,
    fmt_duration,
    fmt_frames,
    plural,
)
from tcpdiag.findings.registry import make_finding
from tcpdiag.findings.verdict import verdict
from tcpdiag.model import FLOW_BUCKETS, IcmpError, format_endpoint, format_ip
from tcpdiag.result import Finding, FlowResult
from tcpdiag.store import FlowStore, flow_facts

# ICMP errors kept apart from connection rejection: they report a path MTU, not a refusal.
_PMTU = {(4, 3, 4), (6, 2, 0)}

# (ip_version, type, code) -> (words, errno the client's socket gets on Linux)
_ICMP4_UNREACH = {
    0: ("network unreachable", "ENETUNREACH"),
    1: ("host unreachable", "EHOSTUNREACH"),
    2: ("protocol unreachable", "ENOPROTOOPT"),
    3: ("port unreachable", "ECONNREFUSED"),
    4: ("fragmentation needed", "EMSGSIZE"),
    5: ("source route failed", "EOPNOTSUPP"),
    6: ("destination network unknown", "ENETUNREACH"),
    7: ("destination host unknown", "EHOSTDOWN"),
    8: ("source host isolated", "ENONET"),
    9: ("network administratively prohibited", "ENETUNREACH"),
    10: ("host administratively prohibited", "EHOSTUNREACH"),
    11: ("network unreachable for the type of service", "ENETUNREACH"),
    12: ("host unreachable for the type of service", "EHOSTUNREACH"),
    13: ("communication administratively prohibited", "EHOSTUNREACH"),
    14: ("host precedence violation", "EHOSTUNREACH"),
    15: ("precedence cutoff in effect", "EHOSTUNREACH"),
}
_ICMP6_UNREACH = {
    0: ("no route to destination", "ENETUNREACH"),
    1: ("communication with destination administratively prohibited", "EACCES"),
    2: ("beyond scope of source address", "EHOSTUNREACH"),
    3: ("address unreachable", "EHOSTUNREACH"),
    4: ("port unreachable", "ECONNREFUSED"),
    5: ("source address failed ingress/egress policy", "EACCES"),
    6: ("reject route to destination", "EACCES"),
}

# How long around a flow an ICMP error may come and still be about it.
_ICMP_SLACK_BEFORE = 1.0
_ICMP_SLACK_AFTER = 10.0
# "Completed meanwhile" for the SYN-drop context: other handshakes starting this close to the
# unanswered SYNs' span.
_MEANWHILE_SLACK = 1.0
# Capture-level ICMP findings for errors that match no flow, at most.
_MAX_UNMATCHED_ICMP = 20


def icmp_words(err: IcmpError) -> tuple[str, str]:
    """('destination unreachable, port unreachable (type 3 code 3)', 'ECONNREFUSED')."""
    t, c = err.icmp_type, err.icmp_code
    label = "ICMPv6" if err.ip_version == 6 else "ICMP"
    if err.ip_version == 6:
        if t == 1:
            words, errno = _ICMP6_UNREACH.get(c, (f"code {c}", "EHOSTUNREACH"))
            kind = f"destination unreachable, {words}"
        elif t == 3:
            kind, errno = "time exceeded (hop limit)" if c == 0 else "time exceeded", "EHOSTUNREACH"
        elif t == 2:
            kind, errno = "packet too big", "EMSGSIZE"
        elif t == 4:
            kind, errno = "parameter problem", "EPROTO"
        else:
            kind, errno = f"error type {t}", "EHOSTUNREACH"
    else:
        if t == 3:
            words, errno = _ICMP4_UNREACH.get(c, (f"code {c}", "EHOSTUNREACH"))
            kind = f"destination unreachable, {words}"
        elif t == 11:
            kind, errno = "time exceeded (TTL)" if c == 0 else "time exceeded", "EHOSTUNREACH"
        elif t == 12:
            kind, errno = "parameter problem", "EPROTO"
        else:
            kind, errno = f"error type {t}", "EHOSTUNREACH"
    return f"{label} {kind} (type {t} code {c})", errno


def _server_ip(flow: FlowResult) -> str:
    return flow.server.rsplit(":", 1)[0].strip("[]")


# -- icmp-unreachable (set-up: "SYNs answered by ICMP ... unreachable") ------------


def _icmp_unreachable(flows: Iterable[FlowResult], ctx: CaptureContext) -> list[Finding]:
    if not ctx.icmp:
        return []
    by_pair: dict[tuple[str, str], list[IcmpError]] = {}
    for (src, sport, dst, dport), errs in ctx.icmp.items():
        by_pair[(format_endpoint(src, sport), format_endpoint(dst, dport))] = errs
    out: list[Finding] = []
    matched: set[tuple[str, str]] = set()
    for flow in flows:
        key = (flow.client, flow.server)
        errs = [
            e
            for e in by_pair.get(key, ())
            if (e.ip_version, e.icmp_type, e.icmp_code) not in _PMTU
            and flow.start - _ICMP_SLACK_BEFORE <= e.time <= flow.end + _ICMP_SLACK_AFTER
        ]
        if not errs:
            continue
        matched.add(key)
        out.append(_icmp_finding(flow, errs))
    for key, errs in by_pair.items():
        if key in matched or len(out) >= _MAX_UNMATCHED_ICMP + len(matched):
            continue
        errs = [e for e in errs if (e.ip_version, e.icmp_type, e.icmp_code) not in _PMTU]
        if not errs:
            continue
        first = errs[0]
        kind, errno = icmp_words(first)
        sender = format_ip(first.sender)
        out.append(
            make_finding(
                "icmp-unreachable",
                f"{sender} sent {plural(len(errs), 'ICMP error')} about a TCP packet from "
                f"{key[0]} to {key[1]} that is not in the capture: {kind} — a connection "
                f"to {key[1]} was rejected on the way (the client gets {errno})",
                frames=[e.frame for e in errs],
                time=first.time,
            )
        )
    return out


def _icmp_finding(flow: FlowResult, errs: list[IcmpError]) -> Finding:
    first = errs[0]
    kind, errno = icmp_words(first)
    sender = format_ip(first.sender)
    server_ip = _server_ip(flow)
    who = "the server itself" if sender == server_ip else "a router or firewall on the path"
    hs = flow.handshake
    if hs.syn and not hs.syn_ack:
        what = f"the {plural(len(hs.syn_frames) or 1, 'SYN')} to {flow.server}"
        prior = [t for t in hs.syn_times if t <= first.time]
        delay = f", {fmt_duration(first.time - prior[-1])} after the SYN" if prior else ""
        verb = "were" if len(hs.syn_frames) > 1 else "was"
        message = (
            f"{what} {verb} rejected by {sender} ({who}): {kind}{delay} "
            f"({fmt_frames(e.frame for e in errs)}) — "
            + (
                "a firewall rejects the connection"
                if "prohibited" in kind or "policy" in kind
                else "the destination cannot be reached"
            )
            + f" (the client's connect() fails with {errno})"
        )
        frames = [*hs.syn_frames, *(e.frame for e in errs)]
    else:
        message = (
            f"{sender} ({who}) answered a packet of {flow.client} → {flow.server} with "
            f"{kind} ({fmt_frames(e.frame for e in errs)}) — the path to the server broke "
            f"during the connection (the client's socket reports {errno})"
        )
        frames = [e.frame for e in errs]
    if len(errs) > 1:
        message += f"; {len(errs)} such errors in all"
    return make_finding("icmp-unreachable", message, frames=frames, time=first.time, flow=flow.id)


# -- syn-unanswered, with context ("SYNs unanswered while other connections to the
#    same server:port completed around the same time") -------------------------------------------


def _syn_drop_context(flows: Sequence[FlowResult], ctx: CaptureContext) -> list[Finding]:
    if "syn-unanswered" not in flow_facts(flows)[1]:
        return []
    # Completed handshakes per server, by SYN/ACK time: each unanswered flow then looks up its
    # time window with a binary search (a capture of 100k flows must not cost 100k x 100k).
    completed: dict[str, list[tuple[float, int]]] = {}
    if isinstance(flows, FlowStore):
        flows = _syn_drop_flows(flows, ctx, completed)
    unanswered: list[tuple[int, str, float, float, Finding]] = []
    for f in flows:
        if f.handshake.syn_ack:
            when = ctx.synack_time.get(f.id, f.start)
            completed.setdefault(f.server, []).append((when, f.id))
        original = next((x for x in f.findings if x.name == "syn-unanswered"), None)
        if original is not None:
            unanswered.append((f.id, f.server, f.start, f.end, original))
    for entries in completed.values():
        entries.sort()
    out: list[Finding] = []
    for flow_id, server, start, end, original in unanswered:
        entries = completed.get(server, [])
        lo = bisect.bisect_left(entries, start - _MEANWHILE_SLACK, key=lambda e: e[0])
        hi = bisect.bisect_right(entries, end + _MEANWHILE_SLACK, key=lambda e: e[0])
        others = sorted(e[1] for e in entries[lo:hi] if e[1] != flow_id)
        if not others:
            continue
        head = original.message.split(" — ", 1)[0]
        ids = ", ".join(str(i) for i in others[:8]) + (", …" if len(others) > 8 else "")
        message = (
            f"{head}; meanwhile {plural(len(others), 'other connection')} to {server} "
            f"completed the handshake (flow{'s' if len(others) > 1 else ''} {ids}) — the "
            "server is up but dropping SYNs: its accept queue is likely full (the "
            "application does not call accept() fast enough, or its listen backlog is too "
            "small), or SYN flood protection is dropping them"
        )
        out.append(
            make_finding(
                "syn-unanswered",
                message,
                frames=original.frames,
                time=original.time,
                flow=flow_id,
                count=original.count,
                severity=original.severity,
            )
        )
    return out


def _syn_drop_flows(
    store: FlowStore, ctx: CaptureContext, completed: dict[str, list[tuple[float, int]]]
) -> list[FlowResult]:
    """What `_syn_drop_context` needs of a store, reading as few flows as it can: the flows
    with syn-unanswered are read (their findings are needed); the handshakes that other flows
    to the same servers completed within an unanswered flow's window go into `completed` from
    the store's facts and the context's SYN/ACK times, unread. The rare completed flow without
    a SYN/ACK time is read: the rule falls back on its start. The findings are the same as
    from every flow read."""
    unanswered = list(store.with_finding("syn-unanswered"))
    windows: dict[str, list[tuple[float, float]]] = {}
    for f in unanswered:
        window = (f.start - _MEANWHILE_SLACK, f.end + _MEANWHILE_SLACK)
        windows.setdefault(f.server, []).append(window)
    spans = {server: _merged_spans(each) for server, each in windows.items()}
    already = {f.id for f in unanswered}
    unread: list[int] = []
    for position, flow_id, server in store.handshake_servers():
        span = spans.get(server)
        if span is None or flow_id in already:
            continue
        when = ctx.synack_time.get(flow_id)
        if when is None:
            unread.append(position)
        elif _within(when, span):
            completed.setdefault(server, []).append((when, flow_id))
    return unanswered + list(store.view(unread))


def _merged_spans(windows: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """The union of time windows as disjoint spans, sorted: (starts, ends)."""
    starts: list[float] = []
    ends: list[float] = []
    for lo, hi in sorted(windows):
        if ends and lo <= ends[-1]:
            ends[-1] = max(ends[-1], hi)
        else:
            starts.append(lo)
            ends.append(hi)
    return starts, ends


def _within(when: float, spans: tuple[list[float], list[float]]) -> bool:
    starts, ends = spans
    i = bisect.bisect_right(starts, when) - 1
    return i >= 0 and when <= ends[i]


# -- arp-unanswered ("ARP who-has for an address, repeated, never answered") -------


def _arp_unanswered(
    flows: Iterable[FlowResult], ctx: CaptureContext, thresholds: Thresholds
) -> list[Finding]:
    out: list[Finding] = []
    targets = [
        (target, t)
        for target, t in ctx.arp.items()
        if not t.replied and t.requests >= thresholds.arp_min_requests
    ]
    if not targets:
        return out
    by_server_ip: dict[str, list[int]] = {}
    for f in flows:
        by_server_ip.setdefault(_server_ip(f), []).append(f.id)
    for target, t in targets:
        ip = format_ip(target)
        who = ", ".join(sorted(format_ip(r) for r in t.requesters)) or "?"
        tcp_flows = by_server_ip.get(ip, [])
        if tcp_flows:
            tail = (
                f"; {plural(len(tcp_flows), 'TCP connection')} to it "
                f"(flow {', '.join(str(i) for i in tcp_flows[:8])}) got no answer"
            )
        else:
            tail = (
                "; no TCP packet to it could be sent, so a capture filtered to TCP would show "
                "nothing at all"
            )
        out.append(
            make_finding(
                "arp-unanswered",
                f"{plural(t.requests, 'ARP request')} for {ip} from {who} over "
                f"{fmt_duration(t.last_time - t.first_time)} ({fmt_frames(t.request_frames)}), "
                f"never answered — {ip} is down or not on this link{tail}",
                frames=t.request_frames,
                time=t.first_time,
                count=t.requests,
            )
        )
    return out


# -- capture quality (Capture problems; hostile inputs) ---------------------------


def _flow_linger_limit(ctx: CaptureContext) -> Finding:
    count = ctx.late_after_early_close
    limit = ctx.max_closed_flows or 0
    share = -(-limit // FLOW_BUCKETS) or 1
    return make_finding(
        "flow-linger-limit",
        f"{plural(count, 'connection')} sent packets after being finalised early: too many "
        f"closed connections were waiting out their linger for late packets (--max-closed-flows "
        f"{limit:,}: at most {share:,} in each of the {FLOW_BUCKETS} groups of connections by "
        "4-tuple), so the oldest were finalised first; each late packet started a new flow, "
        "analysed as if the capture had begun mid-connection",
        frames=tuple(ctx.late_after_early_close_frames),
        count=count,
    )


def _capture_notes(ctx: CaptureContext) -> list[Finding]:
    out = [make_finding(n.name, n.message, frames=n.frames, count=n.count) for n in ctx.notes]
    if ctx.evicted_flows:
        limit = f" ({ctx.max_flows:,} flows)" if ctx.max_flows else ""
        out.append(
            make_finding(
                "flow-table-full",
                f"the flow table was full{limit}: {plural(ctx.evicted_flows, 'flow')} were "
                "finalised early (half-open ones first); their findings may be incomplete",
                frames=(),
                count=ctx.evicted_flows,
            )
        )
    if ctx.late_after_early_close:
        out.append(_flow_linger_limit(ctx))
    if ctx.icmp_dropped:
        out.append(
            make_finding(
                "capture-truncated-packets",
                f"{plural(ctx.icmp_dropped, 'ICMP error')} beyond the memory cap were not "
                "correlated with connections",
                frames=(),
                count=ctx.icmp_dropped,
            )
        )
    return out


def diagnose_capture(
    flows: Sequence[FlowResult],
    ctx: CaptureContext,
    thresholds: Thresholds,
    stats: object | None = None,
) -> list[tuple[int | None, Finding]]:
    """Cross-flow and capture-level findings, as (flow id or None, finding) pairs.

    Run after every flow has its own findings. `stats` is the decoder's `DecodeStats` (its
    capture-quality counters become findings). A flow finding returned here supersedes those
    already on that flow named by `superseded_by` (the same name, e.g. syn-unanswered with the
    "server up" context, or syn-unanswered replaced by icmp-unreachable): the caller removes
    them, then appends what is returned (`attach` does both). The flows are not modified.
    """
    if stats is not None:
        ctx.add_decode_stats(stats)
    out: list[Finding] = []
    out += _icmp_unreachable(flows, ctx)
    out += _syn_drop_context(flows, ctx)
    out += _arp_unanswered(flows, ctx, thresholds)
    out += _capture_notes(ctx)
    out.sort(key=lambda f: (f.flow or 0, *f.sort_key()))
    return [(f.flow, f) for f in out]


# A flow finding that makes another one on the same flow redundant.
_SUPERSEDES = {"icmp-unreachable": ("syn-unanswered",)}


def superseded_by(finding: Finding) -> set[str]:
    """Names of a flow's own findings that this capture-level finding for it replaces."""
    return {finding.name, *_SUPERSEDES.get(finding.name, ())}


def attach(flows: Iterable[FlowResult], pairs: list[tuple[int | None, Finding]]) -> list[Finding]:
    """Convenience for callers without their own plumbing: append the flow findings of
    `diagnose_capture` to their flows, refresh those flows' verdicts, and return the
    capture-level findings."""
    by_id = {f.id: f for f in flows}
    capture_level: list[Finding] = []
    changed: set[int] = set()
    for flow_id, finding in pairs:  # first remove what the new findings replace...
        flow = by_id.get(flow_id) if flow_id is not None else None
        if flow is not None:
            drop = superseded_by(finding)
            flow.findings = [x for x in flow.findings if x.name not in drop]
    for flow_id, finding in pairs:  # ...then add them
        flow = by_id.get(flow_id) if flow_id is not None else None
        if flow is None:
            capture_level.append(finding)
            continue
        flow.findings.append(finding)
        flow.findings.sort(key=Finding.sort_key)
        changed.add(flow.id)
    for fid in changed:
        by_id[fid].verdict = verdict(by_id[fid])
    return sorted(capture_level, key=Finding.sort_key)
