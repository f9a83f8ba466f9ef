"""Per-direction stream reassembly that never invents bytes.

Theory of operation: a `Reassembler` turns one direction's segments into the contiguous byte
stream the receiving application saw, expressed in unwrapped stream offsets (0 = first byte
after the SYN, or the first sequence number seen without a SYN; wrap-around is handled by the
caller through `seq.py`). It keeps:

* `next`: every byte below this offset has been delivered (or reported as a gap);
* `pending`: segments beyond `next`, sorted by start, non-overlapping (out-of-order data waiting
  for a hole to fill). Bytes are stored only while the consumer wants data; otherwise only the
  ranges are kept, so holes can still be reported;
* `recent`: about the last `RECENT_KEEP` delivered bytes (contiguous runs, split by gaps), to
  notice retransmissions whose bytes differ. A run holds the delivered payloads themselves
  (immutable bytes, no copy), small ones coalesced into one buffer so that a stream of tiny
  segments cannot make thousands of objects.

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

from bisect import bisect_left, insort
from collections.abc import Callable
from typing import Final, Protocol

# 16 KB: retransmissions resend the oldest unacknowledged data, mostly within the last few
# segments; a connection idle for minutes keeps up to twice this per direction.
RECENT_KEEP: Final = 16 * 1024
# Pending ranges kept per direction; beyond this the oldest hole is declared a gap (like the
# byte cap), so a hole at the start of a long one-sided capture cannot grow the list forever.
MAX_PIECES = 4096

# Delivered payloads shorter than this are copied into a run's last buffer rather than kept as
# objects of their own: a run then holds at most ~2 * RECENT_KEEP / SMALL_CHUNK pieces.
SMALL_CHUNK: Final = 256
# ... a buffer of at most this many bytes, then a new one: trimming a run frees whole pieces
# only, and a connection of tiny segments only (a shell, a chat, a cache protocol) would
# otherwise grow one buffer with every byte it ever delivered.
COALESCE_MAX: Final = 4096

# (direction, kind, frame, time, details): one sink may serve both directions of a flow
EventSink = Callable[[int, str, int, float, dict[str, object]], None]


class StreamConsumer(Protocol):
    """Receives one connection's reassembled bytes (see docs/internals.md). A consumer may also
    have a `spent` attribute: true once nothing more can come of it, whatever it is given (the
    flow then forgets it)."""

    wants_data: bool

    def on_data(self, direction: int, offset: int, data: bytes, frame: int, time: float) -> None:
        """Contiguous bytes at stream `offset` of `direction`, first captured in `frame`."""

    def on_gap(self, direction: int, offset: int, length: int, frame: int) -> None:
        """`length` bytes at `offset` were never captured."""

    def on_end(self, direction: int, how: str, frame: int, time: float) -> None:
        """The direction ended: how is "fin", "rst" or "eof"."""


class NativeConsumer:
    """A base for the consumers the compiled reassembler calls directly (`TlsStream`).

    Compiled, the `StreamConsumer` protocol is reached the Python way: a call makes the
    offset, frame and time into new objects at every delivery, and `wants_data` is looked up
    by name at every segment. For a subclass of this class both are C. Any other object with
    the protocol's members works as well, the generic way."""

    wants_data: bool

    def on_data(self, direction: int, offset: int, data: bytes, frame: int, time: float) -> None:
        raise NotImplementedError


class FrozenConsumer(Protocol):
    """A consumer's state packed while its connection is quiet (a consumer's optional `freeze()`
    returns one, or None; see docs/internals.md)."""

    def thaw(self) -> StreamConsumer:
        """The consumer, as it was when frozen."""


def _start(p: _Piece) -> int:
    return p.start


def _plain(p: _Piece) -> bool:
    return p.data is None and not p.missing


class _Piece:
    """A pending range of one direction's stream: bytes (or None when not stored, or when
    `missing`: on the wire but not captured)."""

    __slots__ = ("data", "end", "frame", "missing", "start", "time")

    def __init__(
        self, start: int, end: int, data: bytes | None, frame: int, time: float, missing: bool
    ) -> None:
        self.start = start
        self.end = end
        self.data = data
        self.frame = frame
        self.time = time
        self.missing = missing

    def __lt__(self, other: _Piece) -> bool:
        return self.start < other.start


class _Run:
    """Contiguous delivered bytes [start, start + length): `pieces` in order, of which the
    first `skip` bytes are no longer part of the run (trimmed from the front)."""

    __slots__ = ("length", "pieces", "skip", "start")

    def __init__(self, start: int, data: bytes) -> None:
        self.start = start
        self.length = 0
        self.skip = 0
        self.pieces: list[bytes | bytearray] = []
        self.append(data)

    def append(self, data: bytes) -> None:
        self.length += len(data)
        pieces = self.pieces
        if len(data) >= SMALL_CHUNK:
            pieces.append(data)  # bytes are immutable: keeping the object is keeping a copy
            return
        last = pieces[-1] if pieces else None
        if isinstance(last, bytearray) and len(last) < COALESCE_MAX:
            last.extend(data)
        else:
            pieces.append(bytearray(data))

    def trim_front(self, drop: int) -> None:
        """Forget the first `drop` bytes (fewer than `length`)."""
        self.start += drop
        self.length -= drop
        skip = self.skip + drop
        pieces = self.pieces
        while skip >= len(pieces[0]):
            skip -= len(pieces.pop(0))
        self.skip = skip

    def between(self, lo: int, hi: int) -> bytes:
        """The bytes at run offsets [lo, hi) (0 <= lo < hi <= length)."""
        out: list[bytes] = []
        pos = -self.skip  # run offset of the current piece's first byte
        for piece in self.pieces:
            end = pos + len(piece)
            if end > lo and pos < hi:
                out.append(bytes(piece[max(lo - pos, 0) : min(hi, end) - pos]))
            if end >= hi:
                break
            pos = end
        return b"".join(out)


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
        "recent_size",
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
        self.storing = consumer is not None and bool(consumer.wants_data)
        self.limit = limit
        self.on_event = on_event
        self.next = 0
        self.pending: list[_Piece] = []
        self.buffered = 0
        self.recent: list[_Run] = []  # in stream order
        self.recent_size = 0
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
            # The tail was on the wire but not captured: a hole unless its bytes come later.
            self._add(start + cap, start + wire_len, None, frame, time, True)
            if cap == 0:
                return
        self._add(start, start + cap, data if self.storing else None, frame, time, False)

    def ack(self, ack_off: int, frame: int) -> None:
        """The peer acknowledged every byte below `ack_off`: holes below it are gaps."""
        if self.ended:
            return
        while ack_off > self.next:
            end = min(self.pending[0].start, ack_off) if self.pending else ack_off
            if end > self.next:
                self._gap(self.next, end - self.next, frame)
                self.next = end
            self._drain()

    def end(self, how: str, frame: int, time: float) -> None:
        """The direction is over: report remaining holes, deliver what is buffered, notify."""
        if self.ended:
            return
        while self.pending:
            start = self.pending[0].start
            if start > self.next:
                self._gap(self.next, start - self.next, frame)
                self.next = start
            self._drain()
        self.ended = True
        self.forget_delivered()
        if self.consumer is not None:
            self.consumer.on_end(self.direction, how, frame, time)

    def drop_consumer(self) -> None:
        """The consumer has nothing more to learn: stop storing bytes for it (as `segment`
        does when it stops wanting them) and forget it."""
        if self.storing:
            self._stop_storing()
        self.consumer = None

    def forget_delivered(self) -> None:
        """Drop the copy of delivered bytes kept to compare retransmissions with (`recent`).

        Called when the direction ends, when the connection has closed (what still arrives is
        late retransmissions, and a closed flow lingering for them must cost little memory: a
        busy capture holds thousands) and when it has been idle for a while. Retransmissions
        of the bytes dropped are no longer compared."""
        self.recent = []
        self.recent_size = 0

    # -- internals --------------------------------------------------------------------------

    def _consumer_wants(self) -> bool:
        c = self.consumer
        if isinstance(c, NativeConsumer):
            native: NativeConsumer = c  # (typed so, compiled code reads the field directly)
            return native.wants_data
        return c is not None and bool(c.wants_data)

    def _stop_storing(self) -> None:
        self.storing = False
        self.forget_delivered()
        for piece in self.pending:
            piece.data = None
        self.buffered = 0

    def _event(self, kind: str, frame: int, time: float, **details: object) -> None:
        if self.on_event is not None:
            self.on_event(self.direction, kind, frame, time, details)

    def _gap(self, offset: int, length: int, frame: int) -> None:
        self.gaps += 1
        self.gap_bytes += length
        self._event("gap", frame, 0.0, offset=offset, length=length)
        if self.consumer is not None and self.storing:
            self.consumer.on_gap(self.direction, offset, length, frame)

    def _check_recent(self, start: int, end: int, data: bytes, frame: int, time: float) -> None:
        """Compare the part of a segment that falls in already-delivered space with `recent`."""
        for run in self.recent:
            r0 = run.start
            lo = max(start, r0)
            hi = min(end, r0 + run.length, self.next)
            if lo < hi and run.between(lo - r0, hi - r0) != data[lo - start : hi - start]:
                self.overlaps += 1
                self._event("overlap-mismatch", frame, time, offset=lo, length=hi - lo)
                return

    def _add(
        self, start: int, end: int, data: bytes | None, frame: int, time: float, missing: bool
    ) -> None:
        nxt = self.next
        if start < nxt:
            if data is not None and self.recent:
                self._check_recent(start, end, data, frame, time)
            if end <= nxt:
                return  # duplicate of delivered bytes
            if data is not None:
                data = data[nxt - start :]
            start = nxt
        if start == nxt and not self.pending and not missing:
            self._deliver(start, end, data, frame, time)
            return
        self._insert(start, end, data, frame, time, missing)
        self._drain()
        if self.buffered > self.limit or len(self.pending) > MAX_PIECES:
            self._enforce_cap(frame, time)

    def _insert(
        self, start: int, end: int, data: bytes | None, frame: int, time: float, missing: bool
    ) -> None:
        """Insert [start, end) into pending, keeping only the parts not already pending
        (first-seen bytes win), except that captured bytes replace a snap-length hole."""
        mismatch = False
        pos = start
        pieces: list[tuple[int, int]] = []
        for p in list(self.pending):
            if p.end <= pos:
                continue
            if p.start >= end:
                break
            if p.start > pos:
                pieces.append((pos, p.start))
            lo, hi = max(pos, p.start), min(end, p.end)
            if p.missing and not missing:
                pieces.append((lo, hi))
                self._split_missing(p, lo, hi)
            elif (
                not mismatch
                and data is not None
                and p.data is not None
                and p.data[lo - p.start : hi - p.start] != data[lo - start : hi - start]
            ):
                mismatch = True
            pos = max(pos, p.end)
            if pos >= end:
                break
        if pos < end:
            pieces.append((pos, end))
        if mismatch:
            self.overlaps += 1
            self._event("overlap-mismatch", frame, time, offset=start, length=end - start)
        pending = self.pending
        for p0, p1 in pieces:
            chunk = data[p0 - start : p1 - start] if data is not None else None
            if chunk is None and not missing:
                # ranges without bytes (nobody wants them): extend a touching neighbour
                i = bisect_left(pending, p0, key=_start)
                if i and pending[i - 1].end == p0 and _plain(pending[i - 1]):
                    pending[i - 1].end = p1
                    if i < len(pending) and pending[i].start == p1 and _plain(pending[i]):
                        pending[i - 1].end = pending[i].end
                        del pending[i]
                    continue
                if i < len(pending) and pending[i].start == p1 and _plain(pending[i]):
                    pending[i].start = p0
                    continue
            insort(pending, _Piece(p0, p1, chunk, frame, time, missing))
            if chunk is not None:
                self.buffered += len(chunk)

    def _split_missing(self, p: _Piece, lo: int, hi: int) -> None:
        self.pending.remove(p)
        if p.start < lo:
            insort(self.pending, _Piece(p.start, lo, None, p.frame, p.time, True))
        if hi < p.end:
            insort(self.pending, _Piece(hi, p.end, None, p.frame, p.time, True))

    def _drain(self) -> None:
        pending = self.pending
        while pending and pending[0].start <= self.next:
            p = pending.pop(0)
            data = p.data
            if data is not None:
                self.buffered -= len(data)
            if p.end <= self.next:
                continue
            start = p.start
            if start < self.next:
                if data is not None:
                    data = data[self.next - start :]
                start = self.next
            if p.missing:
                self._gap(start, p.end - start, p.frame)
                self.next = p.end
            else:
                self._deliver(start, p.end, data, p.frame, p.time)

    def _deliver(self, start: int, end: int, data: bytes | None, frame: int, time: float) -> None:
        self.next = end
        if data is None or not self.storing:
            return
        consumer = self.consumer
        if not self._consumer_wants():
            self._stop_storing()
            return
        assert consumer is not None
        recent = self.recent
        if recent and recent[-1].start + recent[-1].length == start:
            recent[-1].append(data)
        else:
            recent.append(_Run(start, data))
        self.recent_size += len(data)
        while self.recent_size > 2 * RECENT_KEEP:
            first = recent[0]
            drop = min(first.length, self.recent_size - RECENT_KEEP)
            if drop == first.length:
                recent.pop(0)
            else:
                first.trim_front(drop)
            self.recent_size -= drop
        if isinstance(consumer, NativeConsumer):
            native: NativeConsumer = consumer  # (typed so, compiled code calls it in C)
            native.on_data(self.direction, start, data, frame, time)
        else:
            consumer.on_data(self.direction, start, data, frame, time)

    def _enforce_cap(self, frame: int, time: float) -> None:
        self.cap_hits += 1
        self._event("buffer-cap", frame, time, buffered=self.buffered, limit=self.limit)
        target = self.limit // 2
        while self.pending and (self.buffered > target or len(self.pending) > MAX_PIECES // 2):
            start = self.pending[0].start
            if start > self.next:
                self._gap(self.next, start - self.next, frame)
                self.next = start
            self._drain()
