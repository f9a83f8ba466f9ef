"""Fuzz target: the link/IP/TCP decoder (`Decoder.decode`) on RawPackets of every link type.

Input layout: byte 0 picks the link type (one tcpdiag decodes, or a raw 16-bit value from bytes
1-2), byte 3 adds to the original length; the rest is split into up to 8 packets (by the
separator b"\\xff\\xfe") fed to one Decoder, so the counters accumulate as in a real capture.
"""

from __future__ import annotations

import common

with common.instrumented():
    from tcpdiag.decode import Decoder
    from tcpdiag.errors import TcpdiagError
    from tcpdiag.model import ArpPacket, IcmpError, RawPacket, Segment

LINKTYPES = (1, 0, 12, 14, 101, 108, 113, 228, 229, 276)
SEPARATOR = b"\xff\xfe"


def _check(rec: object) -> None:
    if rec is None:
        return
    assert type(rec) in (Segment, IcmpError, ArpPacket), type(rec)
    if type(rec) is Segment:
        seg: Segment = rec  # type: ignore[assignment]
        assert len(seg.src) in (4, 16) and len(seg.dst) == len(seg.src)
        assert 0 <= seg.sport <= 0xFFFF and 0 <= seg.dport <= 0xFFFF
        assert 0 <= seg.seq <= 0xFFFFFFFF and 0 <= seg.ack <= 0xFFFFFFFF
        assert 0 <= len(seg.payload) <= seg.length, (len(seg.payload), seg.length)
        wscale = seg.options.wscale
        assert wscale is None or 0 <= wscale <= 14, wscale


def test_one_input(data: bytes) -> None:
    if len(data) < 4:
        return
    pick = data[0]
    linktype = LINKTYPES[pick] if pick < len(LINKTYPES) else int.from_bytes(data[1:3], "little")
    extra = data[3]
    decoder = Decoder()
    for frame, body in enumerate(data[4:].split(SEPARATOR)[:8], 1):
        raw = RawPacket(frame, 1_700_000_000_000_000_000 + frame, linktype, body, len(body) + extra)
        try:
            rec = decoder.decode(raw)
        except TcpdiagError:
            continue
        _check(rec)
    stats = decoder.stats
    assert stats.packets >= 1


def seeds() -> list[bytes]:
    from tests.hostile import packets as p

    frame = p.tcp_frame(flags=p.SYN, options=b"\x02\x04\x05\xb4\x03\x03\x07\x04\x02", seq=7)
    ip = frame[14:]
    ip6 = (
        b"\x60\x00\x00\x00"
        + (20).to_bytes(2, "big")
        + b"\x06\x40"
        + bytes(15)
        + b"\x01"
        + bytes(15)
        + b"\x02"
        + p.tcp(flags=p.SYN)
    )
    sll2 = b"\x08\x00\x00\x00" + bytes(4) + b"\x00\x01\x00\x06" + bytes(8)
    sll = b"\x00\x00\x00\x01\x00\x06" + bytes(8) + b"\x08\x00"
    icmp = p.ipv4(b"\x03\x03\x00\x00\x00\x00\x00\x00" + ip[:28], proto=1, src=p.SERVER_IP)
    arp = bytes.fromhex("0001080006040001") + bytes(6) + p.CLIENT_IP + bytes(6) + p.SERVER_IP
    out = [
        bytes([0, 0, 0, 0]) + frame,
        bytes([0, 0, 0, 0]) + p.tcp_frame(vlans=3, payload=b"hello"),
        bytes([0, 0, 0, 0]) + p.eth(arp, 0x0806),
        bytes([0, 0, 0, 0]) + p.eth(icmp),
        bytes([0, 0, 0, 0]) + p.eth(ip6, 0x86DD),
        bytes([0, 0, 0, 0]) + p.eth(b"\x00\x01\x01\x40" * 3 + ip, 0x8847),
        bytes([1, 0, 0, 0]) + b"\x02\x00\x00\x00" + ip,
        bytes([4, 0, 0, 0]) + ip + SEPARATOR + ip6,
        bytes([5, 0, 0, 0]) + sll + ip,
        bytes([7, 0, 0, 0]) + ip,
        bytes([8, 0, 0, 0]) + ip6,
        bytes([9, 0, 0, 0]) + sll2 + ip,
        bytes([0, 0, 0, 10]) + p.tcp_frame(payload=b"x" * 40)[:60],
        bytes([255, 0xFF, 0xFF, 0]) + frame,
    ]
    return out


if __name__ == "__main__":
    common.main(test_one_input, seeds)
