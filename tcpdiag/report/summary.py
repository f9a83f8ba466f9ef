"""The summary object of every report: flows, problem flows, findings by name, worst severity."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tcpdiag.report.options import is_problem
from tcpdiag.result import AnalysisResult, CaptureResult, Severity


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
        problems += sum(1 for f in cap.flows if is_problem(f))
        counts.update(cap.released_findings)
        for finding in cap.all_findings():
            counts[finding.name] += 1
            if worst is None or finding.severity > worst:
                worst = finding.severity
    return Summary(flows, problems, dict(sorted(counts.items())), worst)


def summarize(result: AnalysisResult) -> Summary:
    return summarize_captures(result.captures)
