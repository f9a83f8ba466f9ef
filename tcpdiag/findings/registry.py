"""The registry of findings: every name tcpdiag can report, its severity and its documentation.

Names and default severities are the stable contract of `spec/report.md`; the documentation
text lives in `findings/docs/<family>.py`. Rules build findings only through `make_finding`, so
a finding always carries a registered name and the registry's severity unless the rule has a
documented reason to override it (retransmission above 1 %, a non-fatal TLS alert).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

from tcpdiag.errors import UnknownFinding
from tcpdiag.findings.docs import CATEGORIES, FindingSpec
from tcpdiag.findings.docs import capture as _capture
from tcpdiag.findings.docs import tcp_close as _tcp_close
from tcpdiag.findings.docs import tcp_connect as _tcp_connect
from tcpdiag.findings.docs import tcp_transfer as _tcp_transfer
from tcpdiag.findings.docs import tls as _tls
from tcpdiag.result import FINDING_FIELDS as FINDING_FIELDS
from tcpdiag.result import Finding, Severity, new_finding

__all__ = [
    "CATEGORIES",
    "REGISTRY",
    "FindingSpec",
    "UnknownFinding",
    "is_capture_quality",
    "make_finding",
    "names",
    "sorted_frames",
    "spec",
    "suggest",
]

FAMILIES: tuple[tuple[str, tuple[FindingSpec, ...]], ...] = (
    ("tcp_connect", _tcp_connect.SPECS),
    ("tcp_transfer", _tcp_transfer.SPECS),
    ("tcp_close", _tcp_close.SPECS),
    ("tls", _tls.SPECS),
    ("capture", _capture.SPECS),
)


def _build(families: Iterable[tuple[str, tuple[FindingSpec, ...]]]) -> dict[str, FindingSpec]:
    out: dict[str, FindingSpec] = {}
    for family, specs in families:
        for s in specs:
            if s.name in out:
                raise ValueError(f"finding {s.name!r} registered twice (family {family})")
            if s.category not in CATEGORIES:
                raise ValueError(f"finding {s.name!r}: unknown category {s.category!r}")
            out[s.name] = s
    return out


REGISTRY: Mapping[str, FindingSpec] = _build(FAMILIES)


def names() -> list[str]:
    """Every registered name, grouped by category in registry order."""
    return [s.name for cat in CATEGORIES for s in REGISTRY.values() if s.category == cat]


def spec(name: str) -> FindingSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownFinding(name, suggest(name)) from None


def suggest(name: str, limit: int = 3) -> list[str]:
    """Close registered names for a mistyped one ("did you mean")."""
    query = name.strip().lower().replace("_", "-").replace(".", "-")
    hits = difflib.get_close_matches(query, list(REGISTRY), n=limit, cutoff=0.6)
    if not hits:
        hits = [n for n in REGISTRY if query and query in n][:limit]
    return hits


def is_capture_quality(name: str) -> bool:
    s = REGISTRY.get(name)
    return s is not None and s.capture_quality


def sorted_frames(frames: Iterable[int]) -> Sequence[int]:
    """The frames sorted, each once. A list already in strictly ascending order is returned as
    it is: per-packet findings list every flagged frame in capture order (a million on a long
    lossy transfer), and a set and a sorted copy would triple its memory."""
    if isinstance(frames, list):
        ascending = True
        for i in range(1, len(frames)):
            if frames[i] <= frames[i - 1]:
                ascending = False
                break
        if ascending:
            return frames
    return sorted(set(frames))


def make_finding(
    name: str,
    message: str,
    *,
    frames: Iterable[int],
    time: float | None = None,
    flow: int | None = None,
    count: int = 1,
    severity: Severity | None = None,
) -> Finding:
    """A `result.Finding` for a registered name, with the registry's severity unless overridden.

    Frames are deduplicated and sorted (the contract's order); an unknown name raises
    `UnknownFinding`, so a typo in a rule fails its tests instead of leaking into reports.
    """
    s = spec(name)
    return new_finding(
        name,
        s.severity if severity is None else severity,
        message,
        tuple(sorted_frames(frames)),
        time,
        flow,
        max(1, count),
    )
