"""The numbers in finding messages (`findings.context`): `units`, `tenths` and `grouped` give the
text of `f"{x:.0f}"`, `f"{x:.1f}"` and `f"{n:,}"` without the format machinery, so they must
give exactly that text, ties, their neighbours and what they leave to the format included."""

from __future__ import annotations

import math
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag.findings.context import fmt_bytes, fmt_duration, grouped, plural, tenths, units

# Ties of both (k + 0.5 and (k + 0.5) / 10), the doubles next to them, and values near the
# limits of the exact paths (2^30 / 10 for tenths, 2^52 for units).
TIES = st.integers(0, 10**6).flatmap(
    lambda k: st.sampled_from([k + 0.5, (k + 0.5) / 10, k / 10, (10 * k + 5) / 100])
)
LIMITS = st.sampled_from([2.0**30 / 10, 2.0**52, 2.0**53, 2.0**30, 1e8, 1e15, 1e300])


def _neighbours(x: float) -> list[float]:
    return [math.nextafter(x, -math.inf), x, math.nextafter(x, math.inf)]


def _any_double(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


FLOATS = (
    st.floats(0, 200, allow_nan=False)
    | st.floats(0, 1e9, allow_nan=False)
    | st.floats(1e-12, 1e-3)
    | TIES
    | LIMITS
    | st.integers(0, 2**64 - 1).map(_any_double)
    | st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, -1.5])
)


@settings(max_examples=3000, deadline=None)
@given(FLOATS)
def test_units_and_tenths_are_the_formats_text(x: float) -> None:
    for y in _neighbours(x) if math.isfinite(x) else [x]:
        assert units(y) == f"{y:.0f}", y
        assert tenths(y) == f"{y:.1f}", y


def test_every_tie_up_to_a_thousand() -> None:
    for k in range(100_000):
        for y in _neighbours(k / 100):
            assert tenths(y) == f"{y:.1f}", y
            assert units(y * 100) == f"{y * 100:.0f}", y


@settings(max_examples=1000, deadline=None)
@given(st.integers(-(10**12), 10**12) | st.integers(-1100, 1100))
def test_grouped_is_the_format_with_commas(n: int) -> None:
    assert grouped(n) == f"{n:,}"


def test_durations_bytes_and_counts_read_as_before() -> None:
    assert [fmt_duration(s) for s in (0.0, 1.7e-5, 0.00125, 0.041, 2.0, 2.05, 300.0)] == [
        "0 µs",
        "17 µs",
        "1.2 ms",
        "41 ms",
        "2.0 s",
        "2.0 s",
        "300 s (5.0 min)",
    ]
    assert [fmt_bytes(n) for n in (1, 78, 999, 1000, 9999, 12345)] == [
        "1 byte",
        "78 bytes",
        "999 bytes",
        "1,000 bytes",
        "9,999 bytes",
        "12.3 KB",
    ]
    assert plural(1, "SYN") == "1 SYN" and plural(1234, "frame") == "1,234 frames"


@settings(max_examples=1000, deadline=None)
@given(st.integers(2, 10**13) | st.integers(9_900, 10_100) | st.integers(9_999_000, 10_001_000))
def test_byte_counts_are_the_formats_text(n: int) -> None:
    if n < 10_000:
        expected = f"{n:,} bytes"
    elif n < 10_000_000:
        expected = f"{n / 1000:.1f} KB"
    else:
        expected = f"{n / 1_000_000:.1f} MB"
    assert fmt_bytes(n) == expected
