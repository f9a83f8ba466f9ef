"""Queues kept per bucket of flows, each with its own share of a limit.

The flow table keeps its closed flows waiting for late packets, and the tombs of finished flows,
in first-in-first-out queues with a limit (`Limits.max_closed_flows`, and four times that for
tombs). One queue for the whole capture would make which flow is dropped first depend on every
other flow of the capture, so a process following a shard of the flows (`split.py`, Dask) would
drop other flows than one process following all of them. Here every bucket of flows
(`model.bucket_of`, FLOW_BUCKETS of them) has its own queue and an equal share of the limit,
rounded up: a shard is a set of whole buckets (`engine.shard_of`), so its queues hold and drop
exactly the flows they would in one process.

Rounding up, all the queues together may hold up to FLOW_BUCKETS - 1 entries more than the
limit; a bucket reaches its share a little before all reach theirs (the flows spread evenly
over the buckets, so with the default 4,096 closed flows, ~64 per bucket, the first early
drops come when ~3,500 are waiting).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from tcpdiag.model import FLOW_BUCKETS

V = TypeVar("V")


class BucketQueues(Generic[V]):
    """FLOW_BUCKETS insertion-ordered queues, each holding at most `share` entries: `times`
    the bucket's share of `limit`."""

    def __init__(self, limit: int, times: int = 1) -> None:
        self.share = max(1, -(-limit // FLOW_BUCKETS)) * times
        self.queues: list[OrderedDict[Hashable, V]] = [OrderedDict() for _ in range(FLOW_BUCKETS)]
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def get(self, bucket: int, key: Hashable) -> V | None:
        return self.queues[bucket].get(key)

    def put(self, bucket: int, key: Hashable, value: V) -> bool:
        """Add (or replace and move last) `key`; True when its bucket is now over its share."""
        queue = self.queues[bucket]
        if key in queue:
            queue.move_to_end(key)
        else:
            self.size += 1
        queue[key] = value
        return len(queue) > self.share

    def touch(self, bucket: int, key: Hashable) -> None:
        """Move `key` last in its queue."""
        self.queues[bucket].move_to_end(key)

    def pop(self, bucket: int, key: Hashable) -> V | None:
        value = self.queues[bucket].pop(key, None)
        if value is not None:
            self.size -= 1
        return value

    def first(self, bucket: int) -> V:
        """The oldest entry of a non-empty bucket."""
        return next(iter(self.queues[bucket].values()))

    def drop_first(self, bucket: int) -> None:
        self.queues[bucket].popitem(last=False)
        self.size -= 1

    def due(self, is_due: Callable[[V], bool]) -> list[V]:
        """The entries at the head of each queue for which `is_due` holds (each queue up to its
        first entry that is not due), bucket by bucket; nothing is removed."""
        out: list[V] = []
        if not self.size:
            return out
        for queue in self.queues:
            for value in queue.values():
                if not is_due(value):
                    break
                out.append(value)
        return out

    def drop_due(self, is_due: Callable[[V], bool]) -> None:
        """Remove the entries `due` gives."""
        if not self.size:
            return
        for queue in self.queues:
            while queue and is_due(next(iter(queue.values()))):
                queue.popitem(last=False)
                self.size -= 1

    def firsts(self) -> Iterator[V]:
        """The oldest entry of each non-empty queue."""
        for queue in self.queues:
            if queue:
                yield next(iter(queue.values()))
