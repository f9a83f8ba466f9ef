"""Fuzz target: the pcapng block reader.

The first byte picks the frame the fuzz bytes get: the whole input as is, behind a valid
little- or big-endian Section Header Block, or behind an SHB and an Ethernet interface, so that
mutations spend their time on blocks and options rather than on the file magic.
"""

from __future__ import annotations

import common

with common.instrumented():
    from fuzz_pcap import read_all

from tests.hostile import packets as p


def present(data: bytes) -> bytes:
    if not data:
        return data
    mode, rest = data[0] & 3, data[1:]
    if mode == 0:
        return rest
    order = ">" if mode == 2 else "<"
    head = p.shb(order)
    if mode == 3:
        head += p.idb(1, 0, b"", order)
    return head + rest


def test_one_input(data: bytes) -> None:
    read_all(present(data))


def seeds() -> list[bytes]:
    s = p.tls_session(p.record(p.client_hello()), p.record(p.server_hello()))
    frame = s.packets[3][1]
    options = p.opt(9, b"\x09") + p.opt(14, b"\x00" * 8) + p.opt(2, b"eth0") + p.opt(0, b"")
    return [
        b"\x00" + p.pcapng(s.packets),
        b"\x00" + p.pcapng(s.packets, big_endian=True),
        b"\x03" + p.epb(frame) + p.spb(len(frame), frame) + p.block(0x12345678, b"abcd"),
        b"\x01" + p.idb(1, 0, options) + p.idb(276) + p.epb(frame, 1) + p.epb(frame, 0),
        b"\x02" + p.idb(101, 0, b"", ">") + p.epb(frame[14:], 0, order=">"),
        b"\x03" + p.shb(">") + p.idb(1, 0, b"", ">") + p.epb(frame, order=">"),
        *(b"\x00" + c for c in common.capture_seeds(16 << 10) if c[:4] == b"\x0a\x0d\x0d\x0a"),
    ]


if __name__ == "__main__":
    common.main(test_one_input, seeds)
