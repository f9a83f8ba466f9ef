"""Decoder per link type, with frames built by scapy (imported lazily: it is slow to import)."""

from __future__ import annotations

import struct
from types import ModuleType
from typing import Any

import pytest

from tcpdiag.decode import MAX_LAYERS, Decoder
from tcpdiag.model import RawPacket, Segment

SRC4, DST4 = "192.0.2.1", "198.51.100.7"
SRC6, DST6 = "2001:db8::1", "2001:db8::2"


@pytest.fixture(scope="module")
def sc() -> ModuleType:
    import scapy.all

    return scapy.all


def raw(data: bytes, linktype: int = 1, orig_len: int | None = None) -> RawPacket:
    return RawPacket(7, 1_700_000_000_123_456_789, linktype, data, orig_len or len(data), 0)


def decode(data: bytes, linktype: int = 1, orig_len: int | None = None) -> tuple[Any, Decoder]:
    dec = Decoder()
    return dec.decode(raw(data, linktype, orig_len)), dec


def ip4_tcp(sc: ModuleType, payload: bytes = b"hello") -> Any:
    return (
        sc.IP(src=SRC4, dst=DST4, ttl=61)
        / sc.TCP(sport=40001, dport=443, seq=1000, ack=2000, flags="PA", window=512)
        / payload
    )


def ip6_tcp(sc: ModuleType, payload: bytes = b"hello") -> Any:
    return sc.IPv6(src=SRC6, dst=DST6, hlim=50) / sc.TCP(sport=40001, dport=443, seq=7) / payload


def check4(seg: Any) -> None:
    assert type(seg) is Segment
    assert (seg.ip_version, seg.src, seg.dst) == (
        4,
        bytes([192, 0, 2, 1]),
        bytes([198, 51, 100, 7]),
    )
    assert (seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.window) == (
        40001,
        443,
        1000,
        2000,
        0x18,
        512,
    )
    assert (seg.length, seg.payload, seg.ttl, seg.frame) == (5, b"hello", 61, 7)
    assert seg.time == pytest.approx(1_700_000_000.123456789)


def check6(seg: Any) -> None:
    assert type(seg) is Segment
    assert seg.ip_version == 6
    assert seg.src == bytes.fromhex("20010db8000000000000000000000001")
    assert (seg.sport, seg.dport, seg.seq, seg.payload, seg.length, seg.ttl) == (
        40001,
        443,
        7,
        b"hello",
        5,
        50,
    )


def test_ethernet_ipv4(sc: ModuleType) -> None:
    seg, dec = decode(bytes(sc.Ether() / ip4_tcp(sc)))
    check4(seg)
    assert dec.stats.tcp == 1 and dec.stats.packets == 1


def test_ethernet_ipv6(sc: ModuleType) -> None:
    check6(decode(bytes(sc.Ether() / ip6_tcp(sc)))[0])


def test_ethernet_padding_is_not_payload(sc: ModuleType) -> None:
    frame = bytes(sc.Ether() / ip4_tcp(sc, b"x"))
    assert len(frame) < 60
    seg, _ = decode(frame + b"\0" * (60 - len(frame)))
    assert (seg.length, seg.payload) == (1, b"x")


@pytest.mark.parametrize(
    "tags",
    [
        [(0x8100, 42)],
        [(0x88A8, 10), (0x8100, 20)],
        [(0x9100, 1), (0x8100, 2)],
        [(0x8100, 1)] * MAX_LAYERS,
    ],
)
def test_vlan_and_qinq(sc: ModuleType, tags: list[tuple[int, int]]) -> None:
    inner = bytes(ip4_tcp(sc))
    frame = b"\x02" * 12 + struct.pack("!H", tags[0][0])
    for i, (_, vid) in enumerate(tags):
        nxt = tags[i + 1][0] if i + 1 < len(tags) else 0x0800
        frame += struct.pack("!HH", vid, nxt)
    seg, dec = decode(frame + inner)
    check4(seg)
    assert dec.stats.vlan_tagged == 1


def test_vlan_built_by_scapy(sc: ModuleType) -> None:
    check6(decode(bytes(sc.Ether() / sc.Dot1AD(vlan=10) / sc.Dot1Q(vlan=20) / ip6_tcp(sc)))[0])


def test_too_many_vlan_tags_stop(sc: ModuleType) -> None:
    frame = b"\x02" * 12 + b"\x81\x00" + b"\x00\x01\x81\x00" * 1000 + b"\x00\x01\x08\x00"
    seg, dec = decode(frame + bytes(ip4_tcp(sc)))
    assert seg is None
    assert dec.stats.too_many_layers == 1


def test_mpls(sc: ModuleType) -> None:
    frame = b"\x02" * 12 + b"\x88\x47" + struct.pack("!I", (100 << 12) | 64)
    frame += struct.pack("!I", (200 << 12) | 0x100 | 64)  # bottom of stack
    check4(decode(frame + bytes(ip4_tcp(sc)))[0])


def test_mpls_without_bottom_of_stack_stops(sc: ModuleType) -> None:
    frame = b"\x02" * 12 + b"\x88\x47" + struct.pack("!I", 100 << 12) * 500
    seg, dec = decode(frame)
    assert seg is None
    assert dec.stats.too_many_layers == 1


def test_linux_sll(sc: ModuleType) -> None:
    check4(decode(bytes(sc.CookedLinux(proto=0x0800) / ip4_tcp(sc)), 113)[0])
    check6(decode(bytes(sc.CookedLinux(proto=0x86DD) / ip6_tcp(sc)), 113)[0])


def test_linux_sll2(sc: ModuleType) -> None:
    check4(decode(bytes(sc.CookedLinuxV2(proto=0x0800) / ip4_tcp(sc)), 276)[0])
    check6(decode(bytes(sc.CookedLinuxV2(proto=0x86DD) / ip6_tcp(sc)), 276)[0])


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("linktype", [0, 108])
def test_bsd_loopback_families_in_both_byte_orders(
    sc: ModuleType, order: str, linktype: int
) -> None:
    check4(decode(struct.pack(order + "I", 2) + bytes(ip4_tcp(sc)), linktype)[0])
    for family in (24, 28, 30):
        check6(decode(struct.pack(order + "I", family) + bytes(ip6_tcp(sc)), linktype)[0])
    seg, dec = decode(struct.pack(order + "I", 7) + bytes(ip4_tcp(sc)), linktype)
    assert seg is None and dec.stats.non_ip == 1


def test_bsd_loopback_built_by_scapy(sc: ModuleType) -> None:
    check6(decode(bytes(sc.Loopback(type=30) / ip6_tcp(sc)), 0)[0])


@pytest.mark.parametrize("linktype", [101, 12, 14])
def test_raw_ip_by_version_nibble(sc: ModuleType, linktype: int) -> None:
    check4(decode(bytes(ip4_tcp(sc)), linktype)[0])
    check6(decode(bytes(ip6_tcp(sc)), linktype)[0])


def test_raw_ipv4_and_ipv6_link_types(sc: ModuleType) -> None:
    check4(decode(bytes(ip4_tcp(sc)), 228)[0])
    check6(decode(bytes(ip6_tcp(sc)), 229)[0])
    seg, dec = decode(bytes(ip6_tcp(sc)), 228)  # claims IPv4, holds IPv6
    assert seg is None and dec.stats.bad_ip_header == 1


def test_unsupported_link_types_counted_per_type(sc: ModuleType) -> None:
    dec = Decoder()
    frame = bytes(ip4_tcp(sc))
    for linktype in (147, 147, 0xFFFF, 0x00010001):
        assert dec.decode(raw(frame, linktype)) is None
    assert dec.stats.unsupported_linktypes == {147: 2, 0xFFFF: 1, 0x00010001: 1}


def test_non_ip_ethertypes_counted(sc: ModuleType) -> None:
    dec = Decoder()
    for frame in (sc.Ether() / sc.LLC() / (b"x" * 40), sc.Ether(type=0x88CC) / (b"\0" * 46)):
        assert dec.decode(raw(bytes(frame))) is None
    assert dec.stats.non_ip == 2


def test_udp_is_not_tcp(sc: ModuleType) -> None:
    seg, dec = decode(bytes(sc.Ether() / sc.IP() / sc.UDP() / b"dns"))
    assert seg is None and dec.stats.non_tcp == 1


def test_pppoe_session(sc: ModuleType) -> None:
    check4(decode(bytes(sc.Ether() / sc.PPPoE() / sc.PPP(proto=0x0021) / ip4_tcp(sc)))[0])
    check6(decode(bytes(sc.Ether() / sc.PPPoE() / sc.PPP(proto=0x0057) / ip6_tcp(sc)))[0])
    seg, dec = decode(bytes(sc.Ether() / sc.PPPoE() / sc.PPP(proto=0xC021) / (b"lcp" * 10)))
    assert seg is None and dec.stats.non_ip == 1
