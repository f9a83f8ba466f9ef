"""`capture.source.Feed` against the stream it buffers: whatever the chunking and the reads, the
bytes at `pos` are the stream's bytes at `offset`, and `ensure` says whether they exist."""

from __future__ import annotations

import itertools

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tcpdiag.capture.source import Feed


@settings(max_examples=1000, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=400),
    cuts=st.lists(st.integers(0, 400), max_size=12),
    reads=st.lists(st.tuples(st.integers(0, 120), st.integers(0, 120)), max_size=40),
)
@example(  # a bridge, grown before it is used up, then left for its chunk
    data=bytes(range(100)), cuts=[10], reads=[(8, 8), (4, 0), (6, 6), (1, 1), (90, 0)]
)
def test_feed_serves_the_stream(data: bytes, cuts: list[int], reads: list[tuple[int, int]]) -> None:
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)] + [b""]
    feed = Feed(iter(chunks))
    offset = 0
    for want, advance in reads:
        ok = feed.ensure(want)
        assert ok == (offset + want <= len(data))
        assert feed.offset == offset
        assert feed.base + feed.pos == offset
        got = feed.buf[feed.pos : feed.pos + want]
        assert got == data[offset : offset + want][: len(got)]
        if ok:
            assert len(got) == want
        step = min(advance, feed.available())
        feed.pos += step
        offset += step
