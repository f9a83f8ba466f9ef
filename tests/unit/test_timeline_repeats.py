"""`flow.timeline_repeats`, the rows as (frame, time, direction, key) for rules that look for
repeated packets (the capture-duplicate check), against the rows the report shows
(`timeline_rows`): same frames, times and directions, and two keys equal exactly when the two
rows have the same sender, flags, seq, ack, length and window."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

from tcpdiag.flow import Flow, FlowTable
from tcpdiag.flow.flow import timeline_repeats, timeline_rows
from tests.capture_files import PUBLIC
from tests.craft import ack, syn, synack
from tests.flows import flows_of

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = [
    *sorted((ROOT / "captures").glob("tcp-*.pcap*")),
    *(PUBLIC / name for name in ("tcp-zero-window-small.pcap", "tcp-rst-injection.pcap")),
]


def test_keys_compare_like_the_rows() -> None:
    compared = 0
    for flow in (f for path in CAPTURES if path.exists() for f in flows_of(path)):
        state = flow.timeline_state()
        rows, _ = timeline_rows(state)
        repeats = timeline_repeats(state)
        assert [(p[0], p[1]) for p in repeats] == [(r.frame, r.time) for r in rows]
        assert [p[2] for p in repeats] == [0 if r.sender == "client" else 1 for r in rows]
        for (pa, ra), (pb, rb) in combinations(zip(repeats, rows, strict=True), 2):
            same_row = (ra.sender, ra.seq, ra.ack, ra.flags, ra.length, ra.window) == (
                rb.sender, rb.seq, rb.ack, rb.flags, rb.length, rb.window)  # fmt: skip
            assert (pa[3] == pb[3]) == same_row, (flow.key, ra.frame, rb.frame)
            compared += 1
    assert compared > 1000


def test_some_packets_repeat_and_the_check_can_tell() -> None:
    """Retransmissions repeat a packet exactly: the comparison is not vacuous."""
    equal = 0
    for flow in flows_of(ROOT / "captures" / "tcp-retransmissions.pcap"):
        keys = [key for _, _, _, key in timeline_repeats(flow.timeline_state())]
        equal += sum(1 for a, b in combinations(keys, 2) if a == b)
    assert equal > 0


def test_the_ack_number_counts_only_where_a_row_shows_it() -> None:
    """Without the ACK flag a row shows acknowledgement 0 whatever the field holds: two SYNs
    differing only there have one key; with the flag, the number is part of the key."""
    table_flows: list[Flow] = []
    table = FlowTable(on_close=table_flows.append)
    first = syn(frame=1, time=0.0)
    table.add(first)
    table.add(first._replace(frame=2, time=1.0, ack=0xDEADBEEF))  # garbage in the field
    table.add(synack(frame=3, time=1.1))
    table.add(ack(frame=4, time=1.2))
    table.add(ack(frame=5, time=1.3, ack=5002))  # acknowledges one more byte
    table.finish()
    (flow,) = table_flows
    keys = {frame: key for frame, _, _, key in timeline_repeats(flow.timeline_state())}
    assert keys[1] == keys[2]
    assert keys[4] != keys[5]
