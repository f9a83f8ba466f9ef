"""SARIF 2.1.0, as GitHub code scanning accepts it.

`tool.driver.rules` lists every finding name (the registry's, with its docs as help), so a
result's `ruleId`/`ruleIndex` always resolve. Each result points at the capture file (a binary
artifact: there are no lines, so the region is line 1 and the frames go in the message, a
logical location `frame N`, and `properties`). Levels: error -> error, warning -> warning,
info -> note. A `partialFingerprints` entry keeps a finding's identity stable across runs so
code scanning does not reopen the same alert.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any
from urllib.parse import quote

from tcpdiag.report._common import iter_findings, repo_path, rule_catalog, where
from tcpdiag.report.json import dumps_outline
from tcpdiag.report.options import ReportOptions
from tcpdiag.result import AnalysisResult, Severity
from tcpdiag.sanitize import clean, no_surrogates

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def artifact_uri(path: str) -> str:
    """A URI reference for a capture path: relative paths (and absolute ones under the current
    directory) are relative URIs, which GitHub resolves against the repository; other absolute
    paths become file:// URIs; stdin is 'stdin'."""
    if path == "-":
        return "stdin"
    path = repo_path(path)
    posix = no_surrogates(path).replace(os.sep, "/")
    if os.path.isabs(path):
        return "file://" + quote(posix, safe="/")
    return quote(posix.removeprefix("./"), safe="/")


def _rules() -> tuple[list[dict[str, Any]], dict[str, int]]:
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for i, info in enumerate(rule_catalog()):
        index[info.name] = i
        rules.append(
            {
                "id": info.name,
                "name": "".join(part.capitalize() for part in info.name.split("-")),
                "shortDescription": {"text": info.title},
                "fullDescription": {"text": info.description},
                "help": {"text": info.help_text},
                "defaultConfiguration": {"level": LEVELS[info.severity]},
                "properties": {"tags": ["network", "tcpdiag"]},
            }
        )
    return rules, index


def render_sarif(result: AnalysisResult, options: ReportOptions) -> str:
    rules, index = _rules()
    results: list[dict[str, Any]] = []
    artifacts: dict[str, int] = {}
    for cap, flow, finding in iter_findings(result):
        uri = artifact_uri(cap.path)
        if uri not in artifacts:
            artifacts[uri] = len(artifacts)
        text = clean(finding.message, max_len=2000)
        loc = where(flow, finding)
        logical = [{"name": f"frame {n}", "kind": "element"} for n in finding.frames[:1]]
        if flow is not None:
            logical.append({"name": f"flow {flow.id}", "kind": "object"})
        identity = "|".join(
            [
                finding.name,
                uri,
                flow.client if flow else "",
                flow.server if flow else "",
                ",".join(map(str, finding.frames[:20])),
            ]
        )
        props: dict[str, Any] = {"frames": list(finding.frames), "count": finding.count}
        if flow is not None:
            props["flow"] = flow.id
            props["client"] = flow.client
            props["server"] = flow.server
        results.append(
            {
                "ruleId": finding.name,
                "ruleIndex": index.get(finding.name, -1),
                "level": LEVELS[finding.severity],
                "message": {"text": f"{text} [{loc}]" if loc else text},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": uri, "index": artifacts[uri]},
                            "region": {"startLine": 1},
                        },
                        "logicalLocations": logical,
                    }
                ],
                "partialFingerprints": {
                    "tcpdiagFinding/v1": hashlib.sha256(
                        no_surrogates(identity).encode("utf-8")
                    ).hexdigest()
                },
                "properties": props,
            }
        )
    # A finding the catalog does not know (a rule added without docs) still gets a rule, so
    # every ruleId resolves.
    for res in results:
        if res["ruleIndex"] < 0:
            name = res["ruleId"]
            index[name] = len(rules)
            rules.append(
                {
                    "id": name,
                    "shortDescription": {"text": name},
                    "defaultConfiguration": {"level": res["level"]},
                }
            )
            res["ruleIndex"] = index[name]
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "tcpdiag",
                        "version": result.version,
                        "semanticVersion": result.version,
                        "rules": rules,
                    }
                },
                "artifacts": [{"location": {"uri": uri}} for uri in artifacts],
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
    return dumps_outline(doc, depth=6) + "\n"
