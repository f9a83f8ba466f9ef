"""Helpers shared by the CI-shaped renderers (SARIF, JUnit, GitHub annotations)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from tcpdiag.findings.policy import EXPECTATION_FAILED, known_finding_names
from tcpdiag.result import AnalysisResult, CaptureResult, Finding, FlowResult, Severity
from tcpdiag.store import flows_without_timelines


@dataclass(frozen=True, slots=True)
class RuleInfo:
    name: str
    severity: Severity
    title: str
    description: str
    help_text: str


def rule_catalog() -> list[RuleInfo]:
    """Every finding name with its default severity and docs, from the registry when it can be
    imported (the contract's names otherwise), plus `expectation-failed`."""
    from tcpdiag.findings.docs import text as unwrap
    from tcpdiag.findings.registry import REGISTRY

    out: list[RuleInfo] = []
    for name in known_finding_names():
        spec = REGISTRY.get(name)
        if spec is not None:
            help_text = "\n\n".join(
                f"{title}\n{unwrap(body)}" for title, body in spec.sections() if body
            )
            out.append(
                RuleInfo(name, spec.severity, spec.title, unwrap(spec.what_it_means), help_text)
            )
        elif name == EXPECTATION_FAILED:
            text = "A check expectation from the tcpdiag configuration did not hold."
            out.append(RuleInfo(name, Severity.ERROR, "Expectation failed", text, text))
        else:
            out.append(RuleInfo(name, Severity.WARNING, name, name, f"tcpdiag explain {name}"))
    return out


def iter_findings(
    result: AnalysisResult,
) -> Iterator[tuple[CaptureResult, FlowResult | None, Finding]]:
    """Every finding with its capture and flow, in report order (capture findings first); the
    flows read without their timelines, which these reports do not show."""
    for cap in result.captures:
        for f in cap.findings:
            yield cap, None, f
        for flow in flows_without_timelines(cap.flows):
            for f in flow.findings:
                yield cap, flow, f


def where(flow: FlowResult | None, finding: Finding) -> str:
    """'flow 2 (a -> b), frame 12' style location text (no packet-derived strings beyond the
    addresses tcpdiag itself formatted)."""
    parts: list[str] = []
    if flow is not None:
        parts.append(f"flow {flow.id} ({flow.client} -> {flow.server})")
    elif finding.flow is not None:
        parts.append(f"flow {finding.flow}")
    if finding.frames:
        frames = ", ".join(map(str, finding.frames[:10]))
        more = f" (+{len(finding.frames) - 10} more)" if len(finding.frames) > 10 else ""
        parts.append(f"frame{'s' if len(finding.frames) > 1 else ''} {frames}{more}")
    return ", ".join(parts)


def repo_path(path: str) -> str:
    """An absolute capture path under the current directory made relative to it: CI systems
    (GitHub code scanning and annotations) resolve file locations against the checkout, which
    is where CI runs. Other paths are returned unchanged."""
    if path == "-" or not os.path.isabs(path):
        return path
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel
