"""A connection attempt left unanswered is packed (`flow.table._Embryo.compact`): whatever the
SYNs hold, the packed embryo must give back exactly the segments it was given, and take further
retransmissions as before."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag.flow import table
from tcpdiag.flow.table import EMBRYO_MAX_SEGMENTS, _Embryo
from tcpdiag.model import SYN, FlowKey, Segment, TcpOptions, flow_key, tuple_key

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
                    draw(st.integers(0, 255)), tuple_key(src, sport, dst, dport),
                    draw(st.integers(0, 0xFFFF)) if len(src) == 4 else 0)
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
    assert all(type(s) is Segment and type(s.options) is TcpOptions for s in replayed)
    assert [type(s.options.sack_permitted) for s in replayed] == [bool] * len(segs)
    assert (embryo.packed is None) == any(s.options.sack for s in segs)
    assert embryo.count() == len(segs) and embryo.end == max(s.time for s in segs)


# -- `_pack_syn` against its definition -----------------------------------------------------------
# A SYN is packed exactly when the Segment its record stands for, made with the NamedTuple
# constructors, equals it. `_pack_syn` compares plain tuples instead of making that Segment; this
# is the definition it must agree with, on SYNs as the decoders make them and on odd hand-made
# ones (an int time, no tuple key, a payload or SACK blocks, values out of their fields' range).


def _by_definition(seg: Segment, key: FlowKey) -> bytes | None:
    o = seg.options
    if seg.payload or seg.length or o.sack or type(o.sack_permitted) is not bool:
        return None
    if (seg.src, seg.sport) == key[0]:
        bits = 0
    elif (seg.src, seg.sport) == key[1]:
        bits = table._SYN_FROM_SECOND
    else:
        return None
    bits |= (
        (table._SYN_MSS if o.mss is not None else 0)
        | (table._SYN_WSCALE if o.wscale is not None else 0)
        | (table._SYN_SACK_PERMITTED if o.sack_permitted else 0)
        | (table._SYN_TS_VAL if o.ts_val is not None else 0)
        | (table._SYN_TS_ECR if o.ts_ecr is not None else 0)
    )
    try:
        record = table._SYN_RECORD.pack(
            seg.frame, seg.time, seg.seq, seg.ack, seg.flags, seg.window, o.mss or 0, seg.ttl,
            seg.ip_version, o.wscale or 0, bits, o.ts_val or 0, o.ts_ecr or 0, seg.ip_id,
        )  # fmt: skip
    except struct.error:
        return None
    (frame, time, seq, ack, flags, window, mss, ttl, version, wscale, bits, ts_val, ts_ecr,
     ip_id) = table._SYN_RECORD.unpack(record)  # fmt: skip
    (src, sport), (dst, dport) = (key[1], key[0]) if bits & table._SYN_FROM_SECOND else key
    options = TcpOptions(
        mss if bits & table._SYN_MSS else None,
        wscale if bits & table._SYN_WSCALE else None,
        bool(bits & table._SYN_SACK_PERMITTED),
        (),
        ts_val if bits & table._SYN_TS_VAL else None,
        ts_ecr if bits & table._SYN_TS_ECR else None,
    )
    back = Segment(
        frame, time, version, src, dst, sport, dport, seq, ack, flags, window, 0, b"", options,
        ttl, tuple_key(src, sport, dst, dport), ip_id,
    )  # fmt: skip
    return record if back == seg else None


ODD_OPTIONS = st.builds(
    TcpOptions,
    mss=st.none() | st.integers(-1, 0x10000),
    wscale=st.none() | st.integers(0, 256),
    sack_permitted=st.booleans(),
    sack=st.sampled_from([(), ((1, 2),)]),
    ts_val=st.none() | st.integers(-1, 2**32),
    ts_ecr=MAYBE_U32,
)


@st.composite
def odd_syns(draw: st.DrawFn) -> tuple[Segment, FlowKey]:
    (src, dst), sport = draw(ADDRESSES), draw(st.integers(0, 0xFFFF))
    key = flow_key(src, sport, dst, 443)
    if draw(st.booleans()):  # sent by the other side, or by a stranger to the key
        src, dst = (dst, src) if draw(st.booleans()) else (b"\x0a\x00\x00\x63", dst)
    time: float = draw(st.floats(0, 2e9, allow_nan=False) | st.integers(0, 2**60))
    seg = Segment(
        draw(st.integers(0, 2**64)), time, draw(st.sampled_from([4, 6, 256])), src, dst, sport,
        443, draw(U32), draw(st.integers(0, 2**32)), draw(st.sampled_from([SYN, SYN | 0x40])),
        draw(st.integers(0, 0x10000)), draw(st.sampled_from([0, 0, 1])),
        draw(st.sampled_from([b"", b"", b"x"])), draw(ODD_OPTIONS), draw(st.integers(0, 256)),
        draw(st.sampled_from([tuple_key(src, sport, dst, 443), tuple_key(src, sport, dst, 443),
                              b""])),
        draw(st.sampled_from([0, 0x1234, 0xFFFF, -1, 0x10000])),
    )  # fmt: skip
    return seg, key


@settings(max_examples=500, deadline=None)
@given(odd_syns())
def test_a_syn_is_packed_exactly_when_its_record_gives_it_back(
    case: tuple[Segment, FlowKey],
) -> None:
    seg, key = case
    record = table._pack_syn(seg, key)
    assert record == _by_definition(seg, key)
    if record is not None:
        back = table._unpack_syn(record, 0, key)
        assert back == seg
        assert type(back) is Segment and type(back.options) is TcpOptions
