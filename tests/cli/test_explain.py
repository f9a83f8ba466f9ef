"""`tcpdiag explain`: the table, one page, unknown names (exit 2 with "did you mean")."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from tcpdiag.cli.explain import explain, markdown_page, plain_page
from tcpdiag.findings.registry import REGISTRY

# Sections every page shows, in this order (ruff-rule-like).
SECTIONS = (
    "What it means",
    "How it is detected",
    "Common causes",
    "How to confirm",
    "What to do",
    "References",
    "Example",
)


def test_explain_is_a_click_command() -> None:
    assert isinstance(explain, click.Command)
    assert explain.name == "explain"


def test_table_lists_every_finding() -> None:
    result = CliRunner().invoke(explain, [])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["name", "severity", "category", "title"]
    for name, s in REGISTRY.items():
        row = next(line for line in lines if line.startswith(name + " "))
        assert s.severity.label in row and s.category in row and s.title in row


@pytest.mark.parametrize("name", ["connection-refused", "tls-alert", "capture-packet-loss"])
def test_page_has_every_section_in_order(name: str) -> None:
    result = CliRunner().invoke(explain, [name])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith(f"{name} ({REGISTRY[name].severity.label}")
    positions = [out.index(f"\n{title}\n") for title in SECTIONS]
    assert positions == sorted(positions)
    assert "\x1b[" not in out  # plain when piped


def test_page_is_plain_ascii_layout_and_wrapped() -> None:
    text = plain_page(REGISTRY["syn-unanswered"], width=60)
    for line in text.splitlines():
        if not line.startswith("    "):  # the example keeps its own layout
            assert len(line) <= 60, line
    assert "tcp.analysis.retransmission" in text


def test_severity_note_is_shown() -> None:
    out = CliRunner().invoke(explain, ["retransmission"]).output
    assert "warning when more than 1 %" in out


def test_name_is_case_insensitive() -> None:
    assert CliRunner().invoke(explain, ["Close-Wait"]).exit_code == 0


def test_unknown_name_exits_2_with_suggestion() -> None:
    result = CliRunner().invoke(explain, ["conection-refused"])
    assert result.exit_code == 2
    assert "unknown finding 'conection-refused'" in result.output
    assert "did you mean connection-refused" in result.output


def test_unknown_name_without_close_match() -> None:
    result = CliRunner().invoke(explain, ["qqqqqqqq"])
    assert result.exit_code == 2
    assert "did you mean" not in result.output
    assert "tcpdiag explain" in result.output


def test_rich_rendering_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tcpdiag.cli.explain.use_color", lambda no_color, to_file: not no_color)
    result = CliRunner().invoke(explain, ["close-wait"])
    assert result.exit_code == 0
    assert "CLOSE_WAIT" in result.output
    plain = CliRunner().invoke(explain, ["close-wait", "--no-color"])
    assert plain.output.startswith("close-wait (warning, close)")


def test_markdown_page_sections() -> None:
    md = markdown_page(REGISTRY["close-wait"], heading="###")
    assert md.startswith("### close-wait\n")
    for title in SECTIONS:
        assert f"#### {title}\n" in md
