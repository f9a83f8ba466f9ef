"""IPv4/IPv6 and TCP decoding: options, fragments, extension headers, lengths, bad headers;
ICMP errors quoting TCP; ARP. Packets built by scapy (imported lazily)."""

from __future__ import annotations

import struct
from types import ModuleType
from typing import Any

import pytest

from tcpdiag.decode import Decoder
from tcpdiag.model import NO_OPTIONS, ArpPacket, IcmpError, RawPacket, Segment, TcpOptions


@pytest.fixture(scope="module")
def sc() -> ModuleType:
    import scapy.all

    return scapy.all


def decode(pkt: Any, orig_len: int | None = None, linktype: int = 1) -> tuple[Any, Decoder]:
    data = pkt if isinstance(pkt, bytes) else bytes(pkt)
    dec = Decoder()
    return dec.decode(RawPacket(1, 0, linktype, data, orig_len or len(data), 0)), dec


def eth_ip(sc: ModuleType, **ip: Any) -> Any:
    return sc.Ether() / sc.IP(src="10.0.0.1", dst="10.0.0.2", **ip)


def test_ipv4_options_are_skipped(sc: ModuleType) -> None:
    pkt = (
        eth_ip(sc, options=[sc.IPOption_RR(routers=["1.2.3.4"])]) / sc.TCP(sport=1, dport=2) / b"ab"
    )
    seg, _ = decode(pkt)
    assert (seg.sport, seg.dport, seg.payload, seg.length) == (1, 2, b"ab", 2)


def test_tcp_options_all_kinds(sc: ModuleType) -> None:
    opts = [
        ("MSS", 1460),
        ("SAckOK", b""),
        ("Timestamp", (123, 456)),
        ("NOP", None),
        ("WScale", 7),
        ("SAck", (100, 200, 300, 400)),
    ]
    seg, _ = decode(eth_ip(sc) / sc.TCP(flags="S", options=opts))
    assert seg.options == TcpOptions(1460, 7, True, ((100, 200), (300, 400)), 123, 456)
    assert seg.flags == 0x02


def test_common_timestamp_only_options(sc: ModuleType) -> None:
    opts = [("NOP", None), ("NOP", None), ("Timestamp", (0xFFFFFFFF, 1))]
    seg, _ = decode(eth_ip(sc) / sc.TCP(options=opts) / b"data")
    assert seg.options == TcpOptions(ts_val=0xFFFFFFFF, ts_ecr=1)
    assert seg.payload == b"data"


def test_no_options(sc: ModuleType) -> None:
    seg, _ = decode(eth_ip(sc) / sc.TCP())
    assert seg.options is NO_OPTIONS


def test_window_scale_clamped_to_14(sc: ModuleType) -> None:
    seg, dec = decode(eth_ip(sc) / sc.TCP(flags="S", options=[("WScale", 15)]))
    assert seg.options.wscale == 14
    assert dec.stats.wscale_clamped == 1


@pytest.mark.parametrize(
    "options",
    [
        b"\x02\x00\x00\x00",  # option length 0
        b"\x02\x01\x00\x00",  # option length 1
        b"\x02\x04\x05\xb4\x08\x0a\x00\x00",  # timestamps run past the header
        b"\x01\x01\x01\x03",  # kind without a length byte at the end
    ],
)
def test_bad_option_lengths_end_the_walk(sc: ModuleType, options: bytes) -> None:
    frame = bytearray(bytes(eth_ip(sc) / sc.TCP()))
    frame[14 + 20 + 12] = (5 + len(options) // 4) << 4
    frame[14 + 2 : 14 + 4] = struct.pack("!H", 40 + len(options))
    seg, dec = decode(bytes(frame[: 14 + 40]) + options)
    assert type(seg) is Segment
    assert dec.stats.bad_tcp_options == 1
    if options.startswith(b"\x02\x04"):
        assert seg.options.mss == 1460  # what came before the bad option is kept


@pytest.mark.parametrize("offset", [0, 4, 15])
def test_bad_data_offset_gives_no_segment(sc: ModuleType, offset: int) -> None:
    frame = bytearray(bytes(eth_ip(sc) / sc.TCP() / b"abc"))
    frame[14 + 20 + 12] = offset << 4
    seg, dec = decode(bytes(frame))
    assert seg is None
    assert dec.stats.bad_tcp_header == 1


def test_data_offset_beyond_ip_length_into_padding(sc: ModuleType) -> None:
    # tshark's "short segment": IP says 40 bytes, TCP claims a 28-byte header, padding follows.
    frame = bytearray(bytes(eth_ip(sc) / sc.TCP()))
    frame[14 + 20 + 12] = 7 << 4
    seg, dec = decode(bytes(frame) + b"\0" * 6)
    assert seg is None and dec.stats.bad_tcp_header == 1


def test_snaplen_cut_payload_keeps_ip_length(sc: ModuleType) -> None:
    full = bytes(eth_ip(sc) / sc.TCP() / (b"z" * 1000))
    seg, dec = decode(full[:100], orig_len=len(full))
    assert seg.length == 1000
    assert seg.payload == b"z" * (100 - 54)
    assert dec.stats.snaplen_truncated == 1


def test_ip_length_beyond_frame_is_bounded(sc: ModuleType) -> None:
    frame = bytearray(bytes(eth_ip(sc) / sc.TCP() / b"abcd"))
    frame[16:18] = struct.pack("!H", 30000)
    seg, dec = decode(bytes(frame))
    assert (seg.length, seg.payload) == (4, b"abcd")
    assert dec.stats.ip_length_exceeds_frame == 1


def test_ip_total_length_zero_means_tso(sc: ModuleType) -> None:
    frame = bytearray(bytes(eth_ip(sc) / sc.TCP() / (b"q" * 3000)))
    frame[16:18] = b"\0\0"
    seg, _ = decode(bytes(frame))
    assert seg.length == 3000


@pytest.mark.parametrize(("vihl", "total"), [(0x44, 40), (0x55, 40), (0x45, 10), (0x4F, 40)])
def test_bad_ipv4_headers(sc: ModuleType, vihl: int, total: int) -> None:
    frame = bytearray(bytes(eth_ip(sc) / sc.TCP()))
    frame[14] = vihl
    frame[16:18] = struct.pack("!H", total)
    seg, dec = decode(bytes(frame))
    assert seg is None
    assert dec.stats.bad_ip_header + dec.stats.truncated == 1


def test_ipv4_fragments(sc: ModuleType) -> None:
    pkt = eth_ip(sc, id=9) / sc.TCP(sport=5, dport=6) / (b"F" * 300)
    frags = sc.fragment(pkt[sc.IP], fragsize=104)
    dec = Decoder()
    out = [
        dec.decode(RawPacket(i, 0, 101, bytes(f), len(bytes(f)), 0)) for i, f in enumerate(frags)
    ]
    assert type(out[0]) is Segment and (out[0].sport, out[0].dport) == (5, 6)
    assert out[0].length == 104 - 20  # this fragment's share only
    assert out[1:] == [None] * (len(frags) - 1)
    assert dec.stats.ipv4_fragments == len(frags)
    assert dec.stats.fragments_skipped == len(frags) - 1


def test_tiny_first_fragment_is_skipped(sc: ModuleType) -> None:
    pkt = sc.IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / sc.TCP()
    data = bytes(pkt)[:28]
    data = data[:2] + struct.pack("!H", 28) + data[4:]
    seg, dec = decode(data, linktype=101)
    assert seg is None and dec.stats.fragments_skipped == 1


def test_ipv6_extension_headers(sc: ModuleType) -> None:
    pkt = (
        sc.Ether()
        / sc.IPv6(src="::1", dst="::2")
        / sc.IPv6ExtHdrHopByHop()
        / sc.IPv6ExtHdrDestOpt()
        / sc.IPv6ExtHdrRouting()
        / sc.IPv6ExtHdrFragment(offset=0, m=1)
        / sc.AH(nh=6, payloadlen=4, icv=b"\0" * 12)
        / sc.TCP(sport=9, dport=10)
        / b"six"
    )
    seg, dec = decode(pkt)
    assert (seg.sport, seg.dport, seg.payload, seg.length) == (9, 10, b"six", 3)
    assert dec.stats.ipv6_fragments == 1


def test_ipv6_non_first_fragment_is_skipped(sc: ModuleType) -> None:
    pkt = sc.Ether() / sc.IPv6() / sc.IPv6ExtHdrFragment(offset=10, nh=6) / (b"x" * 40)
    seg, dec = decode(pkt)
    assert seg is None and dec.stats.fragments_skipped == 1


def test_500_ipv6_extension_headers_stop(sc: ModuleType) -> None:
    ext = b"\x3c\x00" + b"\0" * 6  # destination options -> destination options, 8 bytes each
    body = ext * 500 + bytes(sc.TCP())
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(body), 60, 64, b"\0" * 16, b"\0" * 16)
    seg, dec = decode(ip6 + body, linktype=229)
    assert seg is None and dec.stats.too_many_layers == 1


def test_icmp_unreachable_quoting_a_syn(sc: ModuleType) -> None:
    syn = sc.IP(src="10.0.0.1", dst="10.0.0.2") / sc.TCP(
        sport=40000, dport=8080, seq=12345, flags="S"
    )
    pkt = (
        sc.Ether()
        / sc.IP(src="10.0.0.254", dst="10.0.0.1")
        / sc.ICMP(type=3, code=13)
        / bytes(syn)[:28]
    )
    rec, dec = decode(pkt)
    assert rec == IcmpError(
        1,
        0.0,
        4,
        bytes([10, 0, 0, 254]),
        3,
        13,
        bytes([10, 0, 0, 1]),
        bytes([10, 0, 0, 2]),
        40000,
        8080,
        12345,
    )
    assert dec.stats.icmp_errors == 1


def test_icmp_time_exceeded_with_only_ports(sc: ModuleType) -> None:
    syn = bytes(sc.IP(src="10.0.0.1", dst="10.0.0.2") / sc.TCP(sport=1, dport=2))[:24]
    pkt = sc.Ether() / sc.IP(src="10.9.9.9", dst="10.0.0.1") / sc.ICMP(type=11) / syn
    rec, _ = decode(pkt)
    assert (rec.icmp_type, rec.sport, rec.dport, rec.seq) == (11, 1, 2, None)


def test_icmp_echo_and_udp_quote_are_not_errors(sc: ModuleType) -> None:
    dec = Decoder()
    udp = bytes(sc.IP() / sc.UDP(sport=53, dport=53))
    for pkt in (
        sc.Ether() / sc.IP() / sc.ICMP(type=8),
        sc.Ether() / sc.IP() / sc.ICMP(type=3) / udp,
    ):
        assert dec.decode(RawPacket(1, 0, 1, bytes(pkt), len(bytes(pkt)), 0)) is None
    assert dec.stats.non_tcp == 2


def test_icmpv6_unreachable_quoting_a_syn(sc: ModuleType) -> None:
    syn = sc.IPv6(src="2001:db8::1", dst="2001:db8::2") / sc.TCP(sport=4000, dport=443, seq=99)
    pkt = (
        sc.Ether()
        / sc.IPv6(src="2001:db8::fe", dst="2001:db8::1")
        / sc.ICMPv6DestUnreach(code=4)
        / syn
    )
    rec, _ = decode(pkt)
    assert type(rec) is IcmpError
    assert (rec.ip_version, rec.icmp_type, rec.icmp_code, rec.sport, rec.dport, rec.seq) == (
        6,
        1,
        4,
        4000,
        443,
        99,
    )
    assert rec.sender == bytes.fromhex("20010db80000000000000000000000fe")
    assert rec.dst == bytes.fromhex("20010db8000000000000000000000002")


def test_icmpv6_time_exceeded_quote_with_extension_header(sc: ModuleType) -> None:
    inner = sc.IPv6(src="::1", dst="::2") / sc.IPv6ExtHdrDestOpt() / sc.TCP(sport=7, dport=8, seq=5)
    pkt = sc.IPv6(src="::3", dst="::1") / sc.ICMPv6TimeExceeded() / inner
    rec, _ = decode(pkt, linktype=229)
    assert (rec.icmp_type, rec.sport, rec.dport, rec.seq) == (3, 7, 8, 5)


def test_arp_request_and_reply(sc: ModuleType) -> None:
    req = sc.Ether(src="02:00:00:00:00:01") / sc.ARP(
        op=1, hwsrc="02:00:00:00:00:01", psrc="10.0.0.1", pdst="10.0.0.9"
    )
    rec, dec = decode(req)
    assert rec == ArpPacket(
        1, 0.0, 1, bytes.fromhex("020000000001"), bytes([10, 0, 0, 1]), bytes([10, 0, 0, 9])
    )
    rep, _ = decode(sc.Ether() / sc.ARP(op=2, psrc="10.0.0.9", pdst="10.0.0.1"))
    assert (rep.op, rep.sender_ip) == (2, bytes([10, 0, 0, 9]))
    assert dec.stats.arp == 1


def test_arp_over_sll(sc: ModuleType) -> None:
    rec, _ = decode(sc.CookedLinux(proto=0x0806) / sc.ARP(op=1), linktype=113)
    assert type(rec) is ArpPacket
