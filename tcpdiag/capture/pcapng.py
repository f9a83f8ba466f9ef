"""pcapng files: a sequence of sections, each a Section Header Block (which fixes the byte order)
followed by Interface Description Blocks and packet blocks.

Theory of operation: every block is framed by its total length, repeated in its trailer. The
framing is checked before a block's body is looked at (length sane, multiple of 4, trailer equal
to header); a block that fails it means nothing after it can be located, so reading stops with a
`CaptureDamage`, or a `CaptureError` when it is the very first block. A block with good framing
but bad content (an EPB for an interface that does not exist, a captured length larger than the
block) is skipped with a note, and reading goes on. Interfaces are numbered per section in the
file; `RawPacket.interface` is a number across the whole file, as Wireshark numbers them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from tcpdiag.capture.records import CaptureDamage, NoteBook
from tcpdiag.capture.source import Feed
from tcpdiag.errors import CaptureError
from tcpdiag.model import RawPacket

SHB = 0x0A0D0D0A
IDB = 0x00000001
OPB = 0x00000002  # obsolete Packet Block
SPB = 0x00000003
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

# Largest block we will hold in memory (libpcap uses the same 16 MiB bound); bigger is corrupt.
MAX_BLOCK = 16 << 20
# Options examined per block: enough for any real file, bounded for a hostile one.
MAX_OPTIONS = 1024

OPT_ENDOFOPT = 0
IF_TSRESOL = 9
IF_TSOFFSET = 14

_MIN_LENGTH = {SHB: 28, IDB: 20, EPB: 32, SPB: 16, OPB: 32}
_BLOCK_NAMES = {
    SHB: "section header",
    IDB: "interface description",
    EPB: "enhanced packet",
    SPB: "simple packet",
    OPB: "packet",
}


def is_pcapng_magic(head: bytes) -> bool:
    return head[:4] == b"\x0a\x0d\x0d\x0a"


class Interface(NamedTuple):
    number: int  # across the file
    linktype: int
    snaplen: int
    mult: int  # timestamp units -> ns: units * mult // div + offset_ns
    div: int
    offset_ns: int


class _Order:
    """The structs of one byte order (a section may use either)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.u16 = struct.Struct(prefix + "H")
        self.u32 = struct.Struct(prefix + "I")
        self.i64 = struct.Struct(prefix + "q")
        self.pair = struct.Struct(prefix + "II")
        self.opt = struct.Struct(prefix + "HH")
        self.shb = struct.Struct(prefix + "IIIHHq")
        self.idb = struct.Struct(prefix + "HHI")
        self.epb = struct.Struct(prefix + "IIIII")
        self.opb = struct.Struct(prefix + "HHIIII")


_LE = _Order("<")
_BE = _Order(">")


def resolution(code: int) -> tuple[int, int] | None:
    """if_tsresol -> (mult, div) converting units to ns, or None when the value is unusable."""
    exponent = code & 0x7F
    if code & 0x80:
        if exponent > 63:
            return None
        return 1_000_000_000, 1 << exponent
    if exponent > 19:  # finer than 10^-19 s does not fit the 64-bit timestamp usefully
        return None
    if exponent <= 9:
        return 10 ** (9 - exponent), 1
    return 1, 10 ** (exponent - 9)


class PcapngReader:
    """Reads blocks; the constructor checks the first Section Header Block (CaptureError)."""

    format = "pcapng"

    def __init__(self, feed: Feed, notes: NoteBook, damage: list[CaptureDamage]) -> None:
        self._feed = feed
        self._notes = notes
        self._damage = damage
        self.frames = 0  # packet records read so far, skipped ones included
        self.nanosecond = False
        self.linktypes: set[int] = set()
        self._interfaces: list[Interface] = []
        self._next_number = 0
        self._order = _LE
        self._skipping = False  # inside a section of an unknown version
        self._framed = True  # the block at feed.pos is framed already (below: the first SHB)
        self.ended = False  # set by `read_block` at the end of the input or after damage
        if not feed.ensure(12):
            raise CaptureError(f"truncated pcapng header ({feed.available()} of 28 bytes)")
        problem = self._frame_block()
        if problem is not None:
            raise CaptureError(f"damaged pcapng section header: {problem}")
        major, minor = self._order.shb.unpack_from(feed.buf, feed.pos)[3:5]
        if major != 1:
            raise CaptureError(f"unsupported pcapng version {major}.{minor}")

    def _frame_block(self) -> str | None:
        """Check the framing of the block at feed.pos (12 bytes available); on success the whole
        block is in the buffer. Returns the problem, or None."""
        feed = self._feed
        buf, pos = feed.buf, feed.pos
        if buf[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
            bom = buf[pos + 8 : pos + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                self._order = _LE
            elif bom == b"\x1a\x2b\x3c\x4d":
                self._order = _BE
            else:
                return f"bad byte-order magic 0x{bom.hex()}"
        btype, length = self._order.pair.unpack_from(buf, pos)
        if length < _MIN_LENGTH.get(btype, 12) or length % 4:
            return f"block type 0x{btype:08x} has invalid length {length}"
        if length > MAX_BLOCK:
            return f"block type 0x{btype:08x} has length {length}, above the maximum {MAX_BLOCK}"
        if not feed.ensure(length):
            return f"truncated block: {feed.available()} of {length} bytes"
        buf, pos = feed.buf, feed.pos
        trailer = self._order.u32.unpack_from(buf, pos + length - 4)[0]
        if trailer != length:
            return f"block length {length} does not match its trailer {trailer}"
        return None

    def packets(self) -> Iterator[RawPacket]:
        while True:
            packet = self.read_block()
            if packet is not None:
                yield packet
            elif self.ended:
                return

    def read_block(self) -> RawPacket | None:
        """Read the block at `feed.pos`: its packet, or None for a block without one (or a
        packet skipped with a note), and at the end of the input, when `ended` is set."""
        if self._framed:
            self._framed = False
        elif not self._next_block():
            self.ended = True
            return None
        feed = self._feed
        buf, pos = feed.buf, feed.pos
        btype, length = self._order.pair.unpack_from(buf, pos)
        end = pos + length - 4  # end of the body
        feed.pos = pos + length  # the block is consumed whatever it holds
        if btype == SHB:
            self._section(buf, pos)
        elif self._skipping:
            pass
        elif btype == EPB:
            return self._enhanced(buf, pos, end)
        elif btype == SPB:
            return self._simple(buf, pos, end)
        elif btype == OPB:
            return self._obsolete(buf, pos, end)
        elif btype == IDB:
            self._interface(buf, pos, end)
        # Name resolution, statistics, decryption secrets, custom and unknown blocks carry
        # nothing we analyse: skipped by their length.
        return None

    @property
    def feed(self) -> Feed:
        """The parse buffer; a block reader (`decode.scan`) moves `feed.pos` over the enhanced
        packet blocks it consumed (counting them in `frames`) and calls `read_block` for any
        other block."""
        return self._feed

    @property
    def big_endian(self) -> bool:
        """The byte order of the current section."""
        return self._order is _BE

    @property
    def skipping(self) -> bool:
        """Inside a section of an unsupported version: its blocks are skipped."""
        return self._skipping

    @property
    def interfaces(self) -> tuple[Interface, ...]:
        """The current section's interfaces, by interface id."""
        return tuple(self._interfaces)

    def _next_block(self) -> bool:
        """Frame the next block; False at the end of the input or after recording damage."""
        feed = self._feed
        if not feed.ensure(12):
            if feed.available():
                self._stop(f"truncated block header ({feed.available()} of 12 bytes)")
            return False
        problem = self._frame_block()
        if problem is not None:
            self._stop(problem)
            return False
        return True

    def _enhanced(self, buf: bytes, pos: int, end: int) -> RawPacket | None:
        iface_id, ts_hi, ts_lo, caplen, orig_len = self._order.epb.unpack_from(buf, pos + 8)
        return self._timed(iface_id, ts_hi, ts_lo, caplen, orig_len, buf, pos, end)

    def _obsolete(self, buf: bytes, pos: int, end: int) -> RawPacket | None:
        # Same layout as the EPB but for a 16-bit interface id followed by a drops count.
        iface_id, _drops, ts_hi, ts_lo, caplen, orig_len = self._order.opb.unpack_from(buf, pos + 8)
        return self._timed(iface_id, ts_hi, ts_lo, caplen, orig_len, buf, pos, end)

    def _timed(
        self,
        iface_id: int,
        ts_hi: int,
        ts_lo: int,
        caplen: int,
        orig_len: int,
        buf: bytes,
        pos: int,
        end: int,
    ) -> RawPacket | None:
        self.frames += 1
        if pos + 28 + caplen > end:
            self._notes.add(
                "pcapng-corrupt-block",
                f"frame {self.frames}: captured length {caplen} exceeds its block; packet skipped",
            )
            return None
        if iface_id >= len(self._interfaces):
            self._unknown_interface(iface_id)
            return None
        iface = self._interfaces[iface_id]
        if orig_len < caplen:
            self._notes.add(
                "caplen-exceeds-length",
                f"frame {self.frames}: captured length {caplen} exceeds the original length"
                f" {orig_len}; original length set to the captured length",
            )
            orig_len = caplen
        ts = ((ts_hi << 32) | ts_lo) * iface.mult // iface.div + iface.offset_ns
        data = buf[pos + 28 : pos + 28 + caplen]
        return RawPacket(self.frames, ts, iface.linktype, data, orig_len, iface.number)

    def _section(self, buf: bytes, pos: int) -> None:
        major, minor = self._order.shb.unpack_from(buf, pos)[3:5]
        self._interfaces = []
        self._skipping = major != 1
        if self._skipping:
            self._notes.add(
                "pcapng-section-skipped",
                f"section at byte {self._feed.base + pos} has unsupported version"
                f" {major}.{minor}; its blocks were skipped",
            )

    def _interface(self, buf: bytes, pos: int, end: int) -> None:
        order = self._order
        linktype, _reserved, snaplen = order.idb.unpack_from(buf, pos + 8)
        number = self._next_number
        self._next_number += 1
        mult, div, offset_ns = 1000, 1, 0  # default resolution: microseconds
        seen_resol = False
        for code, start, size in self._options(buf, pos + 16, end):
            if code == IF_TSRESOL:
                if size != 1 or seen_resol:
                    why = "duplicated" if seen_resol else f"has length {size}"
                    self._notes.add("pcapng-bad-option", f"interface {number}: if_tsresol {why}")
                    continue
                seen_resol = True
                res = resolution(buf[start])
                if res is None:
                    self._notes.add(
                        "invalid-timestamp",
                        f"interface {number}: if_tsresol 0x{buf[start]:02x} is not usable;"
                        " microseconds assumed",
                    )
                else:
                    mult, div = res
            elif code == IF_TSOFFSET:
                if size != 8:
                    self._notes.add(
                        "pcapng-bad-option", f"interface {number}: if_tsoffset has length {size}"
                    )
                    continue
                offset_ns = order.i64.unpack_from(buf, start)[0] * 1_000_000_000
        if mult < 1000 or div > 1:
            self.nanosecond = True
        self._interfaces.append(Interface(number, linktype, snaplen, mult, div, offset_ns))
        self.linktypes.add(linktype)

    def _options(self, buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
        """(code, value start, value length) of each option in buf[start:end]; bounded, and every
        step advances by at least 4 bytes."""
        unpack = self._order.opt.unpack_from
        for _ in range(MAX_OPTIONS):
            if start + 4 > end:
                return
            code, size = unpack(buf, start)
            if code == OPT_ENDOFOPT:
                return
            if start + 4 + size > end:
                self._notes.add(
                    "pcapng-bad-option", f"option {code} runs past the end of its block"
                )
                return
            yield code, start + 4, size
            start += 4 + ((size + 3) & ~3)
        self._notes.add("pcapng-bad-option", f"more than {MAX_OPTIONS} options in one block")

    def _simple(self, buf: bytes, pos: int, end: int) -> RawPacket | None:
        self.frames += 1
        if not self._interfaces:
            self._unknown_interface(0)
            return None
        iface = self._interfaces[0]
        orig_len = self._order.u32.unpack_from(buf, pos + 8)[0]
        # The SPB has no captured length: it is the original length cut at the snap length, and
        # the block may carry padding beyond it.
        caplen = orig_len if iface.snaplen == 0 else min(orig_len, iface.snaplen)
        caplen = min(caplen, end - (pos + 12))
        # An SPB has no timestamp: Wireshark shows 0.
        return RawPacket(
            self.frames,
            iface.offset_ns,
            iface.linktype,
            buf[pos + 12 : pos + 12 + caplen],
            orig_len,
            iface.number,
        )

    def _unknown_interface(self, iface_id: int) -> None:
        # tshark refuses the whole file here; we skip the one packet (its frame number stays
        # taken, so later frame numbers still match the file's record positions).
        self._notes.add(
            "pcapng-unknown-interface",
            f"frame {self.frames}: packet for interface {iface_id}, which the section does not"
            " describe; packet skipped",
        )

    def _stop(self, reason: str) -> None:
        self._damage.append(CaptureDamage(self._feed.offset, reason))
