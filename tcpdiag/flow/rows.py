"""A flow's timeline rows, packed: the row format, the two writers of a row, and the check
for packets the capture recorded twice, which reads the packed rows.

Every packet adds one row to its flow's timeline (`Flow._keep_row`): frame, time, direction,
flags, seq, ack, length, window, two marks that tell a copy from a resend (the IP ID and the SACK
edge, below) and the TTL, packed as `ROW` (40 bytes instead of a tuple of 11 objects, ~300
bytes).
Writing it is per-packet work, so the writers come from the C module `_rows` when it is built
(`pip install .`; it skips `struct`'s format parsing and the temporary bytes object) and from
`struct` otherwise or under TCPDIAG_PURE=1. Both write the same bytes and raise `struct.error`
on the same values (`tests/unit/test_rows.py`). The capture-duplicate check
(`capture_duplicates`, for the retransmission and duplicate-ACK rules) was a flow's costliest
rule on lossy traffic; it too runs in C when built, and gives the Python version's answer
(`tests/unit/test_rows.py`). A flow's RTT samples are doubles appended to a bytearray the same
way (`append_double`), and their median is taken in C too (`median_double`); a TLS stream's label
frames are 64-bit ints the same way (`append_int64`).

Never compiled with mypyc: it only chooses between C and Python.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Final

from tcpdiag._native import pure_requested
from tcpdiag.model import ACK, Segment, TcpOptions

ROW: Final = struct.Struct("<qdBHIIIIHHB")
ROW_SIZE: Final = ROW.size

# The last two fields of a row are not shown; they are there for `capture_duplicates`. A packet
# the capture recorded twice repeats every byte; a sender that sends a packet again repeats its
# TCP fields but numbers the IP packet anew (IPv4's Identification, per connection or per host
# on the usual stacks), and a receiver's duplicate ACKs each carry the SACK block of the latest
# out-of-order segment first (RFC 2018), whose right edge moves with each. Without the two, a
# train of real duplicate ACKs sent back to back read as copies. IPv6 has no IP ID and a stack
# without SACK sends no blocks: there the fields are 0 and the check is what it was. The TTL
# (hop limit), last, is for the reset rules (a reset with another TTL than its sender's other
# packets came from another box); it is not part of the key: the same packets captured on both
# sides of a router are copies too.
SACK_EDGE_MASK: Final = 0xFFFF


def sack_edge(options: TcpOptions) -> int:
    """The low 16 bits of the right edge of the first SACK block of `options`, else 0."""
    sack = options[3]
    return sack[0][1] & SACK_EDGE_MASK if sack else 0


# append_row(buf, segment, direction): the row of a Segment sent in `direction` (0 client, 1
# server), appended; put_slot(buf, slot, segment, direction): written as row `slot` of `buf` (a
# ring; the slot, not its byte offset: a small int, no new object per packet). The writers
# take the Segment itself: passing its seven fields one by one cost a compiled caller a tuple
# read, a reference and an argument slot each, for every packet.
RowWriter = Callable[..., None]

_pack = ROW.pack
_pack_into = ROW.pack_into


def _row_values(seg: Segment, direction: int) -> tuple[object, ...]:
    """The values of the row of `seg` sent in `direction`, in `ROW`'s order."""
    return (
        seg.frame,
        seg.time,
        direction,
        seg.flags,
        seg.seq,
        seg.ack,
        seg.length,
        seg.window,
        seg.ip_id,
        sack_edge(seg.options),
        seg.ttl,
    )


def append_row_struct(buf: bytearray, seg: Segment, direction: int) -> None:
    buf += _pack(*_row_values(seg, direction))


# A flow's RTT samples: doubles in native byte order, appended to a bytearray (`append_double`).
DOUBLE: Final = struct.Struct("=d")
_pack_double = DOUBLE.pack


def append_double_struct(buf: bytearray, value: float) -> None:
    buf += _pack_double(value)


def median(values: Sequence[float]) -> float:
    """`statistics.median` of a non-empty sequence, with the same arithmetic (compiled callers
    do not call into the interpreted `statistics` module)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def median_double_py(buf: bytearray) -> float | None:
    """The median of the doubles `append_double` wrote to `buf` (never None: the C version's
    signature, which leaves samples with a NaN to `median`)."""
    values = array("d")
    values.frombytes(buf)
    return median(values)


# The frames of a TLS stream's first record labels: 64-bit ints the same way (`append_int64`).
INT64: Final = struct.Struct("=q")
_pack_int64 = INT64.pack


def append_int64_struct(buf: bytearray, value: int) -> None:
    buf += _pack_int64(value)


def put_slot_struct(buf: bytearray, slot: int, seg: Segment, direction: int) -> None:
    if slot < 0:  # (pack_into counts a negative offset from the end)
        raise struct.error("slot out of range for a row")
    _pack_into(buf, slot * ROW_SIZE, *_row_values(seg, direction))


# A row from the direction on, but for the TTL: direction, flags, seq, ack, length, window,
# IP ID, SACK edge (the repeat key).
KEY_AT: Final = 16
KEY_END: Final = ROW_SIZE - 1
_HEAD: Final = struct.Struct("<qdB")
_NO_ACK: Final = bytes(4)


def repeat_keys(
    packed: bytes, client_base_known: bool, server_base_known: bool
) -> list[tuple[int, float, int, bytes]]:
    """The rows as (frame, time, direction (0 client, 1 server), key): the key is the packed
    row from the direction on, with the ACK number zeroed where a row shows none (no ACK flag,
    or the peer's first sequence number unknown: `*_base_known`). Two keys are equal exactly
    when the two rows of `flow.timeline_rows` have the same sender, flags, seq, ack, length
    and window (relative numbers and window scaling are one-to-one within a direction) and the
    two packets the same IP ID and SACK edge. (A
    bytes key hashes once; a tuple of six numbers, every time it is looked up.)"""
    known = (client_base_known, server_base_known)
    out: list[tuple[int, float, int, bytes]] = []
    for at in range(0, len(packed) - ROW_SIZE + 1, ROW_SIZE):
        frame, time, d = _HEAD.unpack_from(packed, at)
        key = packed[at + KEY_AT : at + KEY_END]
        if not (key[1] & ACK and known[1 - d]) and key[7:11] != _NO_ACK:
            key = key[:7] + _NO_ACK + key[11:]
        out.append((frame, time, d, key))
    return out


def capture_duplicates(
    packed: bytes,
    client_base_known: bool,
    server_base_known: bool,
    window: float,
    resolution: float,
    min_replayed: int,
    native: bool = True,
) -> tuple[set[int], float | None]:
    """Frames of the packed rows that are copies of an earlier packet of the same side made by
    the capture, and the fixed delay of a replayed copy of the conversation (or None). Two
    signatures (`findings/tcp_rules.py` says why): a row repeating the previous row of the
    same side exactly (same key) less than `window` seconds later; or rows of both sides
    repeating earlier ones at one time offset, counted in buckets of `resolution` seconds, at
    least `min_replayed` of them in the most common bucket and its two neighbours.

    In C when the module is built (`native=False`: this Python, which the tests compare)."""
    args = (packed, client_base_known, server_base_known, window, resolution, min_replayed)
    if native and _NATIVE is not None:
        try:
            frames, found_delay = _NATIVE.capture_duplicates(*args)
            return set(frames), found_delay
        except OverflowError:  # offsets beyond 64 bits, which timestamps never reach
            pass
    dups: set[int] = set()
    # per sender (0 client, 1 server): the key and time of its previous packet
    last_key: list[bytes] = [b"", b""]
    last_time = [0.0, 0.0]
    seen: dict[bytes, float] = {}
    offsets: dict[int, list[tuple[int, int]]] = {}
    for frame, time, sender, key in repeat_keys(packed, client_base_known, server_base_known):
        if last_key[sender] == key and 0 <= time - last_time[sender] < window:
            dups.add(frame)
        elif key in seen:
            bucket = round((time - seen[key]) / resolution)
            offsets.setdefault(bucket, []).append((sender, frame))
        seen[key] = time
        last_key[sender] = key
        last_time[sender] = time
    delay = None
    best = max(offsets.items(), key=lambda kv: len(kv[1]), default=None)
    if best is not None:
        bucket, _ = best
        near = [e for b in (bucket - 1, bucket, bucket + 1) for e in offsets.get(b, [])]
        if len(near) >= min_replayed and len({sender for sender, _ in near}) == 2:
            delay = bucket * resolution
            dups.update(frame for _, frame in near)
    return dups, delay


def _native() -> ModuleType | None:
    if pure_requested():
        return None
    try:
        from tcpdiag.flow import _rows  # type: ignore[attr-defined]
    except ImportError:
        return None
    if _rows.ROW_SIZE != ROW_SIZE or not hasattr(_rows, "put_slot"):  # a stale build
        return None
    return _rows  # type: ignore[no-any-return]


_NATIVE: Final = _native()

append_row: Final[RowWriter] = _NATIVE.append_row if _NATIVE is not None else append_row_struct
put_slot: Final[RowWriter] = _NATIVE.put_slot if _NATIVE is not None else put_slot_struct
append_double: Final[Callable[[bytearray, float], None]] = (
    _NATIVE.append_double if _NATIVE is not None else append_double_struct
)
# median_double(buf): the median of a flow's RTT samples (None from C when one is NaN).
median_double: Final[Callable[[bytearray], float | None]] = (
    _NATIVE.median_double if _NATIVE is not None else median_double_py
)
append_int64: Final[Callable[[bytearray, int], None]] = (
    _NATIVE.append_int64 if _NATIVE is not None else append_int64_struct
)


def native() -> bool:
    """True when rows are written in C."""
    return _NATIVE is not None
