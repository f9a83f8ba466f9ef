"""A connection attempt left unanswered is packed (`flow.table._Embryo.compact`): whatever the
SYNs hold, the packed embryo must give back exactly the segments it was given, and take further
retransmissions as before."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag.flow.table import EMBRYO_MAX_SEGMENTS, _Embryo
from tcpdiag.model import SYN, Segment, TcpOptions, flow_key, tuple_key

U32 = st.integers(0, 0xFFFFFFFF)
MAYBE_U32 = st.none() | st.sampled_from([0, 1, 0xFFFFFFFF]) | U32
ADDRESSES = st.sampled_from(
    [
        (b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"),
        (b"\x0a\x00\x00\x09", b"\x0a\x00\x00\x02"),  # the client second in the flow key
        (b"\x20\x01\x0d\xb8" + bytes(11) + b"\x09", b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01"),
    ]
)
OPTIONS = st.builds(
    TcpOptions,
    mss=st.none() | st.integers(0, 0xFFFF),
    wscale=st.none() | st.integers(0, 14),
    sack_permitted=st.booleans(),
    sack=st.just(()) | st.just(((1, 2),)),  # SACK blocks on a SYN: left whole
    ts_val=MAYBE_U32,
    ts_ecr=MAYBE_U32,
)


@st.composite
def attempts(draw: st.DrawFn) -> list[Segment]:
    (src, dst), sport, dport = draw(ADDRESSES), draw(st.integers(0, 0xFFFF)), 443
    isn, first_flags = draw(U32), SYN | draw(st.sampled_from([0, 0x40, 0x80, 0xC0]))  # ECE/CWR
    time, frame = draw(st.floats(0, 2e9, allow_nan=False)), draw(st.integers(1, 2**40))
    out = []
    for _ in range(draw(st.integers(1, EMBRYO_MAX_SEGMENTS))):
        out.append(
            Segment(frame, time, 4 if len(src) == 4 else 6, src, dst, sport, dport, isn, 0,
                    first_flags, draw(st.integers(0, 0xFFFF)), 0, b"", draw(OPTIONS),
                    draw(st.integers(0, 255)), tuple_key(src, sport, dst, dport))
        )  # fmt: skip
        frame += draw(st.integers(1, 1000))
        time += draw(st.sampled_from([0.0, 1e-6, 1.0, 3.0, 61.0]))
    return out


@settings(max_examples=300, deadline=None)
@given(attempts(), st.integers(1, EMBRYO_MAX_SEGMENTS))
def test_packed_embryos_give_back_their_syns(segs: list[Segment], pack_after: int) -> None:
    first = segs[0]
    key = flow_key(first.src, first.sport, first.dst, first.dport)
    embryo = _Embryo(7, key, first, None)
    for i, seg in enumerate(segs[1:], start=1):
        if i == pack_after:
            embryo.compact()
            assert embryo.segments() == segs[:i]
        assert embryo.takes(seg)
        embryo.add(seg)
        assert embryo.segments() == segs[: i + 1]
    embryo.compact()
    replayed = embryo.segments()
    assert replayed == segs
    assert [type(s.options.sack_permitted) for s in replayed] == [bool] * len(segs)
    assert (embryo.packed is None) == any(s.options.sack for s in segs)
    assert embryo.count() == len(segs) and embryo.end == max(s.time for s in segs)
