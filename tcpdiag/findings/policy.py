"""The check policy: ignores, severity overrides, per-capture overrides and expectations.

Applied after the rules, before any report is rendered, by `tcpdiag check` (and by anyone who
wants the same view). Pure data in, data out: the TOML is read and validated by
`tcpdiag.checkconfig`, which builds a `Policy` from it.

Configuration (`tcpdiag.toml` at top level, or `[tool.tcpdiag]` in `pyproject.toml`)::

    fail-on = "warning"                     # info | warning | error (default error)
    ignore = ["half-close", "capture-*"]    # finding names; shell-style globs allowed
    severity = {retransmission = "warning"} # per-name severity override
    expect = [                              # assertions on every capture (see below)
        "tls-handshake-complete",
        "no-findings-above:warning",
        {port = 443, tls = "complete"},
    ]

    [[overrides]]                           # `[[tool.tcpdiag.overrides]]` in pyproject.toml
    path = "captures/lab-*.pcap"            # glob (or list of globs) on the capture path
    ignore = ["connection-refused"]         # added to the global ignores
    severity = {zero-window = "info"}       # merged over the global table
    expect = ["finding:connection-refused"] # added to the global expectations
    fail-on = "error"                       # replaces the global threshold

Expectation language. A string is one assertion over the whole capture:

- ``tls-handshake-complete``: at least one flow carries TLS and every TLS flow completed
  its handshake.
- ``tcp-handshake-complete``: every flow completed the three-way handshake.
- ``no-findings-above:LEVEL``: no finding is more severe than LEVEL (info, warning).
- ``no-finding:NAME`` / ``finding:NAME``: NAME (a glob) never / at least once appears.
- ``no-problem-flows``: no flow has a finding at warning or above.
- ``min-flows:N`` / ``max-flows:N``: the capture holds at least / at most N flows.

A table selects flows and asserts on each of them. Selectors (all optional, combined with AND):
``port`` (either end, int or list), ``host`` (an address at either end), ``sni`` (glob),
``flow`` (id). Assertions: ``tls`` ("complete" | "incomplete" | "present" | "absent"),
``tcp-handshake`` ("complete" | "incomplete"), ``state`` (Zeek conn_state or list),
``no-findings-above``, ``no-finding``, ``finding`` (as above, within the selected flows), and
``min-flows``/``max-flows`` (how many flows the selector must match; ``min-flows`` defaults to 1,
so a selector that matches nothing fails rather than passing vacuously). ``name`` labels the
expectation in messages. With a selector, ``tls = "complete"`` requires TLS on every selected
flow; without one it applies to the flows that carry TLS.

A failed expectation is a capture-level finding ``expectation-failed`` (error unless
``severity`` says otherwise) naming the expectation and the first flows that broke it.
"""

from __future__ import annotations

import bisect
import dataclasses
import fnmatch
import ipaddress
import os.path
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

from tcpdiag.findings.registry import REGISTRY
from tcpdiag.result import CaptureResult, Finding, FlowResult, Severity
from tcpdiag.store import LazyFlows, flows_without_timelines

EXPECTATION_FAILED = "expectation-failed"

# Flows named in one expectation-failed message / frames listed (the rest are counted).
_MAX_NAMED = 5
_MAX_FRAMES = 50

TLS_STATES = ("complete", "incomplete", "present", "absent")
HANDSHAKE_STATES = ("complete", "incomplete")
ZEEK_STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH",
               "SHR", "OTH")  # fmt: skip


def known_finding_names() -> tuple[str, ...]:
    """Every finding name there is, sorted: the registry's plus `expectation-failed`, which
    this module raises."""
    return tuple(sorted(set(REGISTRY) | {EXPECTATION_FAILED}))


@dataclass(frozen=True, slots=True)
class Expectation:
    """One assertion, normalised from either the string or the table form."""

    label: str
    # Selectors: None means "any".
    ports: tuple[int, ...] = ()
    host: str | None = None
    sni: str | None = None
    flow: int | None = None
    # Assertions.
    tls: str | None = None
    tcp_handshake: str | None = None
    states: tuple[str, ...] = ()
    no_findings_above: Severity | None = None
    no_finding: tuple[str, ...] = ()
    finding: tuple[str, ...] = ()
    no_problem_flows: bool = False
    min_flows: int | None = None
    max_flows: int | None = None

    @property
    def has_selector(self) -> bool:
        return bool(self.ports) or any(x is not None for x in (self.host, self.sni, self.flow))


@dataclass(frozen=True, slots=True)
class Rules:
    fail_on: Severity | None = None
    ignore: tuple[str, ...] = ()
    severity: Mapping[str, Severity] = field(default_factory=dict)
    expect: tuple[Expectation, ...] = ()


@dataclass(frozen=True, slots=True)
class Override:
    paths: tuple[str, ...]
    rules: Rules


@dataclass(frozen=True, slots=True)
class Policy:
    base: Rules = field(default_factory=Rules)
    overrides: tuple[Override, ...] = ()
    # Directory of the config file: override globs also match paths relative to it.
    root: str | None = None

    def for_capture(self, path: str) -> Rules:
        """The base rules with every override whose glob matches `path` applied in order:
        ignores and expectations accumulate, severity tables merge, fail-on is replaced."""
        rules = self.base
        for override in self.overrides:
            if any(path_matches(path, pattern, self.root) for pattern in override.paths):
                o = override.rules
                rules = Rules(
                    fail_on=o.fail_on if o.fail_on is not None else rules.fail_on,
                    ignore=rules.ignore + o.ignore,
                    severity={**rules.severity, **o.severity},
                    expect=rules.expect + o.expect,
                )
        return rules


def path_matches(path: str, pattern: str, root: str | None = None) -> bool:
    """Glob `pattern` against the capture path as given, relative to `root` (the config's
    directory), and, for a pattern without a slash, against the file name."""
    posix = path.replace("\\", "/")
    candidates = [posix, posix.removeprefix("./")]
    if root is not None:
        try:
            rel = os.path.relpath(os.path.abspath(path), root).replace("\\", "/")
            candidates.append(rel)
        except ValueError:
            pass
    if "/" not in pattern:
        candidates.append(PurePosixPath(posix).name)
    return any(fnmatch.fnmatchcase(c, pattern) for c in candidates)


def name_matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


# -- expectation strings ------------------------------------------------------------------------


def parse_expectation(text: str) -> Expectation:
    """Parse the string form; raises ValueError with a one-line reason."""
    raw = text.strip()
    key, sep, arg = raw.partition(":")
    key, arg = key.strip(), arg.strip()
    if key == "tls-handshake-complete" and not sep:
        return Expectation(raw, tls="complete")
    if key == "tcp-handshake-complete" and not sep:
        return Expectation(raw, tcp_handshake="complete")
    if key == "no-problem-flows" and not sep:
        return Expectation(raw, no_problem_flows=True)
    if key == "no-findings-above" and arg:
        return Expectation(raw, no_findings_above=Severity.parse(arg))
    if key == "no-finding" and arg:
        return Expectation(raw, no_finding=(arg,))
    if key == "finding" and arg:
        return Expectation(raw, finding=(arg,))
    if key in ("min-flows", "max-flows") and arg:
        try:
            n = int(arg)
        except ValueError:
            raise ValueError(f"{key} needs a number, not {arg!r}") from None
        if n < 0:
            raise ValueError(f"{key} needs a number >= 0, not {n}")
        return (
            Expectation(raw, min_flows=n) if key == "min-flows" else Expectation(raw, max_flows=n)
        )
    raise ValueError(
        f"unknown expectation {raw!r} (known: tls-handshake-complete, tcp-handshake-complete, "
        "no-problem-flows, no-findings-above:LEVEL, no-finding:NAME, finding:NAME, "
        "min-flows:N, max-flows:N)"
    )


# -- applying the rules -------------------------------------------------------------------------


def _adjust(findings: Sequence[Finding], rules: Rules) -> list[Finding]:
    out: list[Finding] = []
    for f in findings:
        if rules.ignore and name_matches(f.name, rules.ignore):
            continue
        level = _severity_for(f.name, rules)
        out.append(
            f if level is None or level == f.severity else dataclasses.replace(f, severity=level)
        )
    return out


def _severity_for(name: str, rules: Rules) -> Severity | None:
    if name in rules.severity:
        return rules.severity[name]
    for pattern, level in rules.severity.items():
        if fnmatch.fnmatchcase(name, pattern):
            return level
    return None


def apply_policy(capture: CaptureResult, policy: Policy) -> CaptureResult:
    """A copy of `capture` with the policy applied: ignored findings dropped, severities
    overridden, and one `expectation-failed` capture finding per expectation that failed.
    The input is not modified; its flows are adjusted as they are read (`PolicyFlows`)."""
    rules = policy.for_capture(capture.path)
    cap_findings = _adjust(capture.findings, rules)
    out = dataclasses.replace(
        capture, flows=PolicyFlows(capture.flows, rules), findings=cap_findings
    )
    failures = [f for f in evaluate_all(rules.expect, out) if f is not None]
    if failures:
        out.findings = sorted(cap_findings + _adjust(failures, rules), key=Finding.sort_key)
    return out


class PolicyFlows(LazyFlows):
    """A capture's flows with a policy's ignores and severity overrides applied to each flow as
    it is read, so the flows of a `FlowStore` stay on disk under a policy too (a copy of every
    flow would hold a million-flow capture in memory)."""

    def __init__(self, flows: Sequence[FlowResult], rules: Rules) -> None:
        super().__init__(flows, adjust=lambda f: replace(f, findings=_adjust(f.findings, rules)))


def failing_findings(
    capture: CaptureResult, policy: Policy, fail_on: Severity | None
) -> list[Finding]:
    """Findings of an already policy-applied capture at or above the threshold: `fail_on` when
    given (the command line wins), else the capture's configured `fail-on`, else error."""
    threshold = fail_on or policy.for_capture(capture.path).fail_on or Severity.ERROR
    flows = flows_without_timelines(capture.flows)  # (every flow is read: no timeline needed)
    found = [f for f in capture.findings if f.severity >= threshold]
    return found + [f for flow in flows for f in flow.findings if f.severity >= threshold]


# -- expectations ---------------------------------------------------------------------------------


def _ports(flow: FlowResult) -> tuple[str, str]:
    return flow.client.rpartition(":")[2], flow.server.rpartition(":")[2]


def _hosts(flow: FlowResult) -> list[str]:
    out = []
    for end in (flow.client, flow.server):
        host = end.rpartition(":")[0].strip("[]")
        try:
            out.append(str(ipaddress.ip_address(host)))
        except ValueError:
            out.append(host)
    return out


def _selected(e: Expectation, flow: FlowResult) -> bool:
    if e.flow is not None and flow.id != e.flow:
        return False
    if e.ports and not any(p in _ports(flow) for p in map(str, e.ports)):
        return False
    if e.host is not None and e.host not in _hosts(flow):
        return False
    if e.sni is not None:
        sni = flow.tls.sni if flow.tls else None
        if sni is None or not fnmatch.fnmatchcase(sni.lower(), e.sni.lower()):
            return False
    return True


def _flow_problem(e: Expectation, flow: FlowResult) -> str | None:
    """Why `flow` breaks `e`, or None."""
    tls = flow.tls
    if e.tls is not None:
        if e.tls == "absent" and tls is not None:
            return "carries TLS"
        if e.tls in ("present", "complete", "incomplete") and tls is None:
            if e.tls == "present" or e.has_selector:
                return "carries no TLS"
        elif e.tls == "complete" and tls is not None and not tls.handshake_complete:
            return "TLS handshake not complete"
        elif e.tls == "incomplete" and tls is not None and tls.handshake_complete:
            return "TLS handshake completed"
    if e.tcp_handshake is not None:
        done = flow.handshake.syn and flow.handshake.syn_ack and flow.handshake.ack
        if e.tcp_handshake == "complete" and not done:
            return "TCP handshake not complete"
        if e.tcp_handshake == "incomplete" and done:
            return "TCP handshake completed"
    if e.states and flow.state not in e.states:
        return f"state {flow.state}, expected {'/'.join(e.states)}"
    if e.no_findings_above is not None:
        worst = [f for f in flow.findings if f.severity > e.no_findings_above]
        if worst:
            return f"{worst[0].name} ({worst[0].severity.label})"
    if e.no_problem_flows:
        bad = [f for f in flow.findings if f.severity >= Severity.WARNING]
        if bad:
            return f"{bad[0].name} ({bad[0].severity.label})"
    for pattern in e.no_finding:
        hit = [f for f in flow.findings if fnmatch.fnmatchcase(f.name, pattern)]
        if hit:
            return f"has {hit[0].name}"
    return None


def evaluate(e: Expectation, capture: CaptureResult) -> Finding | None:
    """The `expectation-failed` finding when `capture` breaks `e`, else None."""
    return evaluate_all([e], capture)[0]


def evaluate_all(
    expectations: Sequence[Expectation], capture: CaptureResult
) -> list[Finding | None]:
    """`evaluate` for each expectation, in one pass over the flows that keeps only what the
    findings name (the flows may be read from a `FlowStore`, one at a time)."""
    tallies = [_Tally(e) for e in expectations]
    if tallies:
        for flow in capture.flows:
            for tally in tallies:
                if not tally.expectation.has_selector or _selected(tally.expectation, flow):
                    tally.add(flow)
    return [_judge(tally, capture) for tally in tallies]


def _judge(tally: _Tally, capture: CaptureResult) -> Finding | None:
    e = tally.expectation
    reasons: list[str] = []
    matched = tally.matched
    minimum = e.min_flows
    if minimum is None and e.has_selector:
        minimum = 1
    if minimum is not None and matched < minimum:
        what = "flows match the selector" if e.has_selector else "flows"
        reasons.append(f"{matched} {what}, expected at least {minimum}")
    if e.max_flows is not None and matched > e.max_flows:
        reasons.append(f"{matched} flows, expected at most {e.max_flows}")
    if e.tls == "complete" and not e.has_selector and not tally.any_tls:
        reasons.append("no flow carries TLS")
    found = set(tally.found)
    if not e.has_selector:
        # Capture-level findings count for the whole-capture assertions.
        capture_level = capture.findings
        if e.no_findings_above is not None:
            above = [f for f in capture_level if f.severity > e.no_findings_above]
            if above:
                reasons.append(f"capture finding {above[0].name} ({above[0].severity.label})")
        for pattern in e.no_finding:
            if any(fnmatch.fnmatchcase(f.name, pattern) for f in capture_level):
                reasons.append(f"capture finding {pattern} present")
        found.update(p for p in e.finding if _any_named(capture_level, p))
    for pattern in e.finding:
        if pattern not in found:
            reasons.append(f"no {pattern} finding")
    bad = tally.named
    if not bad and not reasons:
        return None
    for flow, why in bad:
        reasons.append(f"flow {flow.id} ({flow.client} -> {flow.server}): {why}")
    if tally.bad > _MAX_NAMED:
        reasons.append(f"and {tally.bad - _MAX_NAMED} more flows")
    return Finding(
        name=EXPECTATION_FAILED,
        severity=Severity.ERROR,
        message=f"expectation {e.label!r} failed: " + "; ".join(reasons),
        frames=tuple(tally.frames),
        time=bad[0][0].start if bad else None,
        flow=bad[0][0].id if tally.bad == 1 else None,
        count=max(1, tally.bad),
    )


class _Tally:
    """What `evaluate` needs of the flows an expectation covers, gathered flow by flow."""

    def __init__(self, e: Expectation) -> None:
        self.expectation = e
        self.matched = 0
        self.any_tls = False
        self.found: set[str] = set()  # `finding:` patterns some covered flow carries
        self.bad = 0  # flows that break the expectation
        self.named: list[tuple[FlowResult, str]] = []  # the first _MAX_NAMED of them, and why
        self.frames: list[int] = []  # the smallest first frames of those flows, sorted

    def add(self, flow: FlowResult) -> None:
        e = self.expectation
        self.matched += 1
        self.any_tls = self.any_tls or flow.tls is not None
        for pattern in e.finding:
            if pattern not in self.found and _any_named(flow.findings, pattern):
                self.found.add(pattern)
        why = _flow_problem(e, flow)
        if why is None:
            return
        self.bad += 1
        if len(self.named) < _MAX_NAMED:
            self.named.append((flow, why))
        frames = self.frames
        if flow.first_frame not in frames:
            bisect.insort(frames, flow.first_frame)
            del frames[_MAX_FRAMES:]


def _any_named(findings: Iterable[Finding], pattern: str) -> bool:
    return any(fnmatch.fnmatchcase(f.name, pattern) for f in findings)
