"""Bad-inputs cases 28-32: packet level (short frames, encapsulation bombs, TCP header oddities,
fragments, checksums). The decoder never raises; what it cannot use is counted, and the
counters become one capture-quality finding each."""

from __future__ import annotations

import struct
import time
from typing import Any

import pytest

from tcpdiag.decode import MAX_LAYERS, Decoder
from tcpdiag.model import RawPacket, Segment
from tests.hostile import packets as p
from tests.hostile.helpers import analyze, analyze_bytes, assert_read, finding

T0 = 1_700_000_000 * 10**9
TCP_SYN = p.tcp(flags=p.SYN)
IP = p.ipv4(TCP_SYN)


def decode(data: bytes, linktype: int = 1, orig: int | None = None) -> tuple[Any, Any]:
    dec = Decoder()
    raw = RawPacket(1, T0, linktype, data, len(data) if orig is None else orig)
    return dec.decode(raw), dec.stats


def ipv6(payload: bytes, next_header: int = 6, plen: int | None = None) -> bytes:
    n = len(payload) if plen is None else plen
    return (
        struct.pack("!IHBB", 0x60000000, n, next_header, 64)
        + bytes(15)
        + b"\x01"
        + bytes(15)
        + b"\x02"
        + payload
    )


# -- 28: short frames --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "counter"),
    [
        (p.eth(IP)[:13], "truncated"),
        (p.eth(IP)[:20], "truncated"),
        (p.eth(p.ipv4(TCP_SYN, ihl=3)), "bad_ip_header"),
        (p.eth(b"\x4f" + p.ipv4(b"")[1:]), "bad_ip_header"),
        (p.eth(p.ipv4(TCP_SYN, total=12)), "bad_ip_header"),
        (p.eth(p.ipv4(TCP_SYN, total=1400)), "ip_length_exceeds_frame"),
        (p.eth(ipv6(TCP_SYN, plen=1400), 0x86DD), "ip_length_exceeds_frame"),
        (p.eth(ipv6(TCP_SYN)[:30], 0x86DD), "truncated"),
    ],
    ids=[
        "eth-13",
        "ip-cut",
        "ihl-3",
        "ihl-beyond-caplen",
        "total-lt-ihl",
        "total-gt-caplen",
        "ipv6-plen-gt-caplen",
        "ipv6-cut",
    ],
)
def test_case28_short_frames_counted(data: bytes, counter: str) -> None:
    rec, stats = decode(data)
    assert rec is None or isinstance(rec, Segment)
    assert getattr(stats, counter) == 1, stats


def test_case28_short_frames_one_finding_each_kind() -> None:
    frames = [p.eth(IP)[:13]] * 50 + [p.eth(p.ipv4(TCP_SYN, ihl=3))] * 7
    result = analyze_bytes(p.pcap((T0 + i, f) for i, f in enumerate(frames)))
    assert result.packets == 57 and result.tcp_packets == 0
    assert finding(result, "capture-truncated-packets", "shorter than").count == 50
    assert finding(result, "capture-truncated-packets", "invalid IP header").count == 7


# -- 29: encapsulation bombs -------------------------------------------------------------------


def _bombs() -> dict[str, tuple[int, bytes]]:
    vlans = p.eth(IP, vlans=1000)
    mpls = p.eth(struct.pack("!I", (16 << 12) | 64) * 500 + IP, 0x8847)
    ipip = IP
    for _ in range(200):
        ipip = p.ipv4(ipip, proto=4)
    gre = IP
    for _ in range(200):
        gre = p.ipv4(b"\x00\x00\x08\x00" + gre, proto=47)
    chain = (bytes([60, 0]) + bytes(6)) * 499 + bytes([6, 0]) + bytes(6)
    v6 = ipv6(chain + TCP_SYN, next_header=60)  # 500 destination-options headers
    return {
        "vlan-1000": (1, vlans),
        "mpls-no-bos": (1, mpls),
        "ipip-200": (101, ipip),
        "gre-200": (101, gre),
        "ipv6-ext-500": (101, v6),
    }


@pytest.mark.parametrize("name", list(_bombs()))
def test_case29_encapsulation_bombs(name: str) -> None:
    linktype, data = _bombs()[name]
    dec = Decoder()
    raw = RawPacket(1, T0, linktype, data, len(data))
    rec = dec.decode(raw)  # no RecursionError
    assert rec is None
    if name in ("vlan-1000", "mpls-no-bos", "ipv6-ext-500"):
        assert dec.stats.too_many_layers == 1, dec.stats
    else:  # tunnels are not followed at all: the outer packet is not TCP
        assert dec.stats.non_tcp == 1, dec.stats
    runs = 300
    start = time.process_time()
    for _ in range(runs):
        dec.decode(raw)
    per_packet = (time.process_time() - start) / runs
    assert per_packet < 0.001, per_packet


def test_case29_too_many_layers_finding() -> None:
    _, vlans = _bombs()["vlan-1000"]
    result = analyze_bytes(p.pcap([(T0, vlans), (T0 + 1, p.eth(IP, vlans=MAX_LAYERS - 1))]))
    assert result.tcp_packets == 1
    assert finding(result, "capture-truncated-packets", "too many encapsulation").count == 1


# -- 30: TCP header oddities -------------------------------------------------------------------


def test_case30_data_offset_out_of_range() -> None:
    for doff in (0, 4, 15):
        rec, stats = decode(p.eth(p.ipv4(p.tcp(doff=doff, payload=b"abc"))))
        assert rec is None and stats.bad_tcp_header == 1, (doff, stats)


@pytest.mark.parametrize(
    ("options", "bad"),
    [
        (b"\x02\x00\x05\xb4", 1),  # MSS with length 0
        (b"\x03\x01\x07\x01", 1),  # window scale with length 1
        (b"\x08\x7f" + bytes(10), 1),  # timestamps whose length runs past the header
        (b"\x01" * 40, 0),  # 40 NOPs: the longest legal walk
    ],
    ids=["len0", "len1", "past-header", "40-nops"],
)
def test_case30_option_walk_always_advances(options: bytes, bad: int) -> None:
    start = time.process_time()
    rec, stats = decode(p.eth(p.ipv4(p.tcp(flags=p.SYN, options=options))))
    assert time.process_time() - start < 0.05
    assert isinstance(rec, Segment)
    assert stats.bad_tcp_options == bad, stats


def test_case30_window_scale_clamped() -> None:
    rec, stats = decode(p.eth(p.ipv4(p.tcp(flags=p.SYN, options=b"\x03\x03\x1e\x01"))))
    assert isinstance(rec, Segment) and rec.options.wscale == 14
    assert stats.wscale_clamped == 1
    result = analyze_bytes(
        p.pcap([(T0, p.eth(p.ipv4(p.tcp(flags=p.SYN, options=b"\x03\x03\x1e\x01"))))])
    )
    finding(result, "capture-truncated-packets", "window scale above 14")


# -- 31: fragments -----------------------------------------------------------------------------


def _fragments(n: int) -> list[tuple[int, bytes]]:
    out = []
    for i in range(n):
        # 1-byte first fragments with More Fragments set, every train a new id: never completed.
        frag = p.ipv4(
            b"\x9c", ident=i & 0xFFFF, flags_frag=0x2000, src=bytes([10, 1, i >> 8 & 255, i & 255])
        )
        out.append((T0 + i * 1000, p.eth(frag)))
    # overlapping / teardrop pair
    out.append((T0 + n * 1000, p.eth(p.ipv4(TCP_SYN, ident=7, flags_frag=0x2000))))
    out.append((T0 + n * 1000 + 1, p.eth(p.ipv4(b"x" * 4, ident=7, flags_frag=1))))
    return out


def test_case31_fragment_trains_bounded(write: Any) -> None:
    n = 100_000
    run = analyze(write("frags.pcap", p.pcap(_fragments(n))))
    assert_read(run)
    assert run.capture["packets"] == n + 2
    assert run.capture["flows"] == [] or len(run.capture["flows"]) <= 1
    assert run.rss_mb < 120, run.rss_mb
    assert run.cpu < 30, run.cpu
    hits = [f for f in run.findings("capture-truncated-packets") if "fragment" in f["message"]]
    assert len(hits) == 1 and hits[0]["count"] >= 1, run.findings()


# -- 32: checksums -----------------------------------------------------------------------------


def test_case32_bad_checksums_not_dropped() -> None:
    # Every checksum in these packets is zero (wrong): offload makes that normal.
    s = p.Session(dport=80)
    s.handshake()
    s.send("c", b"GET / HTTP/1.0\r\n\r\n")
    s.send("s", b"HTTP/1.0 200 OK\r\n\r\n")
    s.close()
    result = analyze_bytes(p.pcap(s.packets))
    (flow,) = result.flows
    assert flow.bytes_client == 18 and flow.bytes_server == 19
    assert flow.state == "SF"
    checksum = [f for f in result.all_findings() if "checksum" in f.message.lower()]
    assert len(checksum) <= 1 and all(f.severity.label == "info" for f in checksum)
