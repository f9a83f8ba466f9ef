"""The decoder never raises: every truncation of real and crafted frames, random bytes on every
link type, encapsulation bombs in bounded time; and on the public captures it finds the TCP
frames tshark finds."""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag.capture import open_capture
from tcpdiag.decode import Decoder
from tcpdiag.model import IcmpError, RawPacket, Segment
from tests.capture_files import BAD_TCP_HEADERS, PUBLIC

LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147]


@functools.cache
def _frames() -> list[tuple[int, bytes]]:
    import scapy.all as sc

    tcp = (
        sc.TCP(
            flags="S",
            options=[
                ("MSS", 1460),
                ("WScale", 7),
                ("SAckOK", b""),
                ("Timestamp", (1, 2)),
                ("SAck", (1, 2)),
            ],
        )
        / b"payload"
    )
    syn = bytes(sc.IP() / sc.TCP(flags="S"))
    return [
        (1, bytes(sc.Ether() / sc.IP(options=[sc.IPOption_NOP()] * 4) / tcp)),
        (
            1,
            bytes(
                sc.Ether() / sc.Dot1AD() / sc.Dot1Q() / sc.IPv6() / sc.IPv6ExtHdrHopByHop() / tcp
            ),
        ),
        (1, bytes(sc.Ether() / sc.IP() / sc.ICMP(type=3) / syn)),
        (1, bytes(sc.Ether() / sc.IPv6() / sc.ICMPv6DestUnreach() / sc.IPv6() / sc.TCP())),
        (1, bytes(sc.Ether() / sc.ARP())),
        (113, bytes(sc.CookedLinux(proto=0x0800) / sc.IP() / tcp)),
        (276, bytes(sc.CookedLinuxV2(proto=0x86DD) / sc.IPv6() / sc.IPv6ExtHdrFragment() / tcp)),
        (0, bytes(sc.Loopback(type=2) / sc.IP() / tcp)),
        (101, bytes(sc.IPv6() / sc.IPv6ExtHdrRouting() / tcp)),
    ]


def test_every_truncation_of_every_frame() -> None:
    dec = Decoder()
    for linktype, frame in _frames():
        full = dec.decode(RawPacket(1, 0, linktype, frame, len(frame), 0))
        assert full is not None
        for cut in range(len(frame)):
            # Cut by the snap length (orig_len says more) and cut on the wire (orig_len equal).
            for orig in (len(frame), cut):
                rec = dec.decode(RawPacket(1, 0, linktype, frame[:cut], orig, 0))
                assert rec is None or type(rec) is type(full)
    assert dec.stats.truncated > 0


@settings(max_examples=2000, deadline=None)
@given(linktype=st.sampled_from(LINKTYPES), data=st.binary(max_size=200), orig=st.integers(0, 400))
def test_random_bytes_never_raise(linktype: int, data: bytes, orig: int) -> None:
    Decoder().decode(RawPacket(1, 0, linktype, data, orig, 0))


@settings(max_examples=1000, deadline=None)
@given(data=st.data())
def test_mutated_frames_never_raise(data: Any) -> None:
    linktype, frame = data.draw(st.sampled_from(_frames()))
    buf = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    Decoder().decode(RawPacket(1, 0, linktype, bytes(buf), len(buf), 0))


@pytest.mark.parametrize(
    ("linktype", "data"),
    [
        (1, b"\x02" * 12 + b"\x81\x00" + b"\x00\x01\x81\x00" * 1000 + b"\x00\x01\x08\x00"),
        (1, b"\x02" * 12 + b"\x88\x47" + b"\x00\x00\x00\x40" * 5000),
        (229, b"\x60" + b"\0" * 3 + b"\xff\xff\x3c\x40" + b"\0" * 32 + b"\x3c\x00" + b"\0" * 6000),
        (228, b"\x45\x00\x00\x3c" + b"\0" * 5 + b"\x04" + b"\0" * 10 + b"\x45" * 4000),  # IP-in-IP
    ],
)
def test_encapsulation_bombs_are_fast(linktype: int, data: bytes) -> None:
    dec = Decoder()
    start = time.perf_counter()
    for _ in range(100):
        assert dec.decode(RawPacket(1, 0, linktype, data, len(data), 0)) is None
    assert (time.perf_counter() - start) / 100 < 0.001


def _facts() -> dict[str, Any]:
    if not PUBLIC.is_dir():
        return {}
    files: dict[str, Any] = json.loads((PUBLIC / "facts.json").read_text())["files"]
    return {n: f for n, f in files.items() if f["packets"]}


FACTS = _facts()


@pytest.mark.skipif(not FACTS, reason="shared/captures/public is not beside the repo")
@pytest.mark.parametrize("name", sorted(FACTS))
def test_public_captures_tcp_frames_equal_tshark(name: str) -> None:
    facts = FACTS[name]
    dec = Decoder()
    segments = ipv6 = icmp = 0
    with open_capture(PUBLIC / name) as cap:
        for raw in cap:
            rec = dec.decode(raw)
            if type(rec) is Segment:
                segments += 1
                ipv6 += rec.ip_version == 6
            elif type(rec) is IcmpError:
                icmp += 1
    bad = BAD_TCP_HEADERS.get(name, 0)
    assert segments == facts["tshark_counts"]["tcp"] - bad
    assert dec.stats.bad_tcp_header == bad
    assert ipv6 == facts["ipv6_tcp_frames"]
    assert icmp == facts["icmp_embedded_tcp_frames"]
    assert dec.stats.packets == facts["packets"]
    assert dec.stats.vlan_tagged == facts["vlan_tagged_frames"]
