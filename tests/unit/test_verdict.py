"""`verdict.main_finding`: the finding a flow's verdict names, against its definition (the least
by severity, highest first, then `RANK`, then report order, among the findings that are not
about the capture's quality); and `Severity.label`."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag.findings.registry import REGISTRY, is_capture_quality
from tcpdiag.findings.verdict import _RANK, RANK, main_finding
from tcpdiag.result import Finding, Severity, new_finding
from tests.unit.report_fixtures import refused_flow

NAMES = sorted(REGISTRY)
FINDINGS = st.builds(
    lambda name, severity, frames: new_finding(
        name, severity, "m", tuple(sorted(set(frames))), None, 1, 1
    ),
    st.sampled_from(NAMES),
    st.sampled_from(list(Severity)),
    st.lists(st.integers(1, 50), max_size=3),
)


def _by_definition(findings: list[Finding]) -> Finding | None:
    candidates = [f for f in findings if not is_capture_quality(f.name)]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda f: (-int(f.severity), _RANK.get(f.name, len(RANK)), *f.sort_key()),
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(FINDINGS, max_size=5))
def test_the_main_finding_is_the_most_important_one(findings: list[Finding]) -> None:
    flow = refused_flow()
    flow.findings = findings
    assert main_finding(flow) is _by_definition(findings)


def test_capture_quality_findings_are_never_the_main_one() -> None:
    quality = [n for n in NAMES if is_capture_quality(n)]
    assert quality
    flow = refused_flow()
    flow.findings = [new_finding(quality[0], Severity.ERROR, "m", (1,), None, 1, 1)]
    assert main_finding(flow) is None


def test_severity_labels_are_the_lowercase_names() -> None:
    assert [s.label for s in Severity] == ["info", "warning", "error"]
    assert all(s.label == s.name.lower() for s in Severity)
