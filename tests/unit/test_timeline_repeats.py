"""`flow.timeline_repeats`, the rows as (frame, time, direction, key) for rules that look for
repeated packets (the capture-duplicate check), against the rows the report shows
(`timeline_rows`): same frames, times and directions, and two keys equal exactly when the two
rows have the same sender, flags, seq, ack, length and window, and the two packets the same IP
ID and SACK edge (`flow.rows`: the row's fields the report does not show)."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

from tcpdiag.flow import Flow, FlowTable
from tcpdiag.flow.flow import timeline_repeats, timeline_rows
from tcpdiag.flow.rows import ROW
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
        marks = [row[8:10] for row in ROW.iter_unpack(state[0])]  # IP ID, SACK edge (no TTL)
        assert [(p[0], p[1]) for p in repeats] == [(r.frame, r.time) for r in rows]
        assert [p[2] for p in repeats] == [0 if r.sender == "client" else 1 for r in rows]
        for (pa, ra, ma), (pb, rb, mb) in combinations(zip(repeats, rows, marks, strict=True), 2):
            same_row = (ra.sender, ra.seq, ra.ack, ra.flags, ra.length, ra.window, ma) == (
                rb.sender, rb.seq, rb.ack, rb.flags, rb.length, rb.window, mb)  # fmt: skip
            assert (pa[3] == pb[3]) == same_row, (flow.key, ra.frame, rb.frame)
            compared += 1
    assert compared > 1000


def _equal_keys(name: str) -> tuple[int, int]:
    """Pairs of rows of the capture with equal keys; pairs with equal shown fields."""
    keys = same_fields = 0
    for flow in flows_of(ROOT / "captures" / name):
        state = flow.timeline_state()
        repeats = [key for _, _, _, key in timeline_repeats(state)]
        shown = [
            (r.sender, r.flags, r.seq, r.ack, r.length, r.window) for r in timeline_rows(state)[0]
        ]
        keys += sum(1 for a, b in combinations(repeats, 2) if a == b)
        same_fields += sum(1 for a, b in combinations(shown, 2) if a == b)
    return keys, same_fields


def test_copies_repeat_and_resends_do_not() -> None:
    """Not vacuous: a bridge seen with `-i any` records every packet twice, and the copies have
    equal keys; the retransmissions and duplicate ACKs of a lossy transfer repeat the shown
    fields of earlier packets, and their IP IDs and SACK edges keep their keys apart."""
    keys, same_fields = _equal_keys("tcp-any-bridge-duplicates.pcap")
    assert keys >= 50 and keys == same_fields
    keys, same_fields = _equal_keys("tcp-retransmissions.pcap")
    assert same_fields >= 10 and keys == 0


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
