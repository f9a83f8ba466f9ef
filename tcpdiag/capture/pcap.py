"""Classic libpcap files: a 24-byte global header, then 16-byte record headers each followed by
the captured bytes.

No length field is trusted for allocation: the snap length is only compared against, and a
record's captured length above `MAX_CAPLEN` means the file is corrupt (as libpcap and Wireshark
decide), so reading stops there with a `CaptureDamage` instead of reading gigabytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from tcpdiag.capture.records import MAX_CAPLEN, CaptureDamage, NoteBook
from tcpdiag.capture.source import Feed
from tcpdiag.errors import CaptureError
from tcpdiag.model import RawPacket

# Magic as read little-endian -> (byte order, nanosecond timestamps).
MAGICS = {
    0xA1B2C3D4: ("<", False),
    0xA1B23C4D: ("<", True),
    0xD4C3B2A1: (">", False),
    0x4D3CB2A1: (">", True),
}
# Other known pcap variants (Kuznetzov's modified pcap, Navtel, IXIA): recognised, refused.
VARIANT_MAGICS = {0xA1B2CD34, 0x34CDB2A1, 0xA12B3C4D, 0x4D3C2BA1, 0x1C0001AC, 0xAC01001C}
HEADER_LEN = 24

_U32_LE = struct.Struct("<I")
# NamedTuple construction without the generated Python-level __new__ (same objects, ~2x faster).
_tuple_new = tuple.__new__
# Record-header sizes beyond the standard 16 bytes: Kuznetzov's "modified" pcap (ss990915,
# ss991029: +8), Nokia IPSO (+4). They share the standard magic, so only content tells.
_VARIANT_EXTRA = (0, 8, 4)
_VARIANT_NAMES = {8: "modified pcap", 4: "Nokia"}
_MAX_ORIG_LEN = 128 << 20  # Wireshark's bound on a plausible length on the wire
_RESERVED_LINKTYPE_BITS = 0x03FF0000


def is_pcap_magic(head: bytes) -> bool:
    return len(head) >= 4 and _U32_LE.unpack_from(head)[0] in MAGICS


def is_variant_magic(head: bytes) -> bool:
    return len(head) >= 4 and _U32_LE.unpack_from(head)[0] in VARIANT_MAGICS


class PcapReader:
    """Reads records after the global header, which the constructor parses (CaptureError)."""

    format = "pcap"

    def __init__(self, feed: Feed, notes: NoteBook, damage: list[CaptureDamage]) -> None:
        self._feed = feed
        self._notes = notes
        self._damage = damage
        self.frames = 0  # records read so far (set when the iteration ends)
        if not feed.ensure(HEADER_LEN):
            raise CaptureError(f"truncated pcap header ({feed.available()} of 24 bytes)")
        magic = _U32_LE.unpack_from(feed.buf, feed.pos)[0]
        order, self.nanosecond = MAGICS[magic]
        self.big_endian = order == ">"
        header = struct.Struct(order + "IHHiIII")
        _, major, minor, _zone, _sigfigs, snaplen, linkfield = header.unpack_from(
            feed.buf, feed.pos
        )
        # libpcap reads 2.x up to 2.4 (2.2/2.3 may have caplen and len swapped); anything else
        # is a format we do not know, and guessing would misparse every record.
        if major != 2 or minor > 4:
            raise CaptureError(f"unsupported pcap version {major}.{minor} (expected 2.4)")
        self.version = (major, minor)
        feed.pos += HEADER_LEN
        self._record = struct.Struct(order + "IIII")
        self.snaplen = snaplen
        self.linktype = linkfield & 0xFFFF
        if linkfield & _RESERVED_LINKTYPE_BITS:
            # Reserved bits set: the link type is not one we can trust to decode.
            self.linktype = linkfield
            notes.add(
                "linktype-reserved-bits", f"link type field 0x{linkfield:08x} has reserved bits set"
            )
        if snaplen == 0 or snaplen > MAX_CAPLEN:
            notes.add("bogus-snaplen", f"pcap header snaplen {snaplen} is not a usable snap length")
        self.linktypes = {self.linktype}
        # Bytes after the standard 16 of each record header (0 unless a variant is detected).
        self.extra = 0 if self.nanosecond else self._guess_variant()

    def _guess_variant(self) -> int:
        """Wireshark's rule for the microsecond magic, which several pcap variants share: score
        the first two record headers under each record-header size by how many fields are
        absurd, and keep the best (the standard layout first, and it wins ties). Only damaged
        files, where the standard layout gives absurd lengths from the start, are affected: a
        bad timestamp alone does not move record boundaries, so it never selects a variant."""
        score, lengths_bad = self._absurdity(16)
        if not lengths_bad:
            return 0
        best, best_score = 0, score
        for extra in _VARIANT_EXTRA[1:]:
            score, _ = self._absurdity(16 + extra)
            if score < best_score:
                best, best_score = extra, score
            if score == 0:
                break
        if best:
            self._notes.add(
                "pcap-variant",
                f"record headers read as {16 + best} bytes ({_VARIANT_NAMES[best]} layout), as"
                " Wireshark does: the standard layout gives absurd lengths",
            )
        return best

    def _absurdity(self, header_len: int) -> tuple[int, bool]:
        """(absurd fields in the first two record headers, whether any of them is a length)."""
        feed = self._feed
        unpack = self._record.unpack_from
        offset = score = 0
        lengths_bad = False
        for _ in range(2):
            if not feed.ensure(offset + header_len):
                break
            _, frac, caplen, orig_len = unpack(feed.buf, feed.pos + offset)
            lengths = (caplen > MAX_CAPLEN) + (orig_len > _MAX_ORIG_LEN) + (caplen > orig_len)
            lengths_bad = lengths_bad or lengths > 0
            score += (frac >= 1_000_000) + lengths
            if caplen > MAX_CAPLEN:  # never buffer by an absurd length
                break
            offset += header_len + caplen
        return score, lengths_bad

    @property
    def snaplen_bound(self) -> int:
        """Captured lengths above this send a record to the slow path (`read_record`): notes,
        damage, the caplen/len swap of old versions (-1 for those: every record)."""
        if self.version < (2, 4):
            return -1
        return self.snaplen if 0 < self.snaplen <= MAX_CAPLEN else MAX_CAPLEN

    @property
    def header_len(self) -> int:
        """Bytes of each record header (16, more in a pcap variant)."""
        return 16 + self.extra

    @property
    def feed(self) -> Feed:
        """The parse buffer; a block reader (`decode.scan`) moves `feed.pos` over the records it
        consumed and calls `read_record` for the one it leaves."""
        return self._feed

    def packets(self) -> Iterator[RawPacket]:
        feed = self._feed
        unpack = self._record.unpack_from
        linktype = self.linktype
        sec_ns = 1_000_000_000
        frac_mult = 1 if self.nanosecond else 1000
        frac_limit = 1_000_000_000 if self.nanosecond else 1_000_000
        snaplen = self.snaplen_bound
        hlen = self.header_len
        frame = 0
        try:
            while True:
                # The common case inline: a plainly fine record wholly in the buffer.
                buf = feed.buf
                pos = feed.pos
                if len(buf) - pos >= hlen:
                    sec, frac, caplen, orig_len = unpack(buf, pos)
                    end = pos + hlen + caplen
                    if (
                        end <= len(buf)
                        and caplen <= snaplen
                        and orig_len >= caplen
                        and frac < frac_limit
                    ):
                        feed.pos = end
                        frame += 1
                        data = buf[pos + hlen : end]
                        ts_ns = sec * sec_ns + frac * frac_mult
                        yield _tuple_new(RawPacket, (frame, ts_ns, linktype, data, orig_len, 0))
                        continue
                raw = self.read_record(frame + 1)
                if raw is None:
                    return
                frame += 1
                yield raw
        finally:
            # Records read, skipped ones included: the frame number reached.
            self.frames = frame

    def read_record(self, frame: int) -> RawPacket | None:
        """Record number `frame` at `feed.pos`, however odd its header or wherever it ends
        (refilling the buffer); None at the end of the capture or after damage (recorded)."""
        feed = self._feed
        hlen = self.header_len
        if not feed.ensure(hlen):
            if feed.available():
                self._stop(f"truncated record header ({feed.available()} of {hlen} bytes)")
            return None
        sec, frac, caplen, orig_len = self._record.unpack_from(feed.buf, feed.pos)
        frac_limit = 1_000_000_000 if self.nanosecond else 1_000_000
        if caplen > self.snaplen_bound or orig_len < caplen or frac >= frac_limit:
            fixed = self._odd_record(frame, frac, caplen, orig_len)
            if fixed is None:
                return None
            caplen, orig_len = fixed
        if not feed.ensure(hlen + caplen):
            got = feed.available() - hlen
            self._stop(f"truncated record: {got} of {caplen} captured bytes")
            return None
        pos = feed.pos
        end = pos + hlen + caplen
        feed.pos = end
        ts_ns = sec * 1_000_000_000 + frac * (1 if self.nanosecond else 1000)
        data = feed.buf[pos + hlen : end]
        return _tuple_new(RawPacket, (frame, ts_ns, self.linktype, data, orig_len, 0))

    def _odd_record(
        self, frame: int, frac: int, caplen: int, orig_len: int
    ) -> tuple[int, int] | None:
        """The slow path for a record header that is not plainly fine: (caplen, orig_len) to use,
        or None after recording damage when nothing after it can be trusted."""
        notes = self._notes
        if self.version < (2, 3) or (self.version == (2, 3) and caplen > orig_len):
            caplen, orig_len = orig_len, caplen
        if caplen > MAX_CAPLEN:
            self._stop(
                f"record {frame} has captured length {caplen}, above the maximum {MAX_CAPLEN}"
            )
            return None
        if 0 < self.snaplen < caplen:
            notes.add(
                "caplen-exceeds-snaplen",
                f"frame {frame}: captured length {caplen} exceeds the snap length {self.snaplen}",
            )
        if orig_len < caplen:
            notes.add(
                "caplen-exceeds-length",
                f"frame {frame}: captured length {caplen} exceeds the original length {orig_len};"
                " original length set to the captured length",
            )
            orig_len = caplen
        if frac >= (1_000_000_000 if self.nanosecond else 1_000_000):
            unit = "nanoseconds" if self.nanosecond else "microseconds"
            notes.add(
                "invalid-timestamp",
                f"frame {frame}: timestamp fraction {frac} {unit} is out of range",
            )
        return caplen, orig_len

    def _stop(self, reason: str) -> None:
        self._damage.append(CaptureDamage(self._feed.offset, reason))
