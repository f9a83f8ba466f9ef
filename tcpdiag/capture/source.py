"""The input byte stream: a file or standard input, decompressed when needed, bounded in size.

Theory of operation: `InputStream` opens the input and peeks its first bytes to tell gzip and
zstd from a plain capture (by content, never by name; standard input cannot seek, so the peeked
bytes are handed back in front of the rest). It then yields the capture bytes as chunks. Any
problem after the start (a damaged or truncated compressed stream, a read error, the size limit)
ends the chunks early and is recorded in `problem` / `limit_hit` instead of raising: the readers
report whatever packets came before it. `Feed` turns the chunks into a buffer the readers parse
with `struct.unpack_from`, keeping the absolute stream offset for damage reports.

Decompression output is bounded per step (zlib's `max_length`; small zstd input pieces), so a
decompression bomb costs time up to the limit, never memory.
"""

from __future__ import annotations

import importlib
import os
import stat
import sys
import zlib
from collections.abc import Generator, Iterator
from types import ModuleType
from typing import BinaryIO

import zstandard

from tcpdiag.errors import CaptureError


def _load_isal() -> ModuleType | None:
    """ISA-L's inflate, ~1.7x zlib's (a wheel for the common platforms; zlib where none). By
    name: mypyc type-checks this module where isal is not installed."""
    try:
        return importlib.import_module("isal.isal_zlib")
    except ImportError:  # pragma: no cover - isal is a dependency
        return None


_isal_zlib = _load_isal()

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

_READ_SIZE = 1 << 18
# Largest decompressed piece produced in one step (gzip) and the zstd input piece size: a zstd
# block of 128 KiB can be encoded in 4 bytes, so 256 bytes of input yield at most ~8 MiB. Small
# zstd pieces also bound what a damaged frame loses: the output of the piece that failed.
_OUT_STEP = 1 << 20
_ZSTD_IN_STEP = 1 << 8
_SALVAGE_STEP = 64
_COALESCE = 1 << 16


def display_name(path: str) -> str:
    return "<stdin>" if path == "-" else path


def _regular_file(fileobj: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fileobj.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # fsspec files have no descriptor
        return True


class InputStream:
    """Decompressed chunks of one input; see the module docstring."""

    def __init__(
        self,
        path: str,
        max_input_bytes: int,
        stdin: BinaryIO | None = None,
        fileobj: BinaryIO | None = None,
        owned: bool = False,
    ) -> None:
        self.path = path
        self.max_input_bytes = max_input_bytes
        self.problem: str | None = None  # why the stream ended early (damage), if it did
        self.limit_hit = False
        self._owned: BinaryIO | None = None
        self._raw: BinaryIO
        if fileobj is not None:
            # An already open file (a URL through fsspec): `path` only names it.
            self._raw = fileobj
            self._owned = fileobj if owned else None
        elif path == "-":
            self._raw = stdin if stdin is not None else sys.stdin.buffer
        else:
            try:
                self._raw = self._owned = open(path, "rb")  # noqa: SIM115 - closed by close()
            except OSError as exc:
                raise CaptureError(f"{path}: {exc.strerror or exc}") from None
        # A pipe or FIFO is read with read1 (what is there now, so a live writer's packets flow
        # through); a regular file with full reads.
        self._pipe = self._owned is None or not _regular_file(self._raw)
        try:
            head = self._read_head(4)
        except CaptureError:
            self.close()
            raise
        self.compression: str | None = None
        if head.startswith(GZIP_MAGIC):
            self.compression = "gzip"
        elif head.startswith(ZSTD_MAGIC):
            self.compression = "zstd"
        self._head = head

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def _read_raw(self) -> bytes:
        try:
            return _read1(self._raw) if self._pipe else self._raw.read(_READ_SIZE)
        except (OSError, ValueError) as exc:  # ValueError: read after close()
            if self.problem is None:
                self.problem = f"read error: {getattr(exc, 'strerror', None) or exc}"
            return b""

    def _read_head(self, n: int) -> bytes:
        """At least n bytes unless the input is shorter (a pipe may deliver them piecemeal)."""
        head = b""
        while len(head) < n:
            try:
                more = _read1(self._raw) if self._pipe else self._raw.read(n - len(head))
            except OSError as exc:
                raise CaptureError(f"{display_name(self.path)}: {exc.strerror or exc}") from None
            if not more:
                break
            head += more
        return head

    def _raw_chunks(self) -> Iterator[bytes]:
        if self._head:  # once: a second reading of the input (`_gunzip`) starts by seeking
            head, self._head = self._head, b""
            yield head
        while self.problem is None:
            chunk = self._read_raw()
            if not chunk:
                return
            yield chunk

    def chunks(self) -> Iterator[bytes]:
        """The capture bytes, decompressed, stopping at `max_input_bytes`."""
        if self.compression == "gzip":
            source = self._gunzip()
        elif self.compression == "zstd":
            source = self._unzstd()
        else:
            source = self._raw_chunks()
        left = self.max_input_bytes
        for chunk in source:
            if len(chunk) >= left:
                if chunk[:left]:
                    yield chunk[:left]
                # Only a limit if there is more to come; a file of exactly the limit is complete.
                if len(chunk) > left or next(source, b""):
                    self.limit_hit = True
                return
            left -= len(chunk)
            yield chunk

    def _gunzip(self) -> Iterator[bytes]:
        if _isal_zlib is None or self._pipe:
            yield from self._inflate(self._raw_chunks(), 0, fast=False)
            return
        # ISA-L first (~1.7x zlib's speed). A member it cannot read is read again by zlib from
        # the member's start (a regular file can seek), its bytes given already skipped: what
        # is kept of a damaged member, and the words that say why, are zlib's, as on a pipe.
        # One exception, seen once in 6,000 random damages: ISA-L gave 5 bytes of a block whose
        # header zlib rejects before giving any; those bytes cannot be taken back, and stay.
        again = yield from self._inflate(self._raw_chunks(), 0, fast=True)
        if again is not None:
            start, given = again
            try:
                self._raw.seek(start)
            except (OSError, ValueError) as exc:
                self.problem = f"read error: {getattr(exc, 'strerror', None) or exc}"
                return
            yield from _skip(self._inflate(self._raw_chunks(), start, fast=False), given)

    def _inflate(
        self, raws: Iterator[bytes], pos: int, fast: bool
    ) -> Generator[bytes, None, tuple[int, int] | None]:
        """The gzip members from input offset `pos` on, by zlib (`fast`: ISA-L). zlib by hand
        rather than gzip.GzipFile: GzipFile loses the data of a read() call that hits a
        truncated stream or bad CRC, and raises instead of reporting trailing garbage.

        `fast` returns, instead of salvaging a damaged or unfinished member (or of reading an
        unusual header), where it began and how many bytes of it were given, for zlib to read
        it again."""
        inflater = _isal_zlib if fast and _isal_zlib is not None else zlib
        new, error = inflater.decompressobj, inflater.error
        dec = new(31)
        member_bytes = 0  # input fed to the current member (0: between members)
        member_start = pos  # its offset in the input, and the bytes it gave
        given = 0
        pending = b""
        for raw in raws:
            data = pending + raw  # `pos` is the offset of data[0]
            pending = b""
            while True:
                if member_bytes == 0:
                    member_start, given = pos, 0
                    if len(data) < (_GZIP_HEADER if fast else 2):
                        pending = data
                        break
                    if fast and not _plain_header(data):
                        return member_start, 0  # zlib's words for whatever this is
                    if not data.startswith(GZIP_MAGIC):
                        # gzip(1) says "trailing garbage ignored"; we keep the packets and say so.
                        if data.strip(b"\x00"):
                            self.problem = "gzip: trailing garbage after the last member"
                        return None
                try:
                    saved = None if fast else dec.copy()
                    out = dec.decompress(data, _OUT_STEP)
                except error as exc:
                    if saved is None:
                        return member_start, given
                    # Salvage what decompresses before the bad spot, a small step at a time.
                    yield from _salvage(saved, data)
                    self.problem = f"gzip data damaged ({exc})"
                    return None
                member_bytes += len(data) - len(dec.unconsumed_tail)
                if out:
                    given += len(out)
                    yield out
                if dec.eof:
                    pos += len(data) - len(dec.unused_data)
                    data = dec.unused_data
                    dec = new(31)
                    member_bytes = 0
                    continue
                pos += len(data) - len(dec.unconsumed_tail)
                data = dec.unconsumed_tail
                # A full step may leave output inside zlib with no input left: ask again.
                if not data and len(out) < _OUT_STEP:
                    break
        if fast and (member_bytes or pending):
            # Cut short (or a few bytes after the last member): zlib reads the member again.
            # ISA-L gives the same bytes of a cut member, but where damage lies just before
            # the cut zlib may find it and ISA-L only wait for more input.
            return member_start, given
        if self.problem is None and (member_bytes or pending):
            self.problem = "gzip stream truncated (no end-of-stream marker)"
        return None

    def _unzstd(self) -> Iterator[bytes]:
        dec = zstandard.ZstdDecompressor().decompressobj()
        in_frame = False
        out_parts: list[bytes] = []
        out_size = 0
        for raw in self._raw_chunks():
            # The pieces by position: `data = data[step:]` copied the rest of the chunk at
            # every piece, ~1,000 times per chunk (155 MB decompressed: 0.71 s, now 0.12 s).
            data, at = raw, 0
            while at < len(data):
                piece = data[at : at + _ZSTD_IN_STEP]
                at += _ZSTD_IN_STEP
                try:
                    out = dec.decompress(piece)
                except zstandard.ZstdError as exc:
                    self.problem = (
                        f"zstd data damaged ({exc})" if in_frame else "zstd: trailing garbage"
                    )
                    if out_parts:
                        yield b"".join(out_parts)
                    return
                in_frame = True
                if out:
                    out_parts.append(out)
                    out_size += len(out)
                    if out_size >= _COALESCE:
                        yield b"".join(out_parts)
                        out_parts, out_size = [], 0
                if dec.eof:
                    # One decompressobj per frame: hand it the rest of the input.
                    data, at = dec.unused_data + data[at:], 0
                    dec = zstandard.ZstdDecompressor().decompressobj()
                    in_frame = False
        if out_parts:
            yield b"".join(out_parts)
        if in_frame and self.problem is None:
            self.problem = "zstd stream truncated (frame not finished)"


# A gzip member's fixed header: magic, method, flags, mtime, extra flags, OS.
_GZIP_HEADER = 10
_DEFLATE = 8
_RESERVED_FLAGS = 0xE0
_FHCRC = 0x02


def _plain_header(data: bytes) -> bool:
    """A gzip member header ISA-L reads as zlib does: deflate, no reserved flag (ISA-L ignores
    those bits; zlib rejects them) and no header CRC (which only zlib checks)."""
    return (
        data.startswith(GZIP_MAGIC)
        and data[2] == _DEFLATE
        and not data[3] & (_RESERVED_FLAGS | _FHCRC)
    )


def _skip(chunks: Iterator[bytes], n: int) -> Iterator[bytes]:
    """`chunks` without their first n bytes."""
    for chunk in chunks:
        if n >= len(chunk):
            n -= len(chunk)
            continue
        yield chunk[n:] if n else chunk
        n = 0


def _salvage(dec: zlib._Decompress, data: bytes) -> Iterator[bytes]:
    """Decompress `data` from the state before the error, a small step at a time, and the step
    that fails once more a byte at a time: zlib raises for a bad CRC only after the trailer's
    bytes, so every byte of output before the bad spot is kept (as `gzip -dc` does)."""
    for i in range(0, len(data), _SALVAGE_STEP):
        saved = dec.copy()
        try:
            out = dec.decompress(data[i : i + _SALVAGE_STEP], _OUT_STEP)
        except zlib.error:
            dec = saved
            for j in range(i, min(i + _SALVAGE_STEP, len(data))):
                try:
                    out = dec.decompress(data[j : j + 1], _OUT_STEP)
                except zlib.error:
                    return
                if out:
                    yield out
            return
        if out:
            yield out


def _read1(stream: BinaryIO) -> bytes:
    # A pipe: return what is available rather than waiting for a full buffer.
    read1 = getattr(stream, "read1", None)
    if read1 is not None:
        data: bytes = read1(_READ_SIZE)
        return data
    return stream.read(_READ_SIZE)


class Feed:
    """A parse buffer over a chunk iterator. Readers use `buf`/`pos` directly (hot path) and call
    `ensure(n)` when fewer than n bytes are left; `base` is the stream offset of `buf[0]`.

    A record that straddles two chunks is served from a small bridge: the rest of the old chunk
    and as much of the next as asked for. Once the bridge is used up, `buf` is the next chunk
    itself, from where the bridge left it. Joining the rest of a chunk to the whole of the next
    copied every byte of the capture once more (~4% of an analysis)."""

    __slots__ = ("_chunks", "_next", "_next_base", "_next_pos", "base", "buf", "pos")

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.buf = b""
        self.pos = 0
        self.base = 0
        # The chunk after a bridge, its stream offset, and how much of it the bridge holds.
        self._next: bytes | None = None
        self._next_base = 0
        self._next_pos = 0

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def available(self) -> int:
        return len(self.buf) - self.pos

    def ensure(self, n: int) -> bool:
        """Make n bytes available at `pos`; False (with what there is kept) at end of input."""
        have = len(self.buf) - self.pos
        if have >= n:
            return True
        if have == 0 and self._next is not None:  # the bridge is used up: on to its chunk
            self.buf, self.base, self.pos = self._next, self._next_base, self._next_pos
            self._next = None
            have = len(self.buf) - self.pos
            if have >= n:
                return True
        parts = [self.buf[self.pos :]] if have else []
        self.base += self.pos
        self.pos = 0
        # The chunk after a bridge that needs more comes first, from where the bridge left it.
        chunk, start = (self._next, self._next_pos) if self._next is not None else (None, 0)
        self._next = None
        while have < n:
            if chunk is None:
                chunk, start = next(self._chunks, None), 0
                if chunk is None:
                    break
            size = len(chunk) - start
            if have and have + size > n:
                # A bridge: the rest of this chunk is served from the chunk itself after it.
                # (self.base + have: the stream offset of chunk[start])
                end = start + n - have
                parts.append(chunk[start:end])
                self._next, self._next_base, self._next_pos = chunk, self.base + have - start, end
                have = n
                break
            parts.append(chunk[start:] if start else chunk)
            have += size
            chunk = None
        self.buf = parts[0] if len(parts) == 1 else b"".join(parts)
        return have >= n
