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

from mypy_extensions import mypyc_attr

from tcpdiag.model import Direction
from tcpdiag.tls.constants import MAX_RECORD_LENGTH, ContentType

SSLV2_CLIENT_HELLO: Final = -2  # pseudo content type for an SSLv2-compatible CLIENT-HELLO record
MAX_RECORDS_PER_CHUNK: Final = 4096  # Suricata's TOO_MANY_RECORDS_IN_PACKET idea: hostile input
_VALID_TYPES: Final = frozenset(int(t) for t in ContentType)
# Read for every record: as a Final int, compiled, a C integer (an IntEnum member is a dict
# and an attribute lookup).
_APPLICATION_DATA: Final = int(ContentType.APPLICATION_DATA)


@mypyc_attr(acyclic=True)
class Record:
    """One TLS record (or SSLv2 CLIENT-HELLO) as framed: `payload` is None when not kept.

    A plain class rather than a dataclass: compiled, a dataclass is built through its
    generated Python `__init__`, and the framer makes one of these for every record."""

    __slots__ = (
        "content_type",
        "frame",
        "header_size",
        "length",
        "offset",
        "payload",
        "time",
        "version",
    )

    def __init__(
        self,
        content_type: int,
        version: int,
        length: int,
        offset: int,
        frame: int,
        time: float,
        payload: bytes | None,
        header_size: int = 5,
    ) -> None:
        self.content_type = content_type
        self.version = version
        self.length = length  # payload length (header excluded)
        self.offset = offset  # stream offset of the record's first header byte
        self.frame = frame  # frame holding that byte
        self.time = time
        self.payload = payload
        self.header_size = header_size

    @property
    def size(self) -> int:
        return self.length + self.header_size


@mypyc_attr(acyclic=True)
class RecordNote:
    """What the flight checks (`flights.py`) keep of a record: who sent it, where, its size
    (header included; the full size for a record cut short, `got` then says how many bytes
    arrived) and its `tokens` (handshake message names, "ChangeCipherSpec", "Alert"...).

    A plain class rather than a dataclass, like `Record`: the stream makes one per record of
    the handshake."""

    __slots__ = ("frame", "got", "offset", "sender", "size", "time", "tokens")

    def __init__(
        self,
        sender: Direction,
        frame: int,
        time: float,
        offset: int,
        size: int,
        tokens: tuple[str, ...],
        got: int | None = None,
    ) -> None:
        self.sender = sender
        self.frame = frame
        self.time = time
        self.offset = offset
        self.size = size
        self.tokens = tokens
        self.got = got

    def describe(self) -> str:
        what = "+".join(self.tokens) if self.tokens else "?"
        if self.got is not None:
            return f"{what} (partial: {self.got} of {self.size} B)"
        return f"{what} {self.size} B"


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
    if length == 0 and ct != _APPLICATION_DATA:
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
        "_start_frame",
        "_start_offset",
        "_start_time",
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
        self._header = bytearray()  # a header split over chunks, while it is collected
        self._hsize = 5
        self._body = bytearray()  # a kept payload split over chunks, while it is collected
        self._left = 0
        self._ct = 0
        self._version = 0
        self._length = 0
        self._keep = False
        # where the current record starts: stream offset, frame and time of its first byte
        self._start_offset = 0
        self._start_frame = 0
        self._start_time = 0.0

    @property
    def in_record(self) -> bool:
        return bool(self._header) or self._left > 0

    def partial(self) -> Partial | None:
        start = (self._start_offset, self._start_frame, self._start_time)
        if self._header:
            return Partial(None, len(self._header), None, *start)
        if self._left > 0:
            total = self._length + self._hsize
            return Partial(self._ct, total - self._left, total, *start)
        return None

    def skip_body(self, n: int) -> bool:
        """Take `n` bytes that lie inside the body of a record whose payload is not kept, short
        of its end: all `feed` would do with them is count them. Most segments of a bulk
        transfer are such, in the middle of an application data record. False, taking
        nothing, for any other bytes (`feed` them)."""
        left = self._left
        if left <= n or self._keep or self.broken is not None:
            return False
        self._left = left - n
        self.offset += n
        return True

    def feed(self, data: bytes, frame: int, time: float) -> list[Record]:
        out: list[Record] = []
        pos = 0
        n = len(data)
        base = self.offset
        while pos < n and self.broken is None:
            if self._left == 0:
                if not self._header:
                    self._start_offset = base + pos
                    self._start_frame = frame
                    self._start_time = time
                    self._hsize = 5
                    if self.allow_sslv2 and data[pos] & 0x80:
                        self._hsize = 2
                self.allow_sslv2 = False
                hsize = self._hsize
                if not self._header and n - pos >= hsize:
                    # the usual case: a whole header in this chunk, read in place
                    started = self._start_body(data, pos, data, pos + hsize, frame)
                    pos += hsize
                else:
                    take = min(hsize - len(self._header), n - pos)
                    self._header += data[pos : pos + take]
                    pos += take
                    if len(self._header) < hsize:
                        break
                    hdr = bytes(self._header)
                    self._header.clear()
                    started = self._start_body(hdr, 0, data, pos, frame)
                if not started:
                    break
                if self._left == 0:
                    out.append(self._emit(b"" if self._keep else None))
                    self._check_count(len(out), base + pos, frame)
                    continue
            take = min(self._left, n - pos)
            payload = None
            if self._keep:
                if not self._body and take == self._left:
                    payload = data[pos : pos + take]  # a whole payload in this chunk: one copy
                else:
                    self._body += data[pos : pos + take]
            pos += take
            self._left -= take
            if self._left == 0:
                if self._keep and payload is None:
                    payload = bytes(self._body)
                    self._body.clear()
                out.append(self._emit(payload))
                self._check_count(len(out), base + pos, frame)
        self.offset = base + n
        return out

    def _check_count(self, count: int, offset: int, frame: int) -> None:
        if count > MAX_RECORDS_PER_CHUNK:
            reason = f"more than {MAX_RECORDS_PER_CHUNK} records in one segment"
            self.broken = Malformed(offset, b"", reason, frame)

    def _start_body(self, hdr: bytes, at: int, data: bytes, after: int, frame: int) -> bool:
        """Read the record header at `hdr[at:]`; `data[after:]` follows it (a few of those
        bytes go into the report of a header that is bad)."""
        if self._hsize == 2:
            self._ct = SSLV2_CLIENT_HELLO
            self._version = 0x0002
            self._length = ((hdr[at] & 0x7F) << 8) | hdr[at + 1]
            problem = None if self._length >= 9 else "SSLv2 record too short"
        else:
            self._ct = hdr[at]
            self._version = (hdr[at + 1] << 8) | hdr[at + 2]
            self._length = (hdr[at + 3] << 8) | hdr[at + 4]
            problem = header_problem(self._ct, self._version, self._length)
        if problem is not None:
            bad = hdr[at : at + self._hsize] + data[after : after + 11]
            self.broken = Malformed(self._start_offset, bad, problem, frame)
            return False
        self._left = self._length
        self._keep = self._keep_ct(self._ct)
        return True

    def _emit(self, payload: bytes | None) -> Record:
        return Record(
            self._ct,
            self._version,
            self._length,
            self._start_offset,
            self._start_frame,
            self._start_time,
            payload,
            self._hsize,
        )
