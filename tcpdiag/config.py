"""Tunable thresholds and resource limits, with documented defaults.

Shared leaf module (like `model.py`): the engine and the rules read these; the CLI fills them
from flags and from the `[thresholds]`/`[limits]` tables of `tcpdiag.toml` or
`[tool.tcpdiag]` in `pyproject.toml`. Each default says why it is what it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(slots=True)
class Thresholds:
    # close-wait: one side's FIN was ACKed and the other side's FIN came later than this, or never.
    # 1 s: an application that got EOF and closes promptly does so within milliseconds.
    close_wait_delay: float = 1.0
    # delayed-ack-stall: an ACK delayed at least this long while the sender waits with small
    # unacknowledged data. Linux's delayed-ACK timer is ~40 ms (min), others ~200 ms.
    stall_min_delay: float = 0.035
    # ... and at most this long (longer waits are not delayed ACKs but something else).
    stall_max_delay: float = 0.5
    # How many stalls in a flow before reporting (one stall can be chance).
    stall_min_count: int = 2
    # reset-mid-stream: idle time before a RST worth mentioning as a likely NAT/firewall timeout.
    idle_notable: float = 30.0
    # late-response: a response later than this after its request, on a reused connection.
    late_response_delay: float = 1.0
    # port-reused: a new SYN this soon after the previous incarnation closed skipped TIME_WAIT
    # (2*MSL; Linux uses 60 s for TIME_WAIT).
    time_wait: float = 60.0
    # retransmission becomes a warning above this share of a flow's data segments (contract: 1 %).
    retransmission_warning_ratio: float = 0.01
    # no-response: the server sent nothing for at least this long after the request was ACKed
    # (when the capture ended with the connection still open).
    no_response_wait: float = 1.0
    # arp-unanswered: number of unanswered who-has requests for one address before reporting.
    arp_min_requests: int = 2


@dataclass(slots=True)
class Limits:
    # Flows tracked at once; beyond this the oldest embryonic (then idle) flows are evicted.
    max_flows: int = 200_000
    # Bytes buffered per direction of a flow for reassembly (out-of-order data, TLS handshake).
    max_flow_buffer: int = 1 << 20
    # Decompressed input bytes read from one capture (decompression bombs stop here).
    max_input_bytes: int = 8 << 30
    # A flow silent this long (capture time) is finalised: Zeek's tcp_inactivity_timeout.
    idle_timeout: float = 300.0
    # A closed flow (FINs both ways, or a RST) stays in the table this long (capture time) so
    # that retransmitted FINs/RSTs and late ACKs still land in it: TIME_WAIT's 60 s by default.
    # Live capture uses a few seconds so closed flows are reported promptly.
    close_linger: float = 60.0
    # Closed flows lingering at once; beyond this the one closed longest ago is finalised early.
    # A lingering flow holds its whole analysis state (~16 KB): on a busy link (400 closes a
    # second) 60 s of linger would otherwise hold 24,000 of them. Late packets of a flow
    # finalised early start a new flow, as in Zeek after its tcp_close_delay.
    max_closed_flows: int = 4096
    # Finished flows the report lists (half for healthy flows, half for problem flows); beyond
    # it flows are still analysed and counted in the summary, but not kept: a capture of a
    # million flows (a SYN flood) stays within memory. Hitting it is a capture-report-limit.
    max_report_flows: int = 40_000
    # Packets kept per flow for the timeline: this many at the start and at the end.
    timeline_head: int = 60
    timeline_tail: int = 40


@dataclass(slots=True)
class AnalysisOptions:
    thresholds: Thresholds = field(default_factory=Thresholds)
    limits: Limits = field(default_factory=Limits)
    # Keep timelines for every flow, not only problem flows (--all / --flow).
    keep_all_timelines: bool = False
    # False when the report shows no timeline (JSON, SARIF, JUnit..., or --no-timeline): then
    # no finished flow builds or packs one (a stored flow's packed timeline and TLS labels
    # are ~1.5-4 KB that the report would never read).
    timelines: bool = True


def field_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]
