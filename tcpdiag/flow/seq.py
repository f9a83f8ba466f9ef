"""Modulo-2**32 sequence-number arithmetic: the only place that knows TCP sequence numbers wrap.

Everything else in tcpdiag compares sequence numbers through these helpers, or works on
unwrapped 64-bit "stream offsets" produced by `unwrap`. A raw `<` between two 32-bit sequence
numbers anywhere else is a bug (it breaks near 2**32).
"""

from __future__ import annotations

from typing import Final

# `i64`: compiled, a 64-bit C integer (plain `int` in Python); every value here is a 32-bit
# sequence number or a 64-bit stream offset (docs/internals.md, flow/).
from mypy_extensions import i64

MOD: Final = 1 << 32
MASK: Final = MOD - 1
HALF: Final = 1 << 31


def seq_add(a: i64, n: i64) -> i64:
    """a + n, wrapped to 32 bits."""
    return (a + n) & MASK


def seq_diff(a: i64, b: i64) -> i64:
    """Signed distance a - b in sequence space, in [-2**31, 2**31)."""
    return ((a - b + HALF) & MASK) - HALF


def seq_lt(a: i64, b: i64) -> bool:
    return ((a - b + HALF) & MASK) < HALF


def seq_le(a: i64, b: i64) -> bool:
    return ((a - b + HALF) & MASK) <= HALF


def seq_gt(a: i64, b: i64) -> bool:
    return ((a - b + HALF) & MASK) > HALF


def seq_ge(a: i64, b: i64) -> bool:
    return ((a - b + HALF) & MASK) >= HALF


def unwrap(raw: i64, ref_raw: i64, ref_abs: i64) -> i64:
    """Unwrapped (64-bit) position of `raw`, given that `ref_raw` sits at `ref_abs`.

    Valid while the two are less than 2**31 apart, which holds for any segment of a live
    connection relative to the last one seen (windows are at most 2**30).
    """
    return ref_abs + (((raw - ref_raw + HALF) & MASK) - HALF)
