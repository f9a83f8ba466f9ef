"""Per-direction stream reassembly that never invents bytes.

Theory of operation: a `Reassembler` turns one direction's segments into the contiguous byte
stream the receiving application saw, expressed in unwrapped stream offsets (0 = first byte
after the SYN, or the first sequence number seen without a SYN; wrap-around is handled by the
caller through `seq.py`). It keeps:

* `next`: every byte below this offset has been delivered (or reported as a gap);
* `pending`: segments beyond `next`, sorted by start, non-overlapping (out-of-order data waiting
  for a hole to fill). Bytes are stored only while the consumer wants data; otherwise only the
  ranges are kept, so holes can still be reported;
* `recent`: the last `RECENT_KEEP` delivered bytes, to notice retransmissions whose bytes differ.

Rules: duplicates are dropped; where a new segment overlaps bytes already seen, the first-seen
bytes win and a difference is reported once per segment as an `overlap-mismatch` event (the
receiver's stack keeps what it received first too, and a later different copy is the suspicious
one: injection or a broken middlebox). A hole is reported as a gap (`on_gap`) when the peer's ACK
moves past it (the receiver got bytes the capture missed) or when the direction ends. Bytes that
were on the wire but cut by the snap length are holes too. When buffered out-of-order bytes exceed
`limit`, a `buffer-cap` event is recorded and the oldest hole is declared a gap so buffering stays
bounded.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable
from typing import Protocol

RECENT_KEEP = 64 * 1024

EventSink = Callable[[str, int, float, dict[str, object]], None]


class StreamConsumer(Protocol):
    """Receives one connection's reassembled bytes (see docs/internals.md)."""

    wants_data: bool

    def on_data(self, direction: int, offset: int, data: bytes, frame: int, time: float) -> None:
        """Contiguous bytes at stream `offset` of `direction`, first captured in `frame`."""

    def on_gap(self, direction: int, offset: int, length: int, frame: int) -> None:
        """`length` bytes at `offset` were never captured."""

    def on_end(self, direction: int, how: str, frame: int, time: float) -> None:
        """The direction ended: how is "fin", "rst" or "eof"."""


class Reassembler:
    """One direction's reassembly state. See the module docstring."""

    __slots__ = (
        "buffered",
        "cap_hits",
        "consumer",
        "direction",
        "ended",
        "gap_bytes",
        "gaps",
        "limit",
        "next",
        "on_event",
        "overlaps",
        "pending",
        "recent",
        "recent_start",
        "storing",
    )

    def __init__(
        self,
        direction: int,
        consumer: StreamConsumer | None,
        limit: int,
        on_event: EventSink | None = None,
    ) -> None:
        self.direction = direction
        self.consumer = consumer
        self.storing = consumer is not None and consumer.wants_data
        self.limit = limit
        self.on_event = on_event
        self.next = 0
        # [start, end, data | None, frame, time, missing]
        self.pending: list[list[object]] = []
        self.buffered = 0
        self.recent = bytearray()
        self.recent_start = 0
        self.gaps = 0
        self.gap_bytes = 0
        self.overlaps = 0
        self.cap_hits = 0
        self.ended = False

    # -- input ------------------------------------------------------------------------------

    def segment(self, start: int, data: bytes, wire_len: int, frame: int, time: float) -> None:
        """A segment carrying `wire_len` payload bytes at `start`, `data` of them captured."""
        if self.ended or wire_len <= 0:
            return
        if self.storing and not self._consumer_wants():
            self._stop_storing()
        cap = len(data)
        if cap > wire_len:
            data = data[:wire_len]
            cap = wire_len
        if cap < wire_len:
            # The tail was on the wire but not captured: it is a hole unless bytes arrive later.
            self._add(start + cap, start + wire_len, None, frame, time, missing=True)
            if cap == 0:
                return
        self._add(start, start + cap, data if self.storing else None, frame, time, missing=False)

    def ack(self, ack_off: int, frame: int) -> None:
        """The peer acknowledged every byte below `ack_off`: holes below it are gaps."""
        if self.ended:
            return
        while ack_off > self.next:
            if self.pending:
                start = self.pending[0][0]
                assert isinstance(start, int)
                end = min(start, ack_off)
            else:
                end = ack_off
            if end > self.next:
                self._gap(self.next, end - self.next, frame)
                self.next = end
            self._drain()

    def end(self, how: str, frame: int, time: float) -> None:
        """The direction is over: report remaining holes, deliver what is buffered, notify."""
        if self.ended:
            return
        while self.pending:
            start = self.pending[0][0]
            assert isinstance(start, int)
            if start > self.next:
                self._gap(self.next, start - self.next, frame)
                self.next = start
            self._drain()
        self.ended = True
        self.recent = bytearray()
        consumer = self.consumer
        if consumer is not None:
            consumer.on_end(self.direction, how, frame, time)

    # -- internals --------------------------------------------------------------------------

    def _consumer_wants(self) -> bool:
        c = self.consumer
        return c is not None and bool(c.wants_data)

    def _stop_storing(self) -> None:
        self.storing = False
        self.recent = bytearray()
        for entry in self.pending:
            if entry[2] is not None:
                entry[2] = None
        self.buffered = 0

    def _event(self, kind: str, frame: int, time: float, **details: object) -> None:
        if self.on_event is not None:
            self.on_event(kind, frame, time, details)

    def _gap(self, offset: int, length: int, frame: int) -> None:
        if length <= 0:
            return
        self.gaps += 1
        self.gap_bytes += length
        self._event("gap", frame, 0.0, offset=offset, length=length)
        if self.consumer is not None and self.storing:
            self.consumer.on_gap(self.direction, offset, length, frame)
        if self.recent:
            self.recent = bytearray()
        self.recent_start = offset + length

    def _check_recent(self, start: int, end: int, data: bytes, frame: int, time: float) -> bool:
        """Compare a segment's bytes that fall in already-delivered space with `recent`."""
        r0 = self.recent_start
        r1 = r0 + len(self.recent)
        lo = max(start, r0)
        hi = min(end, r1, self.next)
        if lo >= hi:
            return False
        if bytes(self.recent[lo - r0 : hi - r0]) != data[lo - start : hi - start]:
            self.overlaps += 1
            self._event("overlap-mismatch", frame, time, offset=lo, length=hi - lo)
            return True
        return False

    def _add(
        self, start: int, end: int, data: bytes | None, frame: int, time: float, missing: bool
    ) -> None:
        nxt = self.next
        if end <= nxt:
            if data is not None and self.recent:
                self._check_recent(start, end, data, frame, time)
            return
        if start < nxt:
            if data is not None:
                if self.recent:
                    self._check_recent(start, end, data, frame, time)
                data = data[nxt - start :]
            start = nxt
        if start == nxt and not self.pending:
            if not missing:
                self._deliver(start, end, data, frame, time)
                return
        self._insert(start, end, data, frame, time, missing)
        self._drain()
        if self.buffered > self.limit:
            self._enforce_cap(frame, time)

    def _insert(
        self, start: int, end: int, data: bytes | None, frame: int, time: float, missing: bool
    ) -> None:
        """Insert [start, end) into pending, keeping only the parts not already pending."""
        mismatch = False
        pos = start
        pieces: list[tuple[int, int]] = []
        for entry in list(self.pending):
            e0, e1 = entry[0], entry[1]
            assert isinstance(e0, int) and isinstance(e1, int)
            if e1 <= pos:
                continue
            if e0 >= end:
                break
            if e0 > pos:
                pieces.append((pos, e0))
            # overlap [max(pos,e0), min(end,e1))
            lo, hi = max(pos, e0), min(end, e1)
            edata = entry[2]
            if data is not None and isinstance(edata, bytes | bytearray) and not mismatch:
                if edata[lo - e0 : hi - e0] != data[lo - start : hi - start]:
                    mismatch = True
            if missing is False and entry[5] is True:
                # bytes now captured where only a snap-length hole was known: fill it
                entry_start = lo
                pieces.append((entry_start, hi))
                self._shrink_missing(entry, lo, hi)
            pos = max(pos, e1)
            if pos >= end:
                break
        if pos < end:
            pieces.append((pos, end))
        if mismatch:
            self.overlaps += 1
            self._event("overlap-mismatch", frame, time, offset=start, length=end - start)
        for p0, p1 in pieces:
            chunk = data[p0 - start : p1 - start] if data is not None else None
            insort(self.pending, [p0, p1, chunk, frame, time, missing])
            if chunk is not None:
                self.buffered += len(chunk)

    def _shrink_missing(self, entry: list[object], lo: int, hi: int) -> None:
        e0, e1 = entry[0], entry[1]
        assert isinstance(e0, int) and isinstance(e1, int)
        self.pending.remove(entry)
        if e0 < lo:
            insort(self.pending, [e0, lo, None, entry[3], entry[4], True])
        if hi < e1:
            insort(self.pending, [hi, e1, None, entry[3], entry[4], True])

    def _drain(self) -> None:
        pending = self.pending
        while pending:
            entry = pending[0]
            e0, e1 = entry[0], entry[1]
            assert isinstance(e0, int) and isinstance(e1, int)
            if e0 > self.next:
                return
            pending.pop(0)
            data = entry[2]
            if isinstance(data, bytes | bytearray):
                self.buffered -= len(data)
            if e1 <= self.next:
                continue
            if e0 < self.next:
                if isinstance(data, bytes | bytearray):
                    data = data[self.next - e0 :]
                e0 = self.next
            frame = entry[3]
            time = entry[4]
            assert isinstance(frame, int) and isinstance(time, float)
            if entry[5]:
                self._gap(e0, e1 - e0, frame)
                self.next = e1
            else:
                self._deliver(e0, e1, data if isinstance(data, bytes) else None, frame, time)

    def _deliver(self, start: int, end: int, data: bytes | None, frame: int, time: float) -> None:
        self.next = end
        if data is None or not self.storing:
            return
        consumer = self.consumer
        if consumer is None or not consumer.wants_data:
            self._stop_storing()
            return
        recent = self.recent
        if not recent:
            self.recent_start = start
        recent += data
        if len(recent) > 2 * RECENT_KEEP:
            drop = len(recent) - RECENT_KEEP
            del recent[:drop]
            self.recent_start += drop
        consumer.on_data(self.direction, start, data, frame, time)

    def _enforce_cap(self, frame: int, time: float) -> None:
        self.cap_hits += 1
        self._event("buffer-cap", frame, time, buffered=self.buffered, limit=self.limit)
        target = self.limit // 2
        while self.pending and self.buffered > target:
            start = self.pending[0][0]
            assert isinstance(start, int)
            if start > self.next:
                self._gap(self.next, start - self.next, frame)
                self.next = start
            self._drain()
