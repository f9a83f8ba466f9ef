"""Helpers for the rule tests: run a `tests.craft.Conversation` through the real FlowTable and
the rules, the way the engine does (per-flow rules at close, capture-level rules at the end)."""

from __future__ import annotations

from tcpdiag.config import Thresholds
from tcpdiag.findings import capture_rules, tcp_rules
from tcpdiag.findings.context import CaptureContext
from tcpdiag.findings.verdict import verdict
from tcpdiag.result import Finding, FlowResult
from tests.craft import Conversation

CLIENT = "10.0.0.1:40000"
SERVER = "10.0.0.2:80"


def diagnose(
    conv: Conversation, thresholds: Thresholds | None = None, now: float | None = None
) -> list[Finding]:
    """Every TCP finding of every flow of the conversation."""
    th = thresholds or Thresholds()
    out: list[Finding] = []
    for flow in conv.run():
        out.extend(tcp_rules.diagnose(flow, th, now=now))
    return out


def flow_results(
    *convs: Conversation, ctx: CaptureContext, thresholds: Thresholds
) -> list[FlowResult]:
    """Flow results with their own findings and verdicts, before the capture-level rules, of
    several conversations merged in time order as one capture (`ctx` gets their facts)."""
    segments = sorted((s for c in convs for s in c.segments), key=lambda s: (s.time, s.frame))
    flows = convs[0].run(segments=segments)
    out: list[FlowResult] = []
    for flow in flows:
        r = flow.to_result()
        r.findings = tcp_rules.diagnose(flow, thresholds)
        ctx.add_flow(flow, r)
        out.append(r)
    for r in out:
        r.verdict = verdict(r)
    return out


def results(
    *convs: Conversation,
    ctx: CaptureContext | None = None,
    thresholds: Thresholds | None = None,
) -> tuple[list[FlowResult], list[Finding]]:
    """Flow results (findings and verdicts filled in, capture-level rules applied) of several
    conversations merged in time order as one capture, and the capture-level findings."""
    th = thresholds or Thresholds()
    ctx = ctx or CaptureContext()
    out = flow_results(*convs, ctx=ctx, thresholds=th)
    pairs = capture_rules.diagnose_capture(out, ctx, th)
    return out, capture_rules.attach(out, pairs)


def names(findings: list[Finding]) -> set[str]:
    return {f.name for f in findings}


def only(findings: list[Finding], name: str) -> Finding:
    hits = [f for f in findings if f.name == name]
    assert len(hits) == 1, (name, findings)
    return hits[0]
