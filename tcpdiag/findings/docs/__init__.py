"""The user-facing documentation of every finding, one module per family.

Each family module (`tcp_connect`, `tcp_transfer`, `tcp_close`, `tls`, `capture`) defines
`SPECS: tuple[FindingSpec, ...]`; `tcpdiag.findings.registry` merges them into `REGISTRY`.
The text is written for someone looking at a failed connection, not for a TCP implementer:
plain words, concrete values, and a Wireshark display filter to check what tcpdiag says.

Doc strings are written wrapped in the source; `text()` unwraps them: a blank line separates
paragraphs and a line starting with "- " starts a bullet.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from tcpdiag.result import Severity

CATEGORIES = ("connection", "transfer", "close", "tls", "capture")


@dataclass(frozen=True, slots=True)
class FindingSpec:
    name: str
    severity: Severity
    category: str  # one of CATEGORIES
    title: str
    what_it_means: str
    how_detected: str
    common_causes: str
    how_to_confirm: str
    what_to_do: str
    references: tuple[str, ...]
    example: str
    # Said next to the severity when the rules may raise or lower it (e.g. retransmission).
    severity_note: str = ""
    # True for capture-quality findings: faults of the capture, not of the network.
    capture_quality: bool = False

    def sections(self) -> list[tuple[str, str]]:
        """The doc sections in the fixed order every page and docs/findings.md use."""
        return [
            ("What it means", self.what_it_means),
            ("How it is detected", self.how_detected),
            ("Common causes", self.common_causes),
            ("How to confirm", self.how_to_confirm),
            ("What to do", self.what_to_do),
            ("References", "\n".join(f"- {r}" for r in self.references)),
            ("Example", self.example),
        ]


def text(source: str) -> str:
    """Unwrap a doc string written wrapped in the source (see the module docstring)."""
    blocks: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            blocks.append(" ".join(current))
            current.clear()

    for raw in textwrap.dedent(source).strip().splitlines():
        line = raw.strip()
        if not line:
            flush()
            blocks.append("")
        elif line.startswith("- "):
            flush()
            current.append(line)
        else:
            current.append(line)
    flush()
    out: list[str] = []
    for block in blocks:
        if block == "" and (not out or out[-1] == ""):
            continue
        out.append(block)
    # Bullets sit on consecutive lines; paragraphs are separated by one blank line.
    result: list[str] = []
    for i, block in enumerate(out):
        if block == "":
            result.append("")
            continue
        if result and result[-1] != "" and not (block.startswith("- ") and i > 0):
            result.append("")
        result.append(block)
    return "\n".join(result).strip()


def example(source: str) -> str:
    """An example is shown verbatim (only the common indentation is removed)."""
    return textwrap.dedent(source).strip("\n")
