"""The finding registry against the report contract, and the generated docs/findings.md."""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tcpdiag.findings import tcp_rules
from tcpdiag.findings.docs import CATEGORIES
from tcpdiag.findings.registry import (
    FAMILIES,
    FINDING_FIELDS,
    REGISTRY,
    UnknownFinding,
    make_finding,
    names,
    spec,
    suggest,
)
from tcpdiag.result import Finding, Severity

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_PATHS = (ROOT / "spec" / "report.md", ROOT.parent / "shared" / "spec" / "report.md")


def _contract() -> dict[str, str]:
    """name -> severity cell, from the Findings table of the report contract."""
    path = next((p for p in CONTRACT_PATHS if p.exists()), None)
    if path is None:
        pytest.skip("report contract not found")
    text = path.read_text(encoding="utf-8")
    table = text.split("## Findings", 1)[1].split("\n## ", 1)[0]
    out: dict[str, str] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("name", "") or set(cells[0]) <= {"-"}:
            continue
        for name in cells[0].split(","):
            out[name.strip()] = cells[1]
    assert len(out) > 30, "could not parse the contract's Findings table"
    return out


def test_names_unique_across_families() -> None:
    all_names = [s.name for _, specs in FAMILIES for s in specs]
    assert len(all_names) == len(set(all_names))
    assert sorted(names()) == sorted(REGISTRY)


def test_every_contract_name_is_registered_with_its_severity() -> None:
    for name, cell in _contract().items():
        assert name in REGISTRY, name
        default = cell.split()[0].split("(")[0]
        if name == "tls-alert":
            default = "error"  # "error when fatal, warning otherwise": the rule lowers it
        assert REGISTRY[name].severity.label == default, name
        changes = "(" in cell or " when " in cell or " otherwise" in cell
        if changes and "capture loss" not in cell:
            assert REGISTRY[name].severity_note, f"{name}: say when the severity changes"


def test_capture_quality_class() -> None:
    contract = _contract()
    for name, s in REGISTRY.items():
        if name.startswith("capture-"):
            assert s.capture_quality and s.category == "capture", name
        if name not in contract and name not in DIAGNOSES_BEYOND_CONTRACT:
            # names added beyond the contract are the capture-quality kind (bad-inputs.md)
            assert s.capture_quality, name


# Diagnoses added beyond the contract's table ("add more, never rename"), with why.
DIAGNOSES_BEYOND_CONTRACT = {
    # A RST that did not end the connection (before a SYN/ACK that still completed the
    # handshake, or followed by more data from the same address): a forged/injected reset.
    # Folding it into another reset finding would judge the wrong RST.
    "reset-ignored",
    # The reset that ended the connection was sent by a box on the path in an endpoint's name
    # (its TTL or IP ID says so): judging it as that endpoint's abort would blame the wrong
    # party.
    "reset-injected",
    # A ClientHello whose server_name breaks RFC 6066 (duplicates, control bytes, oversize):
    # evasion and log-injection attempts, or client bugs; a TLS diagnosis, not capture quality.
    "tls-sni-suspicious",
}


def test_diagnoses_beyond_the_contract_are_registered_and_documented() -> None:
    contract = _contract()
    for name in DIAGNOSES_BEYOND_CONTRACT:
        assert name in REGISTRY and name not in contract, name
        assert not REGISTRY[name].capture_quality, name


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_doc_section_is_filled(name: str) -> None:
    s = REGISTRY[name]
    assert s.category in CATEGORIES
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name)
    assert s.title and not s.title.endswith(".")
    for title, body in s.sections():
        assert body.strip(), f"{name}: empty {title}"
        assert "  " not in body.replace("\n  ", "\n"), f"{name}: unwrapped text in {title}"
    assert s.references
    assert "`" in s.how_to_confirm, f"{name}: give a Wireshark filter or command"
    assert name in s.example


def test_spec_and_suggestions() -> None:
    assert spec("connection-refused").severity is Severity.ERROR
    with pytest.raises(UnknownFinding) as err:
        spec("conection-refused")
    assert "connection-refused" in err.value.suggestions
    assert "did you mean" in str(err.value)
    assert suggest("close_wait") == ["close-wait"]
    assert suggest("zzzzzz") == []


def test_make_finding_uses_registry_severity() -> None:
    f = make_finding("close-wait", "m", frames=[5, 3, 3], time=1.0, flow=2)
    assert f.severity is Severity.WARNING
    assert f.frames == (3, 5) and f.flow == 2 and f.count == 1 and f.time == 1.0
    g = make_finding("retransmission", "m", frames=[1], count=4, severity=Severity.WARNING)
    assert g.severity is Severity.WARNING and g.count == 4
    with pytest.raises(UnknownFinding):
        make_finding("no-such-thing", "m", frames=[])


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        ([2, 5, 9], (2, 5, 9)),  # ascending already: taken as it is
        ([2, 5, 5, 9], (2, 5, 9)),  # a repeat
        ([9, 2, 5], (2, 5, 9)),
        ([1, 3, 2], (1, 2, 3)),  # out of order at the end only
        ((7, 7), (7,)),
        ([], ()),
    ],
)
def test_finding_frames_sorted_once_each(frames: list[int], expected: tuple[int, ...]) -> None:
    assert make_finding("duplicate-ack", "m", frames=frames).frames == expected


def test_rules_emit_only_registered_names() -> None:
    for name in tcp_rules.names_emitted():
        assert name in REGISTRY, name


def test_generated_findings_page_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "gen_findings.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# -- every finding triggered by a recorded capture ------------------------------------------------

TRUTHS = sorted((ROOT / "captures").glob("*.truth.json"))


@pytest.mark.skipif(not TRUTHS, reason="no recorded captures with expected findings yet")
@pytest.mark.parametrize("truth", TRUTHS, ids=lambda p: p.name.removesuffix(".truth.json"))
def test_recorded_capture_findings(truth: Path) -> None:
    from tcpdiag.engine import analyze_capture

    expect = json.loads(truth.read_text(encoding="utf-8")).get("expect", {})
    capture = truth.parent / json.loads(truth.read_text(encoding="utf-8")).get("capture", "")
    if not capture.exists():
        pytest.skip(f"{capture.name} missing")
    result = analyze_capture(str(capture))
    found = {f.name for f in result.all_findings()}
    missing = set(expect.get("findings", [])) - found
    unexpected = set(expect.get("absent", [])) & found
    assert not missing and not unexpected, (missing, unexpected)


def test_registry_names_covered_by_captures_so_far() -> None:
    """Which registered names no recorded capture triggers yet (reported, not failed: the
    capture set grows; crafted-packet tests cover every rule meanwhile)."""
    covered: set[str] = set()
    for truth in TRUTHS:
        covered |= set(
            json.loads(truth.read_text(encoding="utf-8")).get("expect", {}).get("findings", [])
        )
    unknown = covered - set(REGISTRY)
    assert not unknown, f"captures expect unregistered names: {sorted(unknown)}"


def test_make_finding_builds_the_finding_the_dataclass_would() -> None:
    """`make_finding` fills a Finding through its slots (the frozen dataclass's `__init__` is
    slow): the object is the one `Finding(...)` gives, field for field, hash, repr and pickle
    included, and it stays frozen."""
    assert tuple(f.name for f in dataclasses.fields(Finding)) == FINDING_FIELDS
    refused, damaged = spec("connection-refused").severity, spec("capture-damaged").severity
    cases = [
        (
            make_finding("connection-refused", "refused", frames=[9, 3, 9], time=1.5, flow=4),
            Finding("connection-refused", refused, "refused", (3, 9), 1.5, 4, 1),
        ),
        (
            make_finding("retransmission", "resent", frames=(), count=0, severity=Severity.ERROR),
            Finding("retransmission", Severity.ERROR, "resent", (), None, None, 1),
        ),
        (
            make_finding("capture-damaged", "cut", frames=iter([2]), count=7),
            Finding("capture-damaged", damaged, "cut", (2,), None, None, 7),
        ),
    ]
    for made, expected in cases:
        for field in FINDING_FIELDS:
            assert getattr(made, field) == getattr(expected, field), field
        assert made == expected and hash(made) == hash(expected) and repr(made) == repr(expected)
        assert pickle.loads(pickle.dumps(made)) == expected
        with pytest.raises(dataclasses.FrozenInstanceError):
            made.message = "changed"  # type: ignore[misc]
