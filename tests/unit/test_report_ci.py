"""CI-shaped outputs: SARIF 2.1.0, JUnit XML, GitHub annotations — strict parsers, hostile input."""

from __future__ import annotations

import json
import os
import re
import xml.dom.minidom
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from report_fixtures import hostile_result, seed_result

from tcpdiag.findings.registry import REGISTRY
from tcpdiag.report.github import render_github
from tcpdiag.report.junit import render_junit
from tcpdiag.report.options import ReportOptions
from tcpdiag.report.sarif import artifact_uri, render_sarif
from tcpdiag.result import AnalysisResult, Severity

OPTS = ReportOptions()


def _strict_json(text: str) -> Any:
    def bad(name: str) -> None:
        raise ValueError(name)

    return json.loads(text, parse_constant=bad)


def _check_sarif(doc: dict[str, Any]) -> None:
    """The structure SARIF 2.1.0 requires and GitHub code scanning reads."""
    assert doc["version"] == "2.1.0"
    assert doc["$schema"].endswith("sarif-2.1.0.json")
    assert len(doc["runs"]) == 1
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "tcpdiag"
    ids = [r["id"] for r in driver["rules"]]
    assert len(ids) == len(set(ids))
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in {"error", "warning", "note"}
    for res in run["results"]:
        assert res["ruleId"] in ids
        assert driver["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in {"error", "warning", "note"}
        assert res["message"]["text"]
        loc = res["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"]
        assert loc["region"]["startLine"] >= 1
        assert re.fullmatch(r"[0-9a-f]{64}", res["partialFingerprints"]["tcpdiagFinding/v1"])


def test_sarif_structure_and_rules_cover_the_registry() -> None:
    doc = _strict_json(render_sarif(seed_result(), OPTS))
    _check_sarif(doc)
    rules = {r["id"]: r for r in doc["runs"][0]["tool"]["driver"]["rules"]}
    assert set(REGISTRY) | {"expectation-failed"} == set(rules)
    assert rules["tls-alert"]["shortDescription"]["text"] == REGISTRY["tls-alert"].title
    assert "What it means" in rules["tls-alert"]["help"]["text"]
    assert rules["connection-refused"]["defaultConfiguration"]["level"] == "error"


def test_sarif_results() -> None:
    results = _strict_json(render_sarif(seed_result(), OPTS))["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == [
        "capture-snaplen-truncated",
        "connection-refused",
        "tls-flight-incomplete",
        "tls-alert",
        "reset-mid-stream",
        "retransmission",
    ]
    assert [r["level"] for r in results] == ["note", "error", "error", "error", "error", "note"]
    alert = results[3]
    assert alert["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "captures/seed-tls.pcap"
    )
    assert alert["locations"][0]["logicalLocations"][0]["name"] == "frame 13"
    assert alert["properties"] == {
        "frames": [13],
        "count": 1,
        "flow": 2,
        "client": "192.168.1.10:40512",
        "server": "93.184.216.34:443",
    }
    assert alert["message"]["text"].endswith(
        "[flow 2 (192.168.1.10:40512 -> 93.184.216.34:443), frame 13]"
    )
    fingerprints = [r["partialFingerprints"]["tcpdiagFinding/v1"] for r in results]
    assert len(set(fingerprints)) == len(fingerprints)


def test_sarif_hostile_is_valid() -> None:
    text = render_sarif(hostile_result(), OPTS)
    assert text.isascii()
    doc = _strict_json(text)
    _check_sarif(doc)
    for res in doc["runs"][0]["results"]:
        assert "\x1b" not in res["message"]["text"]


def test_artifact_uri() -> None:
    assert artifact_uri("captures/a b.pcap") == "captures/a%20b.pcap"
    assert artifact_uri("./x.pcap") == "x.pcap"
    assert artifact_uri("/nonexistent-root/x#1.pcap") == "file:///nonexistent-root/x%231.pcap"
    assert artifact_uri(os.path.join(os.getcwd(), "caps", "a.pcap")) == "caps/a.pcap"
    assert artifact_uri("-") == "stdin"


def test_junit_parses_and_counts() -> None:
    text = render_junit(seed_result(), OPTS)
    xml.dom.minidom.parseString(text.encode("utf-8"))
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures")) == ("3", "2")
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "captures/seed-tls.pcap"
    cases = suite.findall("testcase")
    # The capture itself, then each problem flow (flow 3 has only an info finding).
    assert [c.get("name") for c in cases] == [
        "capture",
        "flow 1 10.0.0.1:51000 -> 10.0.0.2:8080",
        "flow 2 192.168.1.10:40512 -> 93.184.216.34:443",
    ]
    assert cases[0].find("failure") is None  # info only: below the threshold
    failure = cases[2].find("failure")
    assert failure is not None and failure.get("type") == "tls-flight-incomplete"
    assert "tls-alert" in (failure.text or "")


def test_junit_threshold() -> None:
    # At info, flow 3 (one info finding) becomes a failing testcase, and so does the capture.
    root = ET.fromstring(render_junit(seed_result(), ReportOptions(fail_on=Severity.INFO)))
    assert (root.get("tests"), root.get("failures")) == ("4", "4")
    by_path = ReportOptions(fail_on_by_path={"captures/seed-tls.pcap": Severity.INFO})
    assert ET.fromstring(render_junit(seed_result(), by_path)).get("failures") == "4"
    other = ReportOptions(fail_on_by_path={"elsewhere.pcap": Severity.INFO})
    assert ET.fromstring(render_junit(seed_result(), other)).get("failures") == "2"


def test_junit_hostile_is_well_formed() -> None:
    text = render_junit(hostile_result(), OPTS)
    dom = xml.dom.minidom.parseString(text.encode("utf-8"))
    assert dom.documentElement is not None
    assert dom.documentElement.tagName == "testsuites"
    root = ET.fromstring(text)
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("name") == "captures/evil\\x1b]0;pwn\\x07\\x0a[bold]x.pcap"
    assert "]]>" in text.replace("]]&gt;", "]]>")  # present, escaped by the serializer
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", text)


def test_github_annotations() -> None:
    lines = render_github(seed_result(), OPTS).splitlines()
    assert len(lines) == 6
    assert lines[0].startswith("::notice file=captures/seed-tls.pcap,title=tcpdiag capture-")
    assert lines[3] == (
        "::error file=captures/seed-tls.pcap,title=tcpdiag tls-alert::server sent fatal alert "
        "unexpected_message (10) in frame 13, 21.4 ms after the client's Finished "
        "[flow 2 (192.168.1.10:40512 -> 93.184.216.34:443), frame 13]"
    )


def test_github_hostile_stays_one_line_per_finding() -> None:
    out = render_github(hostile_result(), OPTS)
    lines = out.splitlines()
    assert len(lines) == 4
    for line in lines:
        assert re.match(r"^::(error|warning|notice) file=[^:]*,title=tcpdiag [a-z-]+::", line)
        assert not re.search("[\x00-\x1f\x7f-\x9f]", line)
    # The capture path's ':' and ',' are escaped in the property.
    assert "file=captures/evil\\x1b]0;pwn\\x07\\x0a[bold]x.pcap," in lines[0]


@pytest.mark.parametrize("render", [render_sarif, render_junit, render_github])
def test_empty_result(render: Any) -> None:
    out = render(AnalysisResult("0.1.0", []), OPTS)
    assert isinstance(out, str)


def test_renderer_dispatch() -> None:
    from tcpdiag.report import FORMATS, renderer
    from tcpdiag.report.html import render_html

    assert renderer("html") is render_html
    assert renderer("sarif") is render_sarif
    for fmt in FORMATS:
        assert isinstance(renderer(fmt)(seed_result(), OPTS), str)
    with pytest.raises(KeyError):
        renderer("csv")
