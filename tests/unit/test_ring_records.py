"""A live capture's ring blocks as pcap records (`capture/_ring.c`, `capture/ring.py`), and those
records through the engine (`Engine.feed_records`, `decode.scan.record_blocks`).

The blocks here are made by hand in the kernel's TPACKET_V3 layout (`linux/if_packet.h`), so
every case the kernel can hand over is covered without a network: VLAN tags the NIC stripped,
the snap length, loopback's outgoing copies, cooked packets (`any`: from the network header on,
a Linux cooked header made from the packet's address), an empty block, a block still the
kernel's, and layouts the kernel never writes. `tests/live/test_ring.py` captures real packets
through a ring and with `recvmsg` at once and compares them.

The C extensions are built alone into a temporary directory (`tests/cbuild.py`): an editable
install has none.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tcpdiag.capture import open_capture
from tcpdiag.capture import ring as packet_ring
from tcpdiag.config import AnalysisOptions
from tcpdiag.decode import scan
from tcpdiag.engine import Engine
from tcpdiag.report.json import capture_json, dumps
from tests.capture_files import PUBLIC
from tests.cbuild import REPO

BLOCK_SIZE = 1 << 16
FIRST_PACKET = 48  # offset_to_first_pkt: after the block descriptor (and no private area)
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
PACKET_HOST, PACKET_BROADCAST, PACKET_OUTGOING = 0, 1, 4
ARPHRD_ETHER, ARPHRD_LOOPBACK, ARPHRD_NONE = 1, 772, 0xFFFE
_HDR = struct.Struct("=IIIIIIHHIIHH8x")  # tpacket3_hdr: 48 bytes
_SLL = struct.Struct("=H2siHBB8s")  # sockaddr_ll: 20 bytes (the protocol in network order)
COOKED_HEADER = struct.Struct("!HHH8sH")  # LINKTYPE_LINUX_SLL's, as LiveSource._read_one's


@dataclass
class Packet:
    """One packet as the kernel puts it in a block."""

    data: bytes  # the captured bytes (tp_snaplen of them)
    sec: int = 1_700_000_000
    nsec: int = 123_456_789
    wire_len: int | None = None  # tp_len; None: len(data)
    vlan: tuple[int, int | None] | None = None  # (tci, tpid or None when not valid)
    pkttype: int = PACKET_HOST
    hatype: int = ARPHRD_ETHER
    protocol: int = 0x0800  # sll_protocol (the EtherType)
    hwaddr: bytes = b"\x02" * 6  # sll_addr[:sll_halen]


def make_block(packets: list[Packet], status: int = TP_STATUS_USER) -> bytearray:
    """A TPACKET_V3 block of BLOCK_SIZE bytes holding `packets`."""
    block = bytearray(BLOCK_SIZE)
    offsets = []
    at = FIRST_PACKET
    for p in packets:
        offsets.append(at)
        mac = 48 + 20 + 14  # header, sockaddr_ll, then room as the kernel leaves it
        at += (mac + len(p.data) + 15) & ~15
    assert at <= BLOCK_SIZE
    offsets.append(at)
    for i, p in enumerate(packets):
        off = offsets[i]
        tp_status = 0
        tci = tpid = 0
        if p.vlan is not None:
            tci = p.vlan[0]
            tp_status |= TP_STATUS_VLAN_VALID
            if p.vlan[1] is not None:
                tp_status |= TP_STATUS_VLAN_TPID_VALID
                tpid = p.vlan[1]
        nxt = offsets[i + 1] - off if i + 1 < len(packets) else 0
        wire = len(p.data) if p.wire_len is None else p.wire_len
        mac = 48 + 20 + 14
        _HDR.pack_into(
            block, off, nxt, p.sec, p.nsec, len(p.data), wire, tp_status, mac, mac, 0, tci, tpid, 0
        )
        _SLL.pack_into(
            block,
            off + 48,
            17,  # AF_PACKET
            struct.pack("!H", p.protocol),
            1,  # ifindex
            p.hatype,
            p.pkttype,
            len(p.hwaddr),
            p.hwaddr[:8],
        )
        block[off + mac : off + mac + len(p.data)] = p.data
    # tpacket_block_desc: version, offset_to_priv, then bh1: status, num_pkts, first offset
    struct.pack_into("=IIIII", block, 0, 3, 0, status, len(packets), FIRST_PACKET)
    return block


def expected_record(p: Packet, snaplen: int) -> bytes:
    """What `LiveSource._read_one` makes of the packet with recvmsg, as a pcap record."""
    wire = len(p.data) if p.wire_len is None else p.wire_len
    data = p.data
    if p.vlan is not None and len(data) >= 12:
        tpid = p.vlan[1] if p.vlan[1] is not None else 0x8100
        data = data[:12] + struct.pack("!HH", tpid, p.vlan[0]) + data[12:]
        wire += 4
    data = data[:snaplen]
    return struct.pack("<IIII", p.sec, p.nsec, len(data), max(wire, len(data))) + data


def expected_cooked_record(p: Packet, snaplen: int) -> bytes:
    """What `LiveSource._read_one` makes of a cooked socket's packet (`p.data` from the network
    header on), as a pcap record: the header (and a VLAN tag, put back as libpcap does: TPID in
    the protocol field, then TCI and protocol) whole, the snap length counting them."""
    wire = len(p.data) if p.wire_len is None else p.wire_len
    if p.vlan is None:
        header = COOKED_HEADER.pack(p.pkttype, p.hatype, len(p.hwaddr), p.hwaddr[:8], p.protocol)
    else:
        tci, tpid = p.vlan
        header = COOKED_HEADER.pack(
            p.pkttype, p.hatype, len(p.hwaddr), p.hwaddr[:8], 0x8100 if tpid is None else tpid
        ) + struct.pack("!HH", tci, p.protocol)
    data = header + p.data[: max(0, snaplen - len(header))]
    orig = max(wire, len(p.data)) + len(header)
    return struct.pack("<IIII", p.sec, p.nsec, len(data), orig) + data


def take(
    ring_c: ModuleType,
    block: bytearray,
    snaplen: int = 262144,
    drop: bool = False,
    cooked: bool = False,
) -> object:
    return ring_c.take_block(block, 0, BLOCK_SIZE, snaplen, drop, cooked)


def frame(n: int, fill: int = 0xAB) -> bytes:
    return bytes(range(12)) + b"\x08\x00" + bytes([fill]) * (n - 14)


# -- the block -> records conversion ------------------------------------------------------------


def test_block_still_the_kernels_is_left_alone(ring_c: ModuleType) -> None:
    block = make_block([Packet(frame(60))], status=0)
    before = bytes(block)
    assert take(ring_c, block) is None
    assert bytes(block) == before


def test_packets_become_records_and_the_block_goes_back(ring_c: ModuleType) -> None:
    packets = [
        Packet(frame(60), sec=10, nsec=0),
        Packet(frame(1514), sec=10, nsec=999_999_999),
        Packet(frame(54), sec=11, nsec=5, wire_len=9000),  # cut before it reached us
        Packet(frame(14)),
    ]
    block = make_block(packets)
    got = take(ring_c, block)
    assert got == (b"".join(expected_record(p, 262144) for p in packets), 4, 0)
    assert struct.unpack_from("=I", block, 8)[0] == 0  # TP_STATUS_KERNEL: the kernel's again


def test_vlan_tag_the_nic_stripped_is_put_back(ring_c: ModuleType) -> None:
    packets = [
        Packet(frame(100), vlan=(0x0123, None)),  # 802.1Q assumed, as libpcap does
        Packet(frame(100), vlan=(0xE456, 0x88A8)),  # 802.1ad
        Packet(frame(11), vlan=(7, None)),  # too short for MAC addresses: no tag
    ]
    records, count, dropped = take(ring_c, make_block(packets))  # type: ignore[misc]
    assert (count, dropped) == (3, 0)
    assert records == b"".join(expected_record(p, 262144) for p in packets)
    first = records[16:]
    assert first[12:16] == b"\x81\x00\x01\x23" and first[16:18] == b"\x08\x00"
    assert struct.unpack_from("<II", records, 8) == (104, 104)


@pytest.mark.parametrize("snaplen", [1, 12, 13, 14, 15, 16, 17, 64, 103, 104, 105])
def test_snap_length_cuts_after_the_tag(ring_c: ModuleType, snaplen: int) -> None:
    packets = [Packet(frame(100), vlan=(5, None)), Packet(frame(100)), Packet(frame(20))]
    got = take(ring_c, make_block(packets), snaplen=snaplen)
    assert got == (b"".join(expected_record(p, snaplen) for p in packets), 3, 0)


def test_loopback_outgoing_copies_are_left_out_when_asked(ring_c: ModuleType) -> None:
    packets = [
        Packet(frame(60, 1), pkttype=PACKET_OUTGOING, hatype=ARPHRD_LOOPBACK),
        Packet(frame(60, 2), pkttype=PACKET_HOST, hatype=ARPHRD_LOOPBACK),
        Packet(frame(60, 3), pkttype=PACKET_OUTGOING, hatype=ARPHRD_ETHER),  # a real send
    ]
    kept = [packets[1], packets[2]]
    assert take(ring_c, make_block(packets), drop=True) == (
        b"".join(expected_record(p, 262144) for p in kept),
        2,
        1,
    )
    assert take(ring_c, make_block(packets), drop=False) == (
        b"".join(expected_record(p, 262144) for p in packets),
        3,
        0,
    )


def ip(n: int, fill: int = 0xCD) -> bytes:
    """A cooked socket's packet: from the IP header on."""
    return b"\x45\x00" + bytes([fill]) * (n - 2)


COOKED = [
    Packet(ip(60), sec=20, nsec=1),
    Packet(ip(1500), pkttype=PACKET_OUTGOING, hwaddr=bytes(range(1, 7))),  # sent by this host
    Packet(ip(40), pkttype=PACKET_BROADCAST, hwaddr=b"\xff" * 6, wire_len=1500),
    Packet(ip(80), protocol=0x86DD),  # IPv6
    Packet(ip(52), hatype=ARPHRD_NONE, hwaddr=b""),  # a tunnel: no link-layer address
    Packet(ip(44), hatype=0x0320, hwaddr=bytes(range(10, 30))),  # a 20-byte address: 8 kept
    Packet(ip(60), vlan=(0x0123, None)),  # a tag the NIC stripped: 802.1Q assumed
    Packet(ip(28), hatype=ARPHRD_LOOPBACK, hwaddr=bytes(6)),
    Packet(ip(48), vlan=(0xE064, 0x88A8), protocol=0x86DD),  # 802.1ad, over IPv6
]


def test_cooked_packets_get_a_linux_cooked_header(ring_c: ModuleType) -> None:
    got = take(ring_c, make_block(COOKED), cooked=True)
    assert got == (b"".join(expected_cooked_record(p, 262144) for p in COOKED), 9, 0)
    records = got[0]  # type: ignore[index]
    assert struct.unpack_from("<II", records, 8) == (76, 76)
    assert records[16:32] == bytes.fromhex("0000 0001 0006 020202020202 0000 0800")
    long_address = records.index(bytes(range(10, 18)))
    assert records[long_address - 2 : long_address] == b"\x00\x14"  # the length as given
    tagged = records.index(bytes.fromhex("8100 0123 0800 4500"))
    assert struct.unpack_from("<II", records, tagged - 22) == (80, 80)  # 20 + 60 bytes
    assert bytes.fromhex("88a8 e064 86dd 4500") in records


@pytest.mark.parametrize("snaplen", [1, 15, 16, 17, 19, 20, 21, 40, 75, 76, 77, 79, 80, 81])
def test_snap_length_of_cooked_records_counts_the_header(ring_c: ModuleType, snaplen: int) -> None:
    got = take(ring_c, make_block(COOKED), snaplen=snaplen, cooked=True)
    assert got == (b"".join(expected_cooked_record(p, snaplen) for p in COOKED), 9, 0)


def test_cooked_loopback_outgoing_copies_are_left_out_when_asked(ring_c: ModuleType) -> None:
    """`any` sees a loopback packet going out and coming in: one copy is kept; a packet that
    this host sends on another interface is kept too."""
    packets = [
        Packet(ip(60, 1), pkttype=PACKET_OUTGOING, hatype=ARPHRD_LOOPBACK, hwaddr=bytes(6)),
        Packet(ip(60, 1), pkttype=PACKET_HOST, hatype=ARPHRD_LOOPBACK, hwaddr=bytes(6)),
        Packet(ip(60, 3), pkttype=PACKET_OUTGOING),
    ]
    got = take(ring_c, make_block(packets), drop=True, cooked=True)
    assert got == (b"".join(expected_cooked_record(p, 262144) for p in packets[1:]), 2, 1)


def test_empty_block(ring_c: ModuleType) -> None:
    block = make_block([])
    assert take(ring_c, block) == (b"", 0, 0)
    assert struct.unpack_from("=I", block, 8)[0] == 0


def test_layouts_the_kernel_never_writes_are_refused_and_the_block_given_back(
    ring_c: ModuleType,
) -> None:
    cases = []
    beyond = make_block([Packet(frame(60))])
    struct.pack_into("=I", beyond, 16, BLOCK_SIZE - 8)  # first packet outside the block
    cases.append(beyond)
    chain = make_block([Packet(frame(60)), Packet(frame(60))])
    struct.pack_into("=I", chain, FIRST_PACKET, 0)  # a next offset of 0 before the last
    cases.append(chain)
    long = make_block([Packet(frame(60))])
    struct.pack_into("=I", long, FIRST_PACKET + 12, BLOCK_SIZE)  # snaplen past the block end
    cases.append(long)
    count = make_block([Packet(frame(60))])
    struct.pack_into("=I", count, 12, 1000)  # more packets than the chain holds
    cases.append(count)
    for block in cases:
        with pytest.raises(ValueError, match="not a TPACKET_V3 block"):
            take(ring_c, block)
        assert struct.unpack_from("=I", block, 8)[0] == 0


def test_arguments_out_of_range(ring_c: ModuleType) -> None:
    block = make_block([Packet(frame(60))])
    for offset, size, snaplen in ((-1, BLOCK_SIZE, 10), (1, BLOCK_SIZE, 10), (0, 8, 10)):
        with pytest.raises(ValueError, match="out of range"):
            ring_c.take_block(block, offset, size, snaplen, False)
    with pytest.raises(ValueError, match="out of range"):
        ring_c.take_block(block, 0, BLOCK_SIZE, 0, False)
    with pytest.raises(TypeError):
        ring_c.take_block(bytes(block), 0, BLOCK_SIZE, 10, False)  # must be writable
    assert struct.unpack_from("=I", block, 8)[0] == TP_STATUS_USER  # untouched


def test_a_block_in_a_shared_mapping_at_an_offset(ring_c: ModuleType) -> None:
    area = mmap.mmap(-1, 3 * BLOCK_SIZE)
    packets = [Packet(frame(70))]
    area[BLOCK_SIZE : 2 * BLOCK_SIZE] = make_block(packets)
    assert ring_c.take_block(area, 0, BLOCK_SIZE, 100, False) is None  # zeros: the kernel's
    got = ring_c.take_block(area, BLOCK_SIZE, BLOCK_SIZE, 100, False)
    assert got == (expected_record(packets[0], 100), 1, 0)


# -- records in Python ----------------------------------------------------------------------


def test_split_and_raw_packets() -> None:
    packets = [Packet(frame(60 + i), sec=5, nsec=i) for i in range(5)]
    records = b"".join(expected_record(p, 262144) for p in packets)
    assert packet_ring.split_records(records, 0, 0) == 0
    two = packet_ring.split_records(records, 0, 2)
    assert two == 2 * 16 + 60 + 61
    assert packet_ring.split_records(records, two, 99) == len(records)
    raws = packet_ring.raw_packets(records, 7, 1)
    assert [(r.frame, r.ts_ns, r.linktype, r.data, r.orig_len) for r in raws] == [
        (8 + i, 5_000_000_000 + i, 1, p.data, len(p.data)) for i, p in enumerate(packets)
    ]


# -- records through the engine -----------------------------------------------------------------


def file_records(path: Path) -> tuple[bytes, int]:
    """A capture's packets as a ring's records (little-endian, nanoseconds), and its link type
    (the first packet's)."""
    out = bytearray()
    linktype = 1
    with open_capture(path) as capture:
        for i, raw in enumerate(capture):
            if i == 0:
                linktype = raw.linktype
            out += struct.pack(
                "<IIII", raw.ts_ns // 10**9, raw.ts_ns % 10**9, len(raw.data), raw.orig_len
            )
            out += raw.data
    return bytes(out), linktype


def report_of_records(records: bytes, linktype: int, chunk: int) -> str:
    """The JSON report of `records` fed `chunk` records at a time, as the live loop does."""
    engine = Engine(AnalysisOptions(), path="live:test")
    pos = frame = 0
    while pos < len(records):
        end = packet_ring.split_records(records, pos, chunk)
        engine.feed_records(records[pos:end], frame, linktype)
        frame += len(packet_ring.raw_packets(records[pos:end], 0, linktype))
        pos = end
    return dumps(capture_json(engine.finish()))


def live_like(path: Path) -> bool:
    """A capture a live ring could have made: readable to the end, one link type."""
    try:
        with open_capture(path) as capture:
            return len({raw.linktype for raw in capture}) == 1 and not capture.damage
    except Exception:  # damaged on purpose
        return False


CAPTURES = sorted(
    p
    for p in [*(REPO / "captures").rglob("*.pcap*"), *PUBLIC.glob("*.pcap*")]
    if p.is_file() and live_like(p)
)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_records_in_c_give_the_report_of_the_packets_in_python(
    path: Path, scan_c: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    records, linktype = file_records(path)
    monkeypatch.setattr(scan, "_SCAN", None)
    by_packet = report_of_records(records, linktype, 1 << 30)
    monkeypatch.setattr(scan, "_SCAN", scan_c)
    for chunk in (1 << 30, 7, 1):
        assert report_of_records(records, linktype, chunk) == by_packet


def test_records_cross_the_expiry_time_in_c(
    scan_c: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A capture long enough for the engine to expire flows while it reads: the walk stops
    at the expiry time and that record goes through Python, as from a file."""
    longest = max(CAPTURES, key=lambda p: p.stat().st_size)
    records, linktype = file_records(longest)
    seen: list[int] = []
    real = scan_c.scan

    def spy(*args: object) -> object:
        walked = real(*args)
        seen.append(walked[3])  # type: ignore[index]
        return walked

    monkeypatch.setattr(scan, "_SCAN", None)
    by_packet = report_of_records(records, linktype, 1 << 30)
    monkeypatch.setattr(scan, "_SCAN", scan_c)
    monkeypatch.setattr(scan_c, "scan", spy)
    assert report_of_records(records, linktype, 1 << 30) == by_packet
    assert scan_c.STOP_TIME in seen
