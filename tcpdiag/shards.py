"""What merging the flow shards of one capture needs, wherever the shards ran (local processes,
`split.py`; Dask workers, `distributed.py`): the flow numbering of one process, and the report
quota applied to the whole capture.

Numbering: the flow table numbers flows as their first packet arrives, so a flow's id in the
whole capture is one more than the number of flows, in all shards, that began at an earlier
frame (a frame belongs to one flow). Each shard notes the first frame of every one of its flows,
kept by the report or not (`Engine.first_frames`).

Quota: each shard keeps at most `Limits.max_report_flows` of its own flows (half healthy, half
problem flows, first finished first), which includes every flow the whole capture would keep.
The merge goes through them in the order they were finished in the whole capture
(`Engine._finish_key`: the record being read, then the order within it) and keeps as many of
each kind as one process would. That order is exact, also when closed flows are finalised
early (`max_closed_flows` is kept per bucket of flows, and a shard holds whole buckets), while
the flow table's limit on all flows (`max_flows`) is not reached; when it is, a shard evicts
flows at other records than one process would, and the flows at the boundary of the quota can
differ.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from tcpdiag.errors import CaptureError

if TYPE_CHECKING:
    from tcpdiag.engine import PartialCapture
    from tcpdiag.findings.context import CaptureContext
    from tcpdiag.result import FlowResult
    from tcpdiag.store import FlowStore

# (where the flow was finished, the order there, shard, position in that shard's flows)
FinishRecord = tuple[int, int, int, int]


class Numbering:
    """Flow ids of the whole capture from each shard's first frames: a flow's id is one more
    than the number of flows, of all shards, that began before it."""

    def __init__(self, first_frames: Sequence[Sequence[int]]) -> None:
        # All shards' first frames in one sorted list: one search per flow (the merge numbers
        # every flow, in the parent, while no worker runs). A list, not an array: `bisect` on
        # an array makes an int object at every step, ~4,700 instructions a search instead of
        # ~600 (the merge holds a tuple per flow already, so the list is of the same order).
        self._sorted = sorted(itertools.chain.from_iterable(first_frames))

    def of(self, first_frame: int) -> int:
        return 1 + bisect.bisect_left(self._sorted, first_frame)


def apply_quota(
    records: Iterable[FinishRecord],
    is_problem: Sequence[Sequence[bool]] | Sequence[bytes],
    limit: int,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """`engine.ReportQuota` over the whole capture: (shard, position) of the flows kept, in the
    order finished, and of those released. `is_problem[shard][position]` is true when the
    quota counted that flow as a problem flow."""
    problems_left = limit - limit // 2
    healthy_left = limit // 2
    kept: list[tuple[int, int]] = []
    released: list[tuple[int, int]] = []
    for _, _, index, position in sorted(records):
        if is_problem[index][position]:
            keep = problems_left > 0
            problems_left -= keep
        else:
            keep = healthy_left > 0
            healthy_left -= keep
        (kept if keep else released).append((index, position))
    return kept, released


def check_same_reading(parts: Sequence[PartialCapture]) -> None:
    """Raise CaptureError unless every shard read the same packets (the file did not change
    between the reads)."""
    base = parts[0]
    for part in parts[1:]:
        if (part.packets, part.first_ns, part.last_ns) != (
            base.packets,
            base.first_ns,
            base.last_ns,
        ):
            raise CaptureError(
                f"{base.path}: the capture changed while it was being read "
                f"({base.packets:,} packets in one read, {part.packets:,} in another)"
            )


def merged_partial(
    parts: Sequence[PartialCapture],
    base: PartialCapture,
    flows: list[FlowResult] | FlowStore,
    context: CaptureContext,
    released: int,
    released_names: Counter[str],
) -> PartialCapture:
    """The capture the shards make together: what every shard read (from `base`), the merged
    flows and context, and the flows released by the shards and by the merge's quota."""
    names = Counter(released_names)
    for part in parts:
        names.update(part.released_findings)
    return dataclasses.replace(
        base,
        linktypes=set(base.linktypes),
        flows=flows,
        context=context,
        flows_released=released + sum(part.flows_released for part in parts),
        released_findings=dict(names),
        first_frames=None,
        finish_keys=None,
    )
