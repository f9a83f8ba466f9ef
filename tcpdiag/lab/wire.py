"""A small, independent reader for the lab's own recordings.

The lab describes what is on the wire (SYN counts, alerts, who reset) in each capture's ground
truth without using tcpdiag's analysis pipeline, so that the truth can check the pipeline and not
merely repeat it. It reads only what the lab writes: pcap (us/ns) and pcapng, with Ethernet, raw
IP, Linux cooked v1/v2 link types, IPv4/IPv6, TCP, ICMP and ARP.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcpdiag.capture.writer import PcapngWriter
from tcpdiag.model import linktype_name

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


@dataclass
class Packet:
    ts: float
    kind: str  # "tcp" | "icmp" | "icmp6" | "arp" | "other"
    src: str = ""
    dst: str = ""
    sport: int = 0
    dport: int = 0
    flags: int = 0
    seq: int = 0
    ack: int = 0
    win: int = 0
    payload: bytes = b""
    ip: bytes = b""  # the IP packet as captured
    icmp_type: int = 0
    icmp_code: int = 0
    arp_op: int = 0
    arp_target: str = ""

    @property
    def is_syn(self) -> bool:
        return self.kind == "tcp" and self.flags & (SYN | ACK) == SYN

    @property
    def is_synack(self) -> bool:
        return self.kind == "tcp" and self.flags & (SYN | ACK) == SYN | ACK


@dataclass
class CaptureFile:
    format: str
    linktypes: list[int]
    nanosecond: bool
    packets: list[Packet] = field(default_factory=list)

    @property
    def linktype(self) -> str:
        return ",".join(sorted({linktype_name(lt) for lt in self.linktypes}))


def _ip(data: bytes, ts: float) -> Packet:
    if not data:
        return Packet(ts, "other")
    version = data[0] >> 4
    if version == 4:
        ihl = (data[0] & 15) * 4
        total = struct.unpack_from("!H", data, 2)[0]
        proto = data[9]
        src, dst = (
            socket.inet_ntop(socket.AF_INET, data[12:16]),
            socket.inet_ntop(socket.AF_INET, data[16:20]),
        )
        body = data[ihl:total]
    elif version == 6:
        proto = data[6]
        src = socket.inet_ntop(socket.AF_INET6, data[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, data[24:40])
        body = data[40 : 40 + struct.unpack_from("!H", data, 4)[0]]
    else:
        return Packet(ts, "other")
    pkt = Packet(ts, "other", src=src, dst=dst, ip=bytes(data))
    if proto == 6 and len(body) >= 20:
        sport, dport, seq, ack, off, flags, win = struct.unpack_from("!HHIIBBH", body)
        pkt.kind, pkt.sport, pkt.dport, pkt.seq, pkt.ack = "tcp", sport, dport, seq, ack
        pkt.flags, pkt.win, pkt.payload = flags, win, bytes(body[(off >> 4) * 4 :])
    elif proto in (1, 58) and len(body) >= 4:
        pkt.kind = "icmp" if proto == 1 else "icmp6"
        pkt.icmp_type, pkt.icmp_code = body[0], body[1]
    return pkt


def parse_ip(data: bytes, ts: float = 0.0) -> Packet:
    """Decode one IP packet (as read from a TUN device)."""
    return _ip(data, ts)


def _arp(data: bytes, ts: float) -> Packet:
    op = struct.unpack_from("!H", data, 6)[0] if len(data) >= 8 else 0
    target = socket.inet_ntop(socket.AF_INET, data[24:28]) if len(data) >= 28 else ""
    return Packet(ts, "arp", arp_op=op, arp_target=target)


def _link(linktype: int, data: bytes, ts: float) -> Packet:
    if linktype == 1:
        ethertype, off = struct.unpack_from("!H", data, 12)[0], 14
        while ethertype in (0x8100, 0x88A8):
            ethertype, off = struct.unpack_from("!H", data, off + 2)[0], off + 4
    elif linktype == 113:
        ethertype, off = struct.unpack_from("!H", data, 14)[0], 16
    elif linktype == 276:
        ethertype, off = struct.unpack_from("!H", data, 0)[0], 20
    elif linktype in (12, 14, 101):
        return _ip(data, ts)
    else:
        return Packet(ts, "other")
    if ethertype == 0x0806:
        return _arp(data[off:], ts)
    if ethertype in (0x0800, 0x86DD):
        return _ip(data[off:], ts)
    return Packet(ts, "other")


def _pcap_records(data: bytes) -> tuple[int, bool, int, list[tuple[int, bytes, int]]]:
    """(linktype, nanosecond, snaplen, [(ts_ns, captured bytes, original length)])."""
    for endian in ("<", ">"):
        (magic,) = struct.unpack(endian + "I", data[:4])
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        raise ValueError("not a pcap or pcapng file")
    nano = magic == 0xA1B23C4D
    snaplen, linktype = struct.unpack_from(endian + "II", data, 16)
    records = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack_from(endian + "IIII", data, off)
        if off + 16 + incl > len(data):
            break  # a record cut short (a damaged capture): the truth counts whole records
        ts_ns = sec * 1_000_000_000 + (frac if nano else frac * 1000)
        records.append((ts_ns, data[off + 16 : off + 16 + incl], orig))
        off += 16 + incl
    return linktype & 0x0FFFFFFF, nano, snaplen, records


def read(path: Path) -> CaptureFile:
    data = path.read_bytes()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return _read_pcapng(data)
    linktype, nano, _snaplen, records = _pcap_records(data)
    cap = CaptureFile("pcap", [linktype], nano)
    cap.packets = [_link(linktype, pkt, ts / 1e9) for ts, pkt, _orig in records]
    return cap


def _read_pcapng(data: bytes) -> CaptureFile:
    endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    cap = CaptureFile("pcapng", [], False)
    ifaces: list[tuple[int, float]] = []
    off = 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from(endian + "II", data, off)
        body = data[off + 8 : off + blen - 4]
        if btype == 1:
            linktype = struct.unpack_from(endian + "H", body, 0)[0]
            resol = 1e6
            opt = 8
            while opt + 4 <= len(body):
                code, olen = struct.unpack_from(endian + "HH", body, opt)
                if code == 0:
                    break
                if code == 9:
                    v = body[opt + 4]
                    resol = float(2 ** (v & 0x7F)) if v & 0x80 else float(10**v)
                opt += 4 + (olen + 3) // 4 * 4
            ifaces.append((linktype, resol))
            cap.linktypes.append(linktype)
            cap.nanosecond = cap.nanosecond or resol >= 1e9
        elif btype == 6:
            iface, hi, lo, incl = struct.unpack_from(endian + "IIII", body, 0)
            linktype, resol = ifaces[iface]
            cap.packets.append(_link(linktype, body[20 : 20 + incl], ((hi << 32) | lo) / resol))
        off += blen
    return cap


def summarize(path: Path, server_port: int | None = None) -> dict[str, Any]:
    """Counts that the ground truth states about the wire, independent of tcpdiag's engine."""
    cap = read(path)
    tcp = [p for p in cap.packets if p.kind == "tcp"]
    if server_port is None and tcp:
        first = next((p for p in tcp if p.is_syn), tcp[0])
        server_port = first.dport
    to_server = [p for p in tcp if p.dport == server_port]
    to_client = [p for p in tcp if p.sport == server_port]
    return {
        "packets": len(cap.packets),
        "tcp_packets": len(tcp),
        "syn": sum(p.is_syn for p in tcp),
        "syn_ack": sum(p.is_synack for p in tcp),
        "fin": {"client": sum(bool(p.flags & FIN) for p in to_server),
                "server": sum(bool(p.flags & FIN) for p in to_client)},
        "rst": {"client": sum(bool(p.flags & RST) for p in to_server),
                "server": sum(bool(p.flags & RST) for p in to_client)},
        "payload_bytes": {"client": sum(len(p.payload) for p in to_server),
                          "server": sum(len(p.payload) for p in to_client)},
        "zero_window_packets": sum(1 for p in tcp if p.win == 0 and not p.flags & RST),
        "icmp": sum(1 for p in cap.packets if p.kind in ("icmp", "icmp6")),
        "arp_requests": sum(1 for p in cap.packets if p.kind == "arp" and p.arp_op == 1),
        "arp_replies": sum(1 for p in cap.packets if p.kind == "arp" and p.arp_op == 2),
        "syn_times": [round(p.ts - tcp[0].ts, 3) for p in tcp if p.is_syn],
    }  # fmt: skip


def pcap_to_pcapng(src: Path, dst: Path) -> None:
    """Rewrite a pcap file as pcapng (one interface), keeping timestamps and link type."""
    linktype, nano, snaplen, records = _pcap_records(src.read_bytes())
    with dst.open("wb") as f:
        writer = PcapngWriter(f)
        iface = writer.add_interface(linktype, snaplen, tsresol=9 if nano else 6)
        for ts_ns, pkt, orig in records:
            writer.write(ts_ns, pkt, iface, orig)
