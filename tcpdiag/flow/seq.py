"""Modulo-2**32 sequence-number arithmetic: the only place that knows TCP sequence numbers wrap.

Everything else in tcpdiag compares sequence numbers through these helpers, or works on
unwrapped 64-bit "stream offsets" produced by `unwrap`. A raw `<` between two 32-bit sequence
numbers anywhere else is a bug (it breaks near 2**32).
"""

from __future__ import annotations

from typing import Final

MOD: Final = 1 << 32
MASK: Final = MOD - 1
HALF: Final = 1 << 31


def seq_add(a: int, n: int) -> int:
    """a + n, wrapped to 32 bits."""
    return (a + n) & MASK


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b in sequence space, in [-2**31, 2**31)."""
    return ((a - b + HALF) & MASK) - HALF


def seq_lt(a: int, b: int) -> bool:
    return ((a - b + HALF) & MASK) < HALF


def seq_le(a: int, b: int) -> bool:
    return ((a - b + HALF) & MASK) <= HALF


def seq_gt(a: int, b: int) -> bool:
    return ((a - b + HALF) & MASK) > HALF


def seq_ge(a: int, b: int) -> bool:
    return ((a - b + HALF) & MASK) >= HALF


def unwrap(raw: int, ref_raw: int, ref_abs: int) -> int:
    """Unwrapped (64-bit) position of `raw`, given that `ref_raw` sits at `ref_abs`.

    Valid while the two are less than 2**31 apart, which holds for any segment of a live
    connection relative to the last one seen (windows are at most 2**30).
    """
    return ref_abs + (((raw - ref_raw + HALF) & MASK) - HALF)
