"""JUnit XML for CI test reports: one testsuite per capture, a testcase for the capture
itself (capture-level findings) and one per problem flow. A testcase fails when it has a finding
at or above the check threshold; findings below it are listed in `system-out`.

Valid XML whatever the capture held: every string goes through `sanitize.xml_text` (characters
XML 1.0 forbids, lone surrogates and other controls are shown as escapes) and ElementTree does
the `<&>"` escaping, so `]]>` or a NUL in an SNI cannot break the document.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tcpdiag.report._common import where
from tcpdiag.report.options import ReportOptions, flow_matches, is_problem, without_timelines
from tcpdiag.result import AnalysisResult, CaptureResult, Finding, FlowResult, Severity
from tcpdiag.sanitize import clean, xml_text


def _x(value: object) -> str:
    """Element text: newlines kept."""
    return xml_text(value, max_len=4000)


def _a(value: object) -> str:
    """Attribute values: one line (every control shown as an escape)."""
    return xml_text(clean(value, max_len=1000))


def _testcase(
    suite: ET.Element,
    classname: str,
    name: str,
    findings: list[Finding],
    flow: FlowResult | None,
    threshold: Severity,
    duration: float,
) -> bool:
    case = ET.SubElement(
        suite, "testcase", classname=_a(classname), name=_a(name), time=f"{max(0.0, duration):.6f}"
    )
    failing = [f for f in findings if f.severity >= threshold]
    lines = [f"{f.severity.label} {f.name}: {f.message} [{where(flow, f)}]" for f in findings]
    if failing:
        first = failing[0]
        failure = ET.SubElement(
            case, "failure", message=_a(f"{first.name}: {first.message}"), type=_a(first.name)
        )
        failure.text = _x(
            "\n".join(
                line for f, line in zip(findings, lines, strict=True) if f.severity >= threshold
            )
        )
    if lines:
        out = ET.SubElement(case, "system-out")
        text = "\n".join(lines)
        if flow is not None and flow.verdict:
            text = f"verdict: {flow.verdict}\n{text}"
        out.text = _x(text)
    return bool(failing)


def _suite(root: ET.Element, cap: CaptureResult, options: ReportOptions) -> tuple[int, int]:
    threshold = options.threshold(cap.path)
    suite = ET.SubElement(root, "testsuite", name=_a(cap.path))
    duration = 0.0
    if cap.first_time is not None and cap.last_time is not None:
        duration = cap.last_time - cap.first_time
    tests = 1
    failures = int(_testcase(suite, cap.path, "capture", cap.findings, None, threshold, duration))
    for flow in without_timelines(cap.flows):  # (a test case shows no timeline)
        if not flow_matches(flow, options):
            continue
        if not is_problem(flow) and not any(f.severity >= threshold for f in flow.findings):
            continue
        tests += 1
        name = f"flow {flow.id} {flow.client} -> {flow.server}"
        failures += _testcase(suite, cap.path, name, flow.findings, flow, threshold, flow.duration)
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    suite.set("time", f"{max(0.0, duration):.6f}")
    return tests, failures


def render_junit(result: AnalysisResult, options: ReportOptions) -> str:
    root = ET.Element("testsuites", name="tcpdiag")
    tests = failures = 0
    for cap in result.captures:
        t, f = _suite(root, cap, options)
        tests += t
        failures += f
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    root.set("errors", "0")
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
