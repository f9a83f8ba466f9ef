"""Live capture through a TPACKET_V3 ring (`capture/ring.py`), for real on loopback, a veth
pair and a TUN device (the last two in network namespaces of their own, `lab/netns.py`).

Two sources are opened on the same interface with the same filter, one reading through a ring
and one with `recvmsg`: the kernel gives both every packet, so the ring's records must be the
RawPackets `recvmsg` reading makes. The timestamps are equal where the kernel stamped the packet
on arrival (UDP here); a TCP packet on loopback carries its departure time instead, which
packet sockets do not report, so each socket stamps it when it gets it (microseconds apart).
Then `tcpdiag live`'s loop (`LiveSession`) runs on the ring's records: its report is the one
`analyze` makes of the pcap it wrote, and that pcap holds the packets `recvmsg` read. Both on
`lo` and on `any`, which is captured cooked: the kernel gives its packets from the network
header on, each record gets a Linux cooked header, and of each loopback packet, seen going out
and coming in, one copy is kept.

Against tcpdump (libpcap), capturing at the same time: VLAN tags the kernel took off put back
(on Ethernet, and on `any` as libpcap does in cooked headers), a TCP connection over a veth
pair on `any` (this host's outgoing packets kept), and a TUN device without a link-layer
header (raw IP; on `any` a cooked header without an address): the same bytes.

An editable install has no C extensions: `_ring.c` and `_scan.c` are built here into a
temporary directory (`tests/cbuild.py`) and put in place of the installed ones.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tcpdiag.capture import live, open_capture
from tcpdiag.capture import ring as packet_ring
from tcpdiag.capture.live import LiveSource
from tcpdiag.cli.live import LiveSession
from tcpdiag.config import AnalysisOptions
from tcpdiag.decode import scan
from tcpdiag.engine import analyze_capture
from tcpdiag.lab.netns import Namespace, namespace, veth_pair
from tcpdiag.model import RawPacket
from tcpdiag.report.json import capture_json, dumps
from tests.live.test_live import WAIT, EchoServer, collect, free_port, needs_libpcap, needs_root

pytestmark = [pytest.mark.live, needs_root, needs_libpcap]


@pytest.fixture
def rings(ring_c: ModuleType, scan_c: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packet_ring, "_RING", ring_c)
    monkeypatch.setattr(scan, "_SCAN", scan_c)


def fields(packets: list[RawPacket]) -> list[tuple[int, int, bytes, int]]:
    return [(p.frame, p.linktype, p.data, p.orig_len) for p in packets]


def is_udp(packet: RawPacket) -> bool:
    data = packet.data
    at = 14 if packet.linktype == 1 else 16  # Ethernet or a Linux cooked header
    return (data[at - 2 : at] == b"\x08\x00" and data[at + 9] == 17) or (
        data[at - 2 : at] == b"\x86\xdd" and data[at + 6] == 17
    )


INTERFACES = pytest.mark.parametrize("interface", ["lo", "any"])


def traffic(port: int) -> None:
    """Datagrams of many sizes (the largest loopback frame included), then a TCP transfer
    with big GSO frames, in both address families."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for size in (0, 1, 100, 1472, 9000, 65507):
            udp.sendto(b"\x5a" * size, ("127.0.0.1", port))
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp6:
        udp6.sendto(b"six", ("::1", port))


@INTERFACES
def test_ring_records_are_the_packets_recvmsg_reads(rings: None, interface: str) -> None:
    server = EchoServer()
    port = free_port()
    bpf = f"(tcp port {server.port}) or (udp dst port {port})"
    with LiveSource(interface, bpf, ring=False) as plain, LiveSource(interface, bpf) as ringed:
        assert plain.ring is None
        assert ringed.ring is not None and ringed.ring.blocks == 32  # 32 MiB of 1 MiB blocks
        traffic(port)
        server.transfer(os.urandom(300_000))
        by_recvmsg = collect(plain, 0)
        by_ring = collect(ringed, len(by_recvmsg))
        stats = ringed.update_stats()
    assert len(by_recvmsg) > 20
    assert fields(by_ring) == fields(by_recvmsg)
    pairs = list(zip(by_ring, by_recvmsg, strict=True))
    assert [r.ts_ns for r, p in pairs if is_udp(p)] == [p.ts_ns for p in by_recvmsg if is_udp(p)]
    assert sum(is_udp(p) for p in by_recvmsg) == 7
    assert all(abs(r.ts_ns - p.ts_ns) < 50_000_000 for r, p in pairs)
    assert max(p.orig_len for p in by_ring) > 32_000  # GSO frames went through the ring
    assert stats.packets == len(by_ring) and stats.kernel_drops == 0
    assert stats.bytes == sum(len(p.data) for p in by_ring)
    # The kernel leaves loopback's outgoing copies out (PACKET_IGNORE_OUTGOING on lo, the
    # filter's prefix on any): none reached user space.
    assert stats.outgoing_dropped == 0
    if interface == "lo":
        assert ringed.linktype == 1
    else:
        assert ringed.linktype == 113  # LINKTYPE_LINUX_SLL
        assert {p.data[:2] for p in by_ring} == {b"\x00\x00"}  # "to us": the incoming copy


@pytest.mark.parametrize("ring", [True, False], ids=["ring", "recvmsg"])
@pytest.mark.parametrize("kernel_drops_copies", [True, False], ids=["kernel", "user-space"])
def test_any_without_a_filter_keeps_one_copy_of_each_loopback_packet(
    rings: None, monkeypatch: pytest.MonkeyPatch, ring: bool, kernel_drops_copies: bool
) -> None:
    """`any` sees a loopback packet going out and coming in. The filter's prefix leaves the
    outgoing copy out in the kernel; where the kernel refuses it, user space does."""
    if not kernel_drops_copies:
        monkeypatch.setattr(live, "without_loopback_outgoing", lambda program: None)
    port = free_port()
    marker = os.urandom(16)
    with LiveSource("any", ring=ring) as src:
        assert (src.ring is not None) == ring
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for i in range(20):
                udp.sendto(marker + bytes([i]), ("127.0.0.1", port))
        src.stop()
        # (Each datagram also comes back quoted in an ICMP port unreachable.)
        ours = [p for p in src.drain() if marker in p.data and is_udp(p)]
        stats = src.update_stats()
    assert [p.data[-1] for p in ours] == list(range(20))
    assert {p.data[:4] for p in ours} == {b"\x00\x00\x03\x04"}  # to us, on loopback
    if kernel_drops_copies:
        assert stats.outgoing_dropped == 0
    else:
        assert stats.outgoing_dropped >= 20


def tagged_frame(tpid: int, tci: int, port: int, payload: bytes) -> bytes:
    """A broadcast Ethernet frame with a VLAN tag, carrying an IPv4 UDP datagram."""
    ip = udp_datagram(bytes([10, 78, 0, 1]), bytes([10, 78, 0, 2]), port, payload)
    ethernet = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01"
    return ethernet + struct.pack("!HH", tpid, tci) + b"\x08\x00" + ip


# The namespaces, veth pairs and TUN devices of the lab (`tests/setup-system.sh` installs them).
needs_lab_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("tcpdump", "ip", "ethtool")),
    reason="needs tcpdump, iproute2 and ethtool (tests/setup-system.sh)",
)


def tcpdump_started(ns: Namespace, argv: list[str]) -> subprocess.Popen[str]:
    """tcpdump in `ns`, once it says it listens."""
    proc = subprocess.Popen(ns.exec_argv(argv), stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "listening on" in line:
            return proc
    raise AssertionError(f"tcpdump did not start: {proc.wait()}")


def tcpdump(ns: Namespace, interface: str, bpf: str, out: Path) -> subprocess.Popen[str]:
    """tcpdump capturing 2 packets as Linux cooked v1 on `any` (as tcpdiag writes it)."""
    linktype = ["-y", "LINUX_SLL"] if interface == "any" else []
    return tcpdump_started(
        ns, ["tcpdump", "-i", interface, *linktype, "-c", "2", "-w", str(out), bpf]
    )


@needs_lab_tools
def test_vlan_tags_the_kernel_took_off_are_put_back_as_tcpdump_does(
    rings: None, tmp_path: Path
) -> None:
    """A tagged frame sent over a veth pair: the receiving kernel takes the tag off before
    packet sockets see it (as a NIC that strips tags does) and gives it beside the packet. On
    the Ethernet interface it goes back after the MAC addresses; on `any` (cooked) where
    libpcap puts it, its TPID in the header's protocol field, then TCI and protocol. The ring
    and recvmsg make the same records, and tcpdump writes the same bytes."""
    port = free_port()
    frames = [
        tagged_frame(0x8100, 100, port, b"q" * 10),
        tagged_frame(0x88A8, 0xE064, port, b"ad" * 20),  # 802.1ad
    ]
    bpf = f"udp port {port}"
    with veth_pair() as pair:
        with pair.b.entered():
            sources = [
                LiveSource(interface, bpf, ring=ring).open()
                for interface in (pair.if_b, "any")
                for ring in (True, False)
            ]
        dumps = [tcpdump(pair.b, i, bpf, tmp_path / f"{i}.pcap") for i in (pair.if_b, "any")]
        try:
            assert [s.ring is not None for s in sources] == [True, False, True, False]
            with pair.a.entered():
                sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            with sender:
                sender.bind((pair.if_a, 0))
                for frame in frames:
                    sender.send(frame)
            got = [collect(source, 2) for source in sources]
            for dump in dumps:
                assert dump.wait(timeout=WAIT) == 0
        finally:
            for source in sources:
                source.close()
            for dump in dumps:
                dump.kill()
    ethernet, _, cooked, _ = got
    for name, ours in ((pair.if_b, ethernet), ("any", cooked)):
        with open_capture(tmp_path / f"{name}.pcap") as capture:
            theirs = list(capture)
        assert [(p.linktype, p.data, p.orig_len) for p in theirs] == [
            (p.linktype, p.data, p.orig_len) for p in ours
        ]
    assert fields(got[1]) == fields(ethernet) and fields(got[3]) == fields(cooked)
    assert [(p.linktype, p.data, p.orig_len) for p in ethernet] == [(1, f, len(f)) for f in frames]
    # packet type 1 (broadcast), ARPHRD_ETHER, the sender's address, then the tag and the type
    sll = [struct.unpack_from("!HHH6s2xHHH", p.data) for p in cooked]
    assert sll == [
        (1, 1, 6, b"\x02\x00\x00\x00\x00\x01", 0x8100, 100, 0x0800),
        (1, 1, 6, b"\x02\x00\x00\x00\x00\x01", 0x88A8, 0xE064, 0x0800),
    ]
    assert [p.data[20:] for p in cooked] == [f[18:] for f in frames]
    assert [p.orig_len for p in cooked] == [len(f) - 18 + 20 for f in frames]


@needs_lab_tools
def test_tcp_over_a_veth_pair_on_any_is_what_tcpdump_captures(rings: None, tmp_path: Path) -> None:
    """On `any`, a host's own packets on an Ethernet link (outgoing copies, kept: only
    loopback's are refused) and the peer's, ring and recvmsg, as tcpdump writes them."""
    with veth_pair() as pair:
        with pair.b.entered():
            server = EchoServer(pair.addr_b)
        bpf = f"tcp port {server.port}"
        with pair.a.entered():
            sources = [LiveSource("any", bpf, ring=ring).open() for ring in (True, False)]
        out = tmp_path / "any.pcap"
        # (Immediate mode hands over each packet in a block of its own: with the default
        # buffer and snap length, only a few blocks, and drops. Every frame here is < 2 KB.)
        argv = ["tcpdump", "-i", "any", "-y", "LINUX_SLL", "--immediate-mode", "-s", "4096",
                "-B", "32768", "-w", str(out)]  # fmt: skip
        dump = tcpdump_started(pair.a, [*argv, bpf])
        try:
            with pair.a.entered():
                client = socket.create_connection((pair.addr_b, server.port), timeout=5)
            with client:
                client.sendall(os.urandom(100_000))
                client.shutdown(socket.SHUT_WR)
                while client.recv(1 << 16):
                    pass
            server.close()
            got = []
            for source in sources:
                source.stop()
                got.append(source.drain())
            time.sleep(0.5)
            dump.send_signal(signal.SIGINT)
            assert dump.wait(timeout=WAIT) == 0

        finally:
            for source in sources:
                source.close()
            dump.kill()
    with open_capture(out) as capture:
        by_tcpdump = list(capture)
    assert sum(p.data[:2] == b"\x00\x04" for p in by_tcpdump) > 20  # sent by this host
    assert sum(p.data[:2] == b"\x00\x00" for p in by_tcpdump) > 2  # to it
    # (Sorted: packets going out on one core and coming in on the other may reach two sockets
    # in either order.)
    expected = sorted((p.linktype, p.data, p.orig_len) for p in by_tcpdump)
    for packets in got:
        assert sorted((p.linktype, p.data, p.orig_len) for p in packets) == expected


TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def udp_datagram(src: bytes, dst: bytes, port: int, payload: bytes) -> bytes:
    """An IPv4 UDP datagram (no UDP checksum), its IP header checksum right."""
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src, dst))
    checksum = sum(struct.unpack("!10H", ip))
    checksum = (checksum & 0xFFFF) + (checksum >> 16)
    struct.pack_into("!H", ip, 10, ~checksum & 0xFFFF)
    return bytes(ip) + udp


@needs_lab_tools
@pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="needs /dev/net/tun")
def test_a_tun_device_without_link_header_is_raw_ip_as_tcpdump_captures(
    rings: None, tmp_path: Path
) -> None:
    """A TUN device (ARPHRD_NONE, as WireGuard and VPN clients): raw IP on the device itself,
    a cooked header without an address on `any`; going out and coming in; ring and recvmsg;
    the bytes tcpdump writes."""
    port = free_port()
    bpf = f"udp port {port}"
    local, peer = bytes([10, 79, 0, 1]), bytes([10, 79, 0, 2])
    with namespace() as ns:
        ns.ip("tuntap", "add", "mode", "tun", "name", "tun0")
        ns.ip("addr", "add", "10.79.0.1/24", "dev", "tun0")
        with ns.entered():
            tun = os.open("/dev/net/tun", os.O_RDWR)
            fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", b"tun0", IFF_TUN | IFF_NO_PI))
        ns.ip("link", "set", "tun0", "up")
        with ns.entered():
            sources = [
                LiveSource(interface, bpf, ring=ring).open()
                for interface in ("tun0", "any")
                for ring in (True, False)
            ]
        outs = {i: tmp_path / f"{i}.pcap" for i in ("tun0", "any")}
        dumps = [
            tcpdump_started(ns, ["tcpdump", "-i", "tun0", "-c", "3", "-w", str(outs["tun0"]), bpf]),
            tcpdump_started(
                ns,
                ["tcpdump", "-i", "any", "-y", "LINUX_SLL", "-c", "3", "-w", str(outs["any"]), bpf],
            ),
        ]
        try:
            with ns.entered():
                sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with sender:
                sender.sendto(b"out" * 5, ("10.79.0.2", port))  # going out through the tun
                sender.sendto(b"out" * 50, ("10.79.0.2", port))
            os.write(tun, udp_datagram(peer, local, port, b"in" * 20))  # coming in
            got = [collect(source, 3) for source in sources]
            for dump in dumps:
                assert dump.wait(timeout=WAIT) == 0
        finally:
            os.close(tun)
            for source in sources:
                source.close()
            for dump in dumps:
                dump.kill()
    raw, _, cooked, _ = got
    assert fields(got[1]) == fields(raw) and fields(got[3]) == fields(cooked)
    assert [p.linktype for p in raw] == [101] * 3  # LINKTYPE_RAW
    assert [p.data[:1] for p in raw] == [b"\x45"] * 3
    assert raw[2].data == udp_datagram(peer, local, port, b"in" * 20)
    # packet type (4 out, 0 in), ARPHRD_NONE, no address, IPv4; then the packet as on tun0
    assert [struct.unpack_from("!HHH8sH", p.data) for p in cooked] == [
        (4, 0xFFFE, 0, bytes(8), 0x0800),
        (4, 0xFFFE, 0, bytes(8), 0x0800),
        (0, 0xFFFE, 0, bytes(8), 0x0800),
    ]
    assert [p.data[16:] for p in cooked] == [p.data for p in raw]
    for name, ours in (("tun0", raw), ("any", cooked)):
        with open_capture(outs[name]) as capture:
            theirs = list(capture)
        assert [(p.linktype, p.data, p.orig_len) for p in theirs] == [
            (p.linktype, p.data, p.orig_len) for p in ours
        ]


def test_records_come_at_most_as_many_as_asked_and_numbered_on(rings: None) -> None:
    port = free_port()
    with LiveSource("lo", f"udp dst port {port}") as src:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for i in range(10):
                udp.sendto(bytes([i]) * (i + 1), ("127.0.0.1", port))
        chunks: list[bytes] = []
        deadline = time.monotonic() + WAIT
        while src.stats.packets < 10 and time.monotonic() < deadline:
            before = src.stats.packets
            records = src.poll_records(0.2, 3)
            if records:
                assert src.stats.packets - before <= 3
                chunks.append(records)
        assert not src.backlog()
    raws = [r for i, c in enumerate(chunks) for r in packet_ring.raw_packets(c, 3 * i, 1)]
    assert [r.frame for r in raws] == list(range(1, 11))
    assert [r.data[-(i + 1) :] for i, r in enumerate(raws)] == [
        bytes([i]) * (i + 1) for i in range(10)
    ]
    assert [len(packet_ring.raw_packets(c, 0, 1)) for c in chunks] == [3, 3, 3, 1]


def test_drain_after_stop_takes_the_block_the_kernel_was_filling(rings: None) -> None:
    port = free_port()
    with LiveSource("lo", f"udp dst port {port}") as src:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for i in range(5):
                udp.sendto(b"last" * i, ("127.0.0.1", port))
        src.stop()  # at once: the block holding them is not handed over yet
        assert src.poll(0.1) == []
        drained = src.drain()
    assert [p.frame for p in drained] == [1, 2, 3, 4, 5]


@INTERFACES
def test_live_loop_on_ring_records_reports_what_analyze_reads_back(
    rings: None, tmp_path: Path, interface: str
) -> None:
    server = EchoServer()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    bpf = f"tcp port {server.port} or tcp port {port}"
    pcap = tmp_path / "ring.pcap"
    with (
        closed,
        LiveSource(interface, bpf, ring=False) as plain,
        LiveSource(interface, bpf) as ringed,
    ):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        server.transfer(os.urandom(150_000))
        reference = collect(plain, 0)
        # All of it is queued in the ring: the loop takes exactly that many packets, and
        # leaves the rest of its last block (nothing here) untaken.
        with open(pcap, "wb") as out:
            session = LiveSession(ringed, AnalysisOptions(), interface=interface, out_file=out)
            result = session.run(count=len(reference))
    assert len(reference) > 10
    assert ringed.ring is not None and ringed.linktype == reference[0].linktype
    assert ringed.stats.packets == len(reference)
    with open_capture(pcap) as capture:
        written = list(capture)
    assert fields(written) == fields(reference)
    live_report = json.loads(dumps(capture_json(result)))
    file_report = json.loads(dumps(capture_json(analyze_capture(str(pcap)))))
    assert essence(live_report) == essence(file_report)
    names = Counter(x["name"] for f in live_report["flows"] for x in f["findings"])
    assert names["connection-refused"] == 1


def essence(capture: dict[str, Any]) -> list[Any]:
    return [
        (f["id"], f["client"], f["server"], f["state"], f["packets"], f["bytes"],
         sorted((x["name"], x["severity"], tuple(x["frames"])) for x in f["findings"]))
        for f in capture["flows"]
    ]  # fmt: skip


def test_a_ring_that_cannot_be_mapped_is_taken_down_and_recvmsg_reads(
    rings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_memory(*args: object, **kwargs: object) -> object:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(packet_ring.mmap, "mmap", no_memory)
    port = free_port()
    with LiveSource("lo", f"udp dst port {port}") as src:
        assert src.ring is None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"still read", ("127.0.0.1", port))
        packets = collect(src, 1)
    assert [p.data[-10:] for p in packets] == [b"still read"]
