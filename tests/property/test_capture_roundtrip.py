"""Writer -> reader is lossless (bad-inputs target H1): generated pcap and pcapng files, both byte
orders, nanosecond and coarser resolutions, several sections, per-interface link types."""

from __future__ import annotations

import io
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag.capture import PcapngWriter, PcapWriter, open_capture

LINKTYPES = st.sampled_from([0, 1, 101, 108, 113, 228, 229, 276, 147])
PAYLOAD = st.binary(max_size=96)
# Resolutions whose round trip is exact for any ns value (ns or finer), and microseconds.
EXACT_RESOLUTIONS = [9, 12, 0x80 | 30, 0x80 | 40]
MICRO = 6
MAX_TS = 10**16  # keeps units of the finest resolution (2^-40 s) inside 64 bits


def _read(content: bytes) -> list[tuple[int, int, int, bytes, int, int]]:
    with open_capture("-", stdin=io.BytesIO(content)) as cap:
        return [tuple(raw) for raw in cap]  # type: ignore[misc]


@settings(max_examples=300, deadline=None)
@given(
    big_endian=st.booleans(),
    nanosecond=st.booleans(),
    linktype=LINKTYPES,
    packets=st.lists(
        st.tuples(st.integers(0, (1 << 32) * 10**9 - 1), PAYLOAD, st.integers(0, 70000)),
        max_size=20,
    ),
)
def test_pcap_round_trip(
    big_endian: bool, nanosecond: bool, linktype: int, packets: list[tuple[int, bytes, int]]
) -> None:
    out = io.BytesIO()
    writer = PcapWriter(out, linktype, nanosecond, big_endian=big_endian)
    expected = []
    for frame, (ts, data, extra) in enumerate(packets, 1):
        ts = ts if nanosecond else ts // 1000 * 1000
        writer.write(ts, data, len(data) + extra)
        expected.append((frame, ts, linktype, data, len(data) + extra, 0))
    assert _read(out.getvalue()) == expected


@dataclass
class Iface:
    linktype: int
    tsresol: int
    offset: int  # seconds


IFACE = st.builds(
    Iface,
    LINKTYPES,
    st.sampled_from([*EXACT_RESOLUTIONS, MICRO]),
    st.integers(-(10**6), 10**6),
)
# A packet: interface choice (an index reduced modulo the section's interfaces), relative
# timestamp, data, extra original length, and whether to write it as a Simple Packet Block.
PACKET = st.tuples(
    st.integers(0, 7), st.integers(0, MAX_TS), PAYLOAD, st.integers(0, 9000), st.booleans()
)
SECTION = st.tuples(
    st.booleans(),
    st.lists(IFACE, min_size=1, max_size=4),
    st.lists(PACKET, max_size=12),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(sections=st.lists(SECTION, min_size=1, max_size=4))
def test_pcapng_round_trip(
    sections: list[tuple[bool, list[Iface], list[tuple[int, int, bytes, int, bool]], bool]],
) -> None:
    out = io.BytesIO()
    writer: PcapngWriter | None = None
    expected = []
    frame = 0
    numbered = 0  # interfaces numbered across the file
    for big_endian, ifaces, packets, custom_block in sections:
        if writer is None:
            writer = PcapngWriter(out, big_endian)
        else:
            writer.new_section(big_endian)
        for iface in ifaces:
            writer.add_interface(iface.linktype, tsresol=iface.tsresol, tsoffset=iface.offset)
        if custom_block:
            writer.write_block(0x00000BAD, b"custom block, skipped by readers")
        for pick, rel, data, extra, simple in packets:
            frame += 1
            orig = len(data) + extra
            if simple:  # SPB: interface 0, no timestamp; snaplen 0, so it holds all the frame
                orig = len(data)
                writer.write_simple(data, orig)
                iface_id, ts = 0, ifaces[0].offset * 10**9
            else:
                iface_id = pick % len(ifaces)
                iface = ifaces[iface_id]
                if iface.tsresol == MICRO:
                    rel = rel // 1000 * 1000
                ts = rel + iface.offset * 10**9
                writer.write(ts, data, iface_id, orig)
            expected.append((frame, ts, ifaces[iface_id].linktype, data, orig, numbered + iface_id))
        numbered += len(ifaces)
    assert _read(out.getvalue()) == expected
