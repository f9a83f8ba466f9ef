"""Queues kept per bucket of flows (`flow/buckets.py`) and the bucket of a flow."""

from __future__ import annotations

import zlib

from tcpdiag.engine import shard_of
from tcpdiag.flow.buckets import BucketQueues
from tcpdiag.model import FLOW_BUCKETS, bucket_of, flow_key, packed_key


def test_each_bucket_gets_its_share_of_the_limit_rounded_up() -> None:
    assert BucketQueues(4096).share == 64
    assert BucketQueues(4097).share == 65
    assert BucketQueues(1).share == 1
    assert BucketQueues(130, times=4).share == 12


def test_a_bucket_over_its_share_says_so_and_others_are_unaffected() -> None:
    q: BucketQueues[str] = BucketQueues(2 * FLOW_BUCKETS)  # two per bucket
    assert not q.put(5, "a", "A") and not q.put(5, "b", "B")
    assert not q.put(6, "c", "C")
    assert q.put(5, "d", "D")  # the third in bucket 5
    assert q.first(5) == "A" and len(q) == 4
    q.drop_first(5)
    assert q.first(5) == "B" and len(q) == 3
    assert not q.put(5, "b", "B2")  # replaced, moved last: no new entry
    assert q.first(5) == "D" and len(q) == 3 and q.get(5, "b") == "B2"
    q.touch(5, "d")
    assert q.first(5) == "B2"
    assert q.pop(5, "b") == "B2" and q.pop(5, "b") is None and len(q) == 2
    assert sorted(q.firsts()) == ["C", "D"]


def test_due_entries_are_the_heads_of_each_queue() -> None:
    q: BucketQueues[int] = BucketQueues(10 * FLOW_BUCKETS)
    for key, value in ((1, 5), (2, 50), (3, 6)):
        q.put(0, key, value)
    q.put(9, 4, 7)
    # Bucket 0 stops at its first entry that is not due (50), even though 6 is.
    assert q.due(lambda v: v < 10) == [5, 7]
    q.drop_due(lambda v: v < 10)
    assert len(q) == 2 and q.first(0) == 50 and q.get(9, 4) is None


def test_a_flows_bucket_is_the_crc_of_its_packed_key_and_shards_are_whole_buckets() -> None:
    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    for port in range(1000, 1300):
        key = flow_key(b, 80, a, port)
        packed = packed_key(key)
        assert packed == a + port.to_bytes(2, "big") + b + (80).to_bytes(2, "big")
        bucket = bucket_of(packed)
        assert bucket == zlib.crc32(packed) % FLOW_BUCKETS
        for count in (1, 2, 3, 7, 64):
            assert shard_of(a, port, b, 80, count) == shard_of(b, 80, a, port, count)
            assert shard_of(a, port, b, 80, count) == bucket % count
