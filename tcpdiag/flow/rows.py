"""A flow's timeline rows, packed: the row format and the two writers of a row.

Every packet adds one row to its flow's timeline (`Flow._keep_row`): frame, time, direction,
flags, seq, ack, length, window, packed as `ROW` (35 bytes instead of a tuple of eight objects,
~250 bytes). Writing it is per-packet work, so the writers come from the C module `_rows` when
it is built (`pip install .`; it skips `struct`'s format parsing and the temporary bytes
object) and from `struct` otherwise or under TCPDIAG_PURE=1. Both write the same bytes and
raise `struct.error` on the same values (`tests/unit/test_rows.py`).

Never compiled with mypyc: it only chooses between the two writers.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from types import ModuleType
from typing import Final

from tcpdiag.decode._native import pure_requested

ROW: Final = struct.Struct("<qdBHIIII")
ROW_SIZE: Final = ROW.size

# append_row(buf, frame, time, direction, flags, seq, ack, length, window)
# put_row(buf, offset, frame, time, direction, flags, seq, ack, length, window)
RowWriter = Callable[..., None]

_pack = ROW.pack
_pack_into = ROW.pack_into


def append_row_struct(buf: bytearray, *row: object) -> None:
    buf += _pack(*row)


def put_row_struct(buf: bytearray, at: int, *row: object) -> None:
    _pack_into(buf, at, *row)


def _native() -> ModuleType | None:
    if pure_requested():
        return None
    try:
        from tcpdiag.flow import _rows  # type: ignore[attr-defined]
    except ImportError:
        return None
    if _rows.ROW_SIZE != ROW_SIZE:  # a stale build of another row format
        return None
    return _rows  # type: ignore[no-any-return]


_NATIVE: Final = _native()

append_row: Final[RowWriter] = _NATIVE.append_row if _NATIVE is not None else append_row_struct
put_row: Final[RowWriter] = _NATIVE.put_row if _NATIVE is not None else put_row_struct


def native() -> bool:
    """True when rows are written in C."""
    return _NATIVE is not None
