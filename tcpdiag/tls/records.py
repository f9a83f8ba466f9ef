"""The record layer of one direction: cut a byte stream into TLS records.

Theory of operation: bytes arrive in stream order, in chunks of any size (one TCP segment's
payload each). The framer is a two-state machine, HEADER (collecting the 5-byte header) and BODY
(counting `length` payload bytes), so a record split over segments, or many records in one
segment, cost the same. Payloads are kept only for content types the caller asks for
(plaintext handshake, alerts, CCS); application data is counted and dropped, which keeps memory
bounded while record boundaries are still followed exactly.

Bytes that cannot start a record stop the framer for good (`broken`): after one bad header
there is no way to find the next boundary, and guessing would invent records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from tcpdiag.tls.constants import MAX_RECORD_LENGTH, ContentType

SSLV2_CLIENT_HELLO: Final = -2  # pseudo content type for an SSLv2-compatible CLIENT-HELLO record
MAX_RECORDS_PER_CHUNK: Final = 4096  # Suricata's TOO_MANY_RECORDS_IN_PACKET idea: hostile input
_VALID_TYPES: Final = frozenset(int(t) for t in ContentType)


@dataclass(slots=True)
class Record:
    content_type: int
    version: int
    length: int  # payload length (header excluded)
    offset: int  # stream offset of the record's first header byte
    frame: int  # frame holding that byte
    time: float
    payload: bytes | None  # None when not kept
    header_size: int = 5

    @property
    def size(self) -> int:
        return self.length + self.header_size


@dataclass(slots=True)
class Malformed:
    offset: int
    data: bytes  # the offending bytes (header and a few after it)
    reason: str
    frame: int


@dataclass(slots=True)
class Partial:
    """A record whose end never arrived."""

    content_type: int | None  # None when even the header was incomplete
    got: int  # bytes that arrived, header included
    total: int | None  # full size, header included (None when the header was incomplete)
    offset: int
    frame: int
    time: float


def header_problem(ct: int, version: int, length: int) -> str | None:
    """Why these 5 bytes cannot be a TLS record header, or None when they can."""
    if ct not in _VALID_TYPES:
        return f"unknown content type {ct}"
    if version >> 8 != 3 or (version & 0xFF) > 4:
        return f"bad record version 0x{version:04x}"
    if length > MAX_RECORD_LENGTH:
        return f"record length {length} above the maximum {MAX_RECORD_LENGTH}"
    if length == 0 and ct != ContentType.APPLICATION_DATA:
        return "zero-length record"
    return None


class RecordFramer:
    __slots__ = (
        "_body",
        "_ct",
        "_header",
        "_hsize",
        "_keep",
        "_keep_ct",
        "_left",
        "_length",
        "_start",
        "_version",
        "allow_sslv2",
        "broken",
        "offset",
    )

    def __init__(self, keep: Callable[[int], bool], allow_sslv2: bool = False) -> None:
        self._keep_ct = keep
        self.allow_sslv2 = allow_sslv2  # only the very first record of a client may be SSLv2
        self.offset = 0  # stream offset of the next byte to arrive
        self.broken: Malformed | None = None
        self._header = bytearray()
        self._hsize = 5
        self._body = bytearray()
        self._left = 0
        self._ct = 0
        self._version = 0
        self._length = 0
        self._keep = False
        self._start: tuple[int, int, float] = (0, 0, 0.0)  # offset, frame, time

    @property
    def in_record(self) -> bool:
        return bool(self._header) or self._left > 0

    def partial(self) -> Partial | None:
        if self._header:
            return Partial(None, len(self._header), None, *self._start)
        if self._left > 0:
            total = self._length + self._hsize
            return Partial(self._ct, total - self._left, total, *self._start)
        return None

    def feed(self, data: bytes, frame: int, time: float) -> list[Record]:
        out: list[Record] = []
        pos = 0
        n = len(data)
        base = self.offset
        while pos < n and self.broken is None:
            if self._left == 0:
                if not self._header:
                    self._start = (base + pos, frame, time)
                    self._hsize = 5
                    if self.allow_sslv2 and data[pos] & 0x80:
                        self._hsize = 2
                self.allow_sslv2 = False
                take = min(self._hsize - len(self._header), n - pos)
                self._header += data[pos : pos + take]
                pos += take
                if len(self._header) < self._hsize:
                    break
                if not self._start_body(data[pos : pos + 11], frame):
                    break
                if self._left == 0:
                    out.append(self._emit())
                    self._check_count(len(out), base + pos, frame)
                    continue
            take = min(self._left, n - pos)
            if self._keep:
                self._body += data[pos : pos + take]
            pos += take
            self._left -= take
            if self._left == 0:
                out.append(self._emit())
                self._check_count(len(out), base + pos, frame)
        self.offset = base + n
        return out

    def _check_count(self, count: int, offset: int, frame: int) -> None:
        if count > MAX_RECORDS_PER_CHUNK:
            reason = f"more than {MAX_RECORDS_PER_CHUNK} records in one segment"
            self.broken = Malformed(offset, b"", reason, frame)

    def _start_body(self, following: bytes, frame: int) -> bool:
        hdr = bytes(self._header)
        self._header.clear()
        if self._hsize == 2:
            self._ct = SSLV2_CLIENT_HELLO
            self._version = 0x0002
            self._length = ((hdr[0] & 0x7F) << 8) | hdr[1]
            problem = None if self._length >= 9 else "SSLv2 record too short"
        else:
            self._ct = hdr[0]
            self._version = (hdr[1] << 8) | hdr[2]
            self._length = (hdr[3] << 8) | hdr[4]
            problem = header_problem(self._ct, self._version, self._length)
        if problem is not None:
            self.broken = Malformed(self._start[0], hdr + following, problem, frame)
            return False
        self._left = self._length
        self._keep = self._keep_ct(self._ct)
        self._body.clear()
        return True

    def _emit(self) -> Record:
        payload = bytes(self._body) if self._keep else None
        self._body.clear()
        offset, frame, time = self._start
        return Record(
            self._ct, self._version, self._length, offset, frame, time, payload, self._hsize
        )
