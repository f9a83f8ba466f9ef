"""Modulo-2**32 sequence arithmetic, and a flow whose sequence numbers wrap (bad-inputs 34)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpdiag.flow.seq import seq_add, seq_diff, seq_ge, seq_gt, seq_le, seq_lt, unwrap
from tests.craft import Conversation

U32 = st.integers(0, 2**32 - 1)


def test_comparisons_across_the_wrap() -> None:
    assert seq_lt(0xFFFFFFF0, 0x10)
    assert seq_gt(0x10, 0xFFFFFFF0)
    assert seq_le(5, 5) and seq_ge(5, 5)
    assert not seq_lt(5, 5) and not seq_gt(5, 5)
    assert seq_diff(0x10, 0xFFFFFFF0) == 0x20
    assert seq_diff(0xFFFFFFF0, 0x10) == -0x20
    assert seq_add(0xFFFFFFFF, 2) == 1


@given(U32, st.integers(-(2**31) + 1, 2**31 - 1))
def test_diff_inverts_add(a: int, n: int) -> None:
    b = seq_add(a, n)
    assert seq_diff(b, a) == n
    assert seq_gt(b, a) == (n > 0)
    assert seq_lt(b, a) == (n < 0)


@given(U32, st.integers(0, 2**40), st.integers(-(2**30), 2**30))
def test_unwrap(ref_raw: int, ref_abs: int, delta: int) -> None:
    assert unwrap(seq_add(ref_raw, delta), ref_raw, ref_abs) == ref_abs + delta


def _transfer(isn: int) -> Conversation:
    c = Conversation(client_isn=isn).handshake()
    for i in range(800):  # ~1 MB through the wrap for isn near 2**32
        c.send("c", 1300)
        if i % 2:
            c.ack("s")
        if i == 400:
            c.retransmit(c.frame - 2, dt=0.3)
    c.fin("c")
    c.fin("s")
    c.ack("c")
    return c


@pytest.mark.parametrize("isn", [0xFFFFFF00, 0x7FFFFF00])
def test_wrapping_transfer_matches_control(isn: int) -> None:
    control = _transfer(1000).flow()
    wrapped = _transfer(isn).flow()
    assert wrapped.c.unique_bytes == control.c.unique_bytes == 800 * 1300
    assert wrapped.analysis == control.analysis
    assert wrapped.state == control.state == "SF"
    assert wrapped.history == control.history
    rows, _ = wrapped.timeline()
    assert rows[3].seq == 1  # relative sequence numbers unaffected by the wrap
