"""Capture writers: classic pcap and pcapng, for live capture's `-w`, tests and generators.

Both take integer-nanosecond timestamps (as `RawPacket.ts_ns`) and write straight to a binary
file object; nothing is buffered here beyond what the file object does.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from tcpdiag.capture.pcapng import BYTE_ORDER_MAGIC, EPB, IDB, IF_TSOFFSET, IF_TSRESOL, SHB, SPB


class PcapWriter:
    """Classic pcap (version 2.4) in either byte order, microsecond or nanosecond timestamps."""

    def __init__(
        self,
        fileobj: BinaryIO,
        linktype: int,
        nanosecond: bool = False,
        snaplen: int = 262144,
        *,
        big_endian: bool = False,
    ) -> None:
        order = ">" if big_endian else "<"
        self._file = fileobj
        self._record = struct.Struct(order + "IIII")
        self._units = 1 if nanosecond else 1000
        self._per_sec = 1_000_000_000 // self._units
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        fileobj.write(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))

    def write_records(self, records: bytes) -> None:
        """Whole records already in this file's layout (a live ring's, `capture/ring.py`:
        little-endian, nanosecond; the writer must have been made so)."""
        self._file.write(records)

    def write(self, ts_ns: int, data: bytes, orig_len: int | None = None) -> None:
        """One record; microsecond files keep the timestamp truncated to the microsecond."""
        sec, frac = divmod(ts_ns // self._units, self._per_sec)
        length = len(data)
        self._file.write(
            self._record.pack(sec, frac, length, length if orig_len is None else orig_len)
        )
        self._file.write(data)


def _ts_units(ts_ns: int, tsresol: int) -> int:
    """ns -> units of if_tsresol, rounded up for binary fractions so that reading back (which
    rounds down) gives the same ns whenever the resolution is nanosecond or finer."""
    exponent = tsresol & 0x7F
    if tsresol & 0x80:
        return -((-ts_ns << exponent) // 1_000_000_000)
    if exponent >= 9:
        return ts_ns * int(10 ** (exponent - 9))
    return ts_ns // int(10 ** (9 - exponent))


class PcapngWriter:
    """pcapng with any number of sections (each in either byte order) and interfaces.

    `add_interface` returns the interface id to pass to `write`; `new_section` starts a new
    section, where interface ids start again from 0 (as the format says).
    """

    def __init__(self, fileobj: BinaryIO, big_endian: bool = False) -> None:
        self._file = fileobj
        self._resols: list[int] = []
        self._offsets: list[int] = []
        self.new_section(big_endian)

    def new_section(self, big_endian: bool = False) -> None:
        self._order = ">" if big_endian else "<"
        self._epb = struct.Struct(self._order + "IIIIIII")
        self._resols = []
        self._offsets = []
        # Section length -1: not computed (we stream).
        self._block(SHB, struct.pack(self._order + "IHHq", BYTE_ORDER_MAGIC, 1, 0, -1))

    def add_interface(
        self, linktype: int, snaplen: int = 0, tsresol: int = 6, tsoffset: int = 0
    ) -> int:
        """`tsresol` is the if_tsresol byte (6: microseconds, 9: nanoseconds, 0x80|n: 2^-n);
        `tsoffset` whole seconds added to every timestamp of the interface."""
        body = struct.pack(self._order + "HHI", linktype, 0, snaplen)
        if tsresol != 6:
            body += struct.pack(self._order + "HHB3x", IF_TSRESOL, 1, tsresol)
        if tsoffset:
            body += struct.pack(self._order + "HHq", IF_TSOFFSET, 8, tsoffset)
        if tsresol != 6 or tsoffset:
            body += struct.pack(self._order + "HH", 0, 0)
        self._block(IDB, body)
        self._resols.append(tsresol)
        self._offsets.append(tsoffset * 1_000_000_000)
        return len(self._resols) - 1

    def write(
        self, ts_ns: int, data: bytes, interface: int = 0, orig_len: int | None = None
    ) -> None:
        """An Enhanced Packet Block."""
        units = _ts_units(ts_ns - self._offsets[interface], self._resols[interface])
        length = len(data)
        pad = -length & 3
        total = 32 + length + pad
        self._file.write(
            self._epb.pack(
                EPB,
                total,
                interface,
                (units >> 32) & 0xFFFFFFFF,
                units & 0xFFFFFFFF,
                length,
                length if orig_len is None else orig_len,
            )
        )
        self._file.write(data + b"\0" * pad + struct.pack(self._order + "I", total))

    def write_simple(self, data: bytes, orig_len: int | None = None) -> None:
        """A Simple Packet Block (interface 0, no timestamp)."""
        length = len(data)
        self._block(
            SPB,
            struct.pack(self._order + "I", length if orig_len is None else orig_len)
            + data
            + b"\0" * (-length & 3),
        )

    def write_block(self, block_type: int, body: bytes) -> None:
        """Any other block (name resolution, custom...), padded to 4 bytes."""
        self._block(block_type, body + b"\0" * (-len(body) & 3))

    def _block(self, block_type: int, body: bytes) -> None:
        total = 12 + len(body)
        self._file.write(
            struct.pack(self._order + "II", block_type, total)
            + body
            + struct.pack(self._order + "I", total)
        )
