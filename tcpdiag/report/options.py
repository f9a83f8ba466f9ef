"""What every renderer is told besides the result: which flows and timelines to show, colour."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from tcpdiag.result import FlowResult, Severity
from tcpdiag.store import FlowStore, LazyFlows, flows_without_timelines

# rich costs ~1.2 ms per table row: 50 rows per table keeps a million-flow report under 2 s.
DEFAULT_MAX_ROWS = 50


@dataclass(slots=True)
class ReportOptions:
    # Timeline for every flow (`--all`), not only problem flows.
    show_all_timelines: bool = False
    # Show only this flow (`--flow ID`), with its timeline whatever its state.
    flow_filter: int | None = None
    # Only flows with this address as client or server (`--host`), or this port (`--port`).
    host_filter: str | None = None
    port_filter: int | None = None
    # Print timelines at all (`--timeline/--no-timeline`).
    timelines: bool = True
    # Colour and Unicode box art; False gives plain ASCII (pipes, `--no-color`, NO_COLOR).
    color: bool = True
    # Rows per flow table (and flows per section); the rest are counted, not shown.
    max_rows: int = DEFAULT_MAX_ROWS
    # Flows given a detail section (findings and timeline); the rest are counted, not shown.
    max_details: int = 20
    # Terminal width for the text report (None: the console's own).
    width: int | None = None
    # The `check` threshold: a finding at or above it fails (JUnit failures, check summaries).
    # `fail_on_by_path` holds per-capture thresholds from config overrides.
    fail_on: Severity = Severity.ERROR
    fail_on_by_path: dict[str, Severity] = field(default_factory=dict)
    # Processes that make the flows' text of a long JSON or JSON Lines report (`parallel.py`).
    jobs: int = 1

    def threshold(self, path: str) -> Severity:
        return self.fail_on_by_path.get(path, self.fail_on)


def _split_endpoint(endpoint: str) -> tuple[str, str]:
    """'10.0.0.1:443' -> ('10.0.0.1', '443'); '[::1]:443' -> ('::1', '443')."""
    host, _, port = endpoint.rpartition(":")
    return _normal_ip(host.strip("[]")), port


def _normal_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def flow_matches(flow: FlowResult, options: ReportOptions) -> bool:
    """Whether the `--flow`/`--host`/`--port` filters keep this flow (addresses compare as
    addresses: `2001:db8:0::2` matches `[2001:db8::2]:443`)."""
    if options.flow_filter is not None and flow.id != options.flow_filter:
        return False
    if options.host_filter is not None or options.port_filter is not None:
        ends = (_split_endpoint(flow.client), _split_endpoint(flow.server))
        if options.host_filter is not None:
            want = _normal_ip(options.host_filter)
            if all(h != want for h, _ in ends):
                return False
        if options.port_filter is not None and all(p != str(options.port_filter) for _, p in ends):
            return False
    return True


def is_problem(flow: FlowResult) -> bool:
    """A problem flow has a finding at warning or above: it is listed first and gets a timeline."""
    sev = flow.max_severity
    return sev is not None and sev >= Severity.WARNING


def problem_order(flows: Sequence[FlowResult]) -> Sequence[FlowResult]:
    """Problem flows first (most severe first), then the rest; flow id within each group.
    Each flow's severity is computed once (a million-flow report sorts a million keys); a
    `FlowStore` orders its flows from what it knows without reading them, and flows read on
    access (a policy applied to a store) are ordered by position, not held."""
    if isinstance(flows, FlowStore):
        return flows.problems_first()
    if isinstance(flows, list):
        keyed = [(_problem_rank(f), f.id, f) for f in flows]
        keyed.sort(key=lambda k: (k[0], k[1]))
        return [k[2] for k in keyed]
    ranked = sorted((_problem_rank(f), f.id, i) for i, f in enumerate(flows))
    return LazyFlows(flows, [i for _, _, i in ranked])


def _problem_rank(flow: FlowResult) -> int:
    sev = flow.max_severity
    return -int(sev) if sev is not None and sev >= Severity.WARNING else 0


def without_timelines(flows: Sequence[FlowResult]) -> Sequence[FlowResult]:
    """The flows, for a renderer that shows no timeline (`store.flows_without_timelines`)."""
    return flows_without_timelines(flows)


def count_problems(ordered: Sequence[FlowResult]) -> int:
    """How many flows of a `problem_order`ed list are problem flows (they come first)."""
    lo, hi = 0, len(ordered)
    while lo < hi:  # binary search for the first non-problem flow
        mid = (lo + hi) // 2
        if is_problem(ordered[mid]):
            lo = mid + 1
        else:
            hi = mid
    return lo
