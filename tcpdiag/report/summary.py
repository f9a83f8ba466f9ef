"""The summary object of every report: flows, problem flows, findings by name, worst severity."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tcpdiag.result import AnalysisResult, CaptureResult, Severity
from tcpdiag.store import flow_facts


@dataclass(slots=True)
class Summary:
    flows: int = 0
    problem_flows: int = 0
    findings: dict[str, int] = field(default_factory=dict)
    max_severity: Severity | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "flows": self.flows,
            "problem_flows": self.problem_flows,
            "findings": dict(sorted(self.findings.items())),
            "max_severity": self.max_severity.label if self.max_severity else None,
        }


def summarize_captures(captures: list[CaptureResult]) -> Summary:
    counts: Counter[str] = Counter()
    flows = problems = 0
    worst: Severity | None = None
    for cap in captures:
        flows += len(cap.flows) + cap.flows_released
        # one look at every flow at most (a `FlowStore` answers without reading its flows)
        flow_problems, names, flow_worst = flow_facts(cap.flows)
        problems += flow_problems
        counts.update(names)
        counts.update(cap.released_findings)
        if flow_worst is not None and (worst is None or flow_worst > worst):
            worst = flow_worst
        for finding in cap.findings:
            counts[finding.name] += 1
            if worst is None or finding.severity > worst:
                worst = finding.severity
    return Summary(flows, problems, dict(sorted(counts.items())), worst)


def summarize(result: AnalysisResult) -> Summary:
    return summarize_captures(result.captures)
