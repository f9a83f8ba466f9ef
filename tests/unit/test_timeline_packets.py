"""`flow.timeline_packets`, the rows as plain tuples for rules that compare packets (the
capture-duplicate check), against the rows the report shows (`timeline_rows`): same frames and
times, and within one direction two packets equal exactly when their rows are."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

from tcpdiag.flow.flow import timeline_packets, timeline_rows
from tests.capture_files import PUBLIC
from tests.flows import flows_of

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = [
    *sorted((ROOT / "captures").glob("tcp-*.pcap*")),
    *(PUBLIC / name for name in ("tcp-zero-window-small.pcap", "tcp-rst-injection.pcap")),
]


def test_packets_compare_like_the_rows() -> None:
    compared = 0
    for flow in (f for path in CAPTURES if path.exists() for f in flows_of(path)):
        state = flow.timeline_state()
        rows, _ = timeline_rows(state)
        packets = timeline_packets(state)
        assert [(p[0], p[1]) for p in packets] == [(r.frame, r.time) for r in rows]
        assert [p[2] for p in packets] == [0 if r.sender == "client" else 1 for r in rows]
        for (pa, ra), (pb, rb) in combinations(zip(packets, rows, strict=True), 2):
            if pa[2] != pb[2]:
                continue
            same_row = (ra.seq, ra.ack, ra.flags, ra.length, ra.window) == (
                rb.seq, rb.ack, rb.flags, rb.length, rb.window)  # fmt: skip
            assert (pa[3:] == pb[3:]) == same_row, (flow.key, ra.frame, rb.frame)
            compared += 1
    assert compared > 1000


def test_some_packets_are_equal_and_the_check_can_tell() -> None:
    """Retransmissions repeat a packet exactly: the comparison is not vacuous."""
    equal = 0
    for flow in flows_of(ROOT / "captures" / "tcp-retransmissions.pcap"):
        packets = timeline_packets(flow.timeline_state())
        equal += sum(1 for a, b in combinations(packets, 2) if a[2] == b[2] and a[3:] == b[3:])
    assert equal > 0
