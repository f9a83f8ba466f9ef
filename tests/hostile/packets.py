"""Byte-level builders for hostile-input tests and fuzz seeds: frames, TLS messages, captures.

Everything is `struct`, no scapy, so that hostile tests stay fast and can build headers no
well-behaved library would (IHL 3, data offset 15, option length 0, a 64 KiB SNI...).
Checksums are left zero (tcpdiag does not drop bad checksums, case 32).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Sequence

from tcpdiag.capture import PcapngWriter
from tests.capture_files import pcap_bytes

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
CLIENT_IP = bytes([10, 0, 0, 1])
SERVER_IP = bytes([10, 0, 0, 2])
ETH_HDR = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"


# -- link / network / transport ------------------------------------------------------------------


def eth(payload: bytes, ethertype: int = 0x0800, vlans: int = 0) -> bytes:
    tags = b"".join(struct.pack("!HH", 0x8100, (i + 1) & 0x0FFF) for i in range(vlans))
    return ETH_HDR + tags + struct.pack("!H", ethertype) + payload


def ipv4(
    payload: bytes,
    *,
    src: bytes = CLIENT_IP,
    dst: bytes = SERVER_IP,
    proto: int = 6,
    ihl: int = 5,
    total: int | None = None,
    flags_frag: int = 0,
    ident: int = 1,
    ttl: int = 64,
) -> bytes:
    options = b"\x01" * max(0, (ihl - 5) * 4)  # NOPs
    length = 20 + len(options) + len(payload) if total is None else total
    head = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | (ihl & 0x0F),
        0,
        length & 0xFFFF,
        ident,
        flags_frag,
        ttl,
        proto,
        0,
        src,
        dst,
    )
    return head + options + payload


def tcp(
    *,
    sport: int = 40000,
    dport: int = 443,
    seq: int = 1000,
    ack: int = 0,
    flags: int = ACK,
    window: int = 65535,
    options: bytes = b"",
    payload: bytes = b"",
    doff: int | None = None,
) -> bytes:
    pad = options + b"\x00" * (-len(options) & 3)
    offset = (20 + len(pad)) // 4 if doff is None else doff
    head = struct.pack(
        "!HHIIBBHHH",
        sport,
        dport,
        seq & 0xFFFFFFFF,
        ack & 0xFFFFFFFF,
        (offset & 0x0F) << 4,
        flags,
        window,
        0,
        0,
    )
    return head + pad + payload


def tcp_frame(
    *,
    src: bytes = CLIENT_IP,
    dst: bytes = SERVER_IP,
    vlans: int = 0,
    **kw: object,
) -> bytes:
    """Ethernet + IPv4 + TCP; keyword arguments go to `tcp()`."""
    return eth(ipv4(tcp(**kw), src=src, dst=dst), vlans=vlans)  # type: ignore[arg-type]


class Session:
    """A TCP conversation between CLIENT_IP:sport and SERVER_IP:dport, tracking seq/ack.

    s = Session(); s.handshake(); s.send("c", b"..."); s.close()
    s.packets: [(ts_ns, frame bytes)] ready for `pcap()`.
    """

    def __init__(
        self,
        sport: int = 40000,
        dport: int = 443,
        isn_c: int = 1000,
        isn_s: int = 5000,
        t0_ns: int = 1_700_000_000_000_000_000,
        step_ns: int = 1_000_000,
        client: bytes = CLIENT_IP,
        server: bytes = SERVER_IP,
    ) -> None:
        self.ports = {"c": (sport, dport), "s": (dport, sport)}
        self.addrs = {"c": (client, server), "s": (server, client)}
        self.next = {"c": isn_c, "s": isn_s}
        self.t = t0_ns
        self.step = step_ns
        self.packets: list[tuple[int, bytes]] = []

    def _other(self, side: str) -> str:
        return "s" if side == "c" else "c"

    def raw(
        self,
        side: str,
        flags: int,
        payload: bytes = b"",
        seq: int | None = None,
        ack: int | None = None,
        **kw: object,
    ) -> None:
        sport, dport = self.ports[side]
        src, dst = self.addrs[side]
        seq = self.next[side] if seq is None else seq
        if ack is None:
            ack = self.next[self._other(side)] if flags & ACK else 0
        frame = eth(
            ipv4(
                tcp(
                    sport=sport,
                    dport=dport,
                    seq=seq,
                    ack=ack,
                    flags=flags,
                    payload=payload,
                    **kw,  # type: ignore[arg-type]
                ),
                src=src,
                dst=dst,
            )
        )
        self.packets.append((self.t, frame))
        self.t += self.step

    def handshake(self) -> None:
        self.raw("c", SYN, ack=0)
        self.next["c"] += 1
        self.raw("s", SYN | ACK)
        self.next["s"] += 1
        self.raw("c", ACK)

    def send(self, side: str, payload: bytes, mss: int = 1400) -> None:
        for i in range(0, len(payload), mss):
            chunk = payload[i : i + mss]
            self.raw(side, ACK | PSH, chunk)
            self.next[side] = (self.next[side] + len(chunk)) & 0xFFFFFFFF
        self.raw(self._other(side), ACK)

    def close(self) -> None:
        self.raw("c", FIN | ACK)
        self.next["c"] += 1
        self.raw("s", FIN | ACK)
        self.next["s"] += 1
        self.raw("c", ACK)


# -- TLS ------------------------------------------------------------------------------------------


def record(body: bytes, content_type: int = 22, version: int = 0x0301) -> bytes:
    return struct.pack("!BHH", content_type, version, len(body) & 0xFFFF) + body


def handshake(msg_type: int, body: bytes, length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return bytes([msg_type]) + n.to_bytes(3, "big") + body


def ext(ext_type: int, body: bytes) -> bytes:
    return struct.pack("!HH", ext_type, len(body) & 0xFFFF) + body


def sni_ext(*names: bytes, list_len: int | None = None, name_len: int | None = None) -> bytes:
    entries = b"".join(
        b"\x00" + struct.pack("!H", (len(n) if name_len is None else name_len) & 0xFFFF) + n
        for n in names
    )
    n = len(entries) if list_len is None else list_len
    return ext(0, struct.pack("!H", n & 0xFFFF) + entries)


def alpn_ext(*protocols: bytes) -> bytes:
    entries = b"".join(bytes([len(p)]) + p for p in protocols)
    return ext(16, struct.pack("!H", len(entries)) + entries)


def client_hello_body(
    extensions: Sequence[bytes] = (), ext_len: int | None = None, version: int = 0x0303
) -> bytes:
    exts = b"".join(extensions)
    n = len(exts) if ext_len is None else ext_len
    return (
        struct.pack("!H", version)
        + bytes(range(32))
        + b"\x00"  # session id
        + b"\x00\x04\x13\x01\xc0\x2f"  # cipher suites
        + b"\x01\x00"  # compression
        + struct.pack("!H", n & 0xFFFF)
        + exts
    )


def client_hello(sni: bytes | None = b"example.com", alpn: Sequence[bytes] = (b"h2",)) -> bytes:
    """A ClientHello handshake message (no record header)."""
    exts = []
    if sni is not None:
        exts.append(sni_ext(sni))
    if alpn:
        exts.append(alpn_ext(*alpn))
    return handshake(1, client_hello_body(exts))


def server_hello(cipher: int = 0xC02F, version: int = 0x0303) -> bytes:
    body = (
        struct.pack("!H", version)
        + bytes(32)
        + b"\x00"
        + struct.pack("!H", cipher)
        + b"\x00"
        + struct.pack("!H", 0)
    )
    return handshake(2, body)


def tls_session(
    client_bytes: bytes, server_bytes: bytes = b"", sport: int = 40000, **kw: object
) -> Session:
    """Handshake, the client's bytes, the server's bytes, close."""
    s = Session(sport=sport, **kw)  # type: ignore[arg-type]
    s.handshake()
    s.send("c", client_bytes)
    if server_bytes:
        s.send("s", server_bytes)
    s.close()
    return s


# -- capture files --------------------------------------------------------------------------------


# (ts_ns, data) pairs through PcapWriter: the same builder the capture tests use.
pcap = pcap_bytes


def pcap_header(
    magic: int = 0xA1B2C3D4,
    major: int = 2,
    minor: int = 4,
    snaplen: int = 262144,
    linktype: int = 1,
    order: str = "<",
) -> bytes:
    return struct.pack(order + "IHHiIII", magic, major, minor, 0, 0, snaplen, linktype)


def pcap_record(
    data: bytes,
    sec: int = 1_700_000_000,
    frac: int = 0,
    caplen: int | None = None,
    orig: int | None = None,
    order: str = "<",
) -> bytes:
    n = len(data) if caplen is None else caplen
    o = len(data) if orig is None else orig
    return struct.pack(order + "IIII", sec, frac, n, o) + data


def pcapng(
    packets: Iterable[tuple[int, bytes]], linktype: int = 1, big_endian: bool = False
) -> bytes:
    out = io.BytesIO()
    writer = PcapngWriter(out, big_endian=big_endian)
    iface = writer.add_interface(linktype)
    for ts_ns, data in packets:
        writer.write(ts_ns, data, iface)
    return out.getvalue()


def block(btype: int, body: bytes, order: str = "<", trailer: int | None = None) -> bytes:
    total = 12 + len(body) + (-len(body) & 3)
    body += b"\x00" * (-len(body) & 3)
    tail = total if trailer is None else trailer
    return struct.pack(order + "II", btype, total) + body + struct.pack(order + "I", tail)


def shb(order: str = "<", major: int = 1, minor: int = 0, options: bytes = b"") -> bytes:
    return block(
        0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, major, minor, -1) + options, order
    )


def opt(code: int, value: bytes, order: str = "<", length: int | None = None) -> bytes:
    n = len(value) if length is None else length
    return struct.pack(order + "HH", code, n) + value + b"\x00" * (-len(value) & 3)


def idb(linktype: int = 1, snaplen: int = 0, options: bytes = b"", order: str = "<") -> bytes:
    return block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + options, order)


def epb(
    data: bytes,
    iface: int = 0,
    ts: int = 1_700_000_000_000_000,
    caplen: int | None = None,
    orig: int | None = None,
    order: str = "<",
) -> bytes:
    n = len(data) if caplen is None else caplen
    o = len(data) if orig is None else orig
    body = struct.pack(order + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, n, o) + data
    return block(6, body, order)


def spb(orig: int, data: bytes, order: str = "<") -> bytes:
    return block(3, struct.pack(order + "I", orig) + data, order)
