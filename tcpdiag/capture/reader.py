"""`open_capture`: the one entry point that turns a path (or "-") into RawPackets.

The format is decided by content: the first bytes after decompression must be a pcap or pcapng
magic. Anything that prevents reading from the start is a `CaptureError` whose one-line message
names the input; anything that goes wrong later becomes `Capture.damage` or `Capture.notes`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import TracebackType
from typing import BinaryIO

from tcpdiag.capture.pcap import PcapReader, is_pcap_magic, is_variant_magic
from tcpdiag.capture.pcapng import PcapngReader, is_pcapng_magic
from tcpdiag.capture.records import CaptureDamage, CaptureInfo, CaptureNote, NoteBook
from tcpdiag.capture.remote import is_url, open_url
from tcpdiag.capture.source import Feed, InputStream, display_name
from tcpdiag.config import Limits
from tcpdiag.errors import CaptureError
from tcpdiag.model import RawPacket


class Capture:
    """An open capture: iterate it for RawPackets; `damage`, `notes` and `linktypes` are complete
    once the iteration has ended."""

    def __init__(
        self,
        stream: InputStream,
        feed: Feed,
        reader: PcapReader | PcapngReader,
        notes: NoteBook,
        damage: list[CaptureDamage],
    ) -> None:
        self._stream = stream
        self._feed = feed
        self._reader = reader
        self._notes = notes
        self.damage = damage
        self._started = False
        self.info = CaptureInfo(stream.path, reader.format, stream.compression, reader.nanosecond)

    @property
    def notes(self) -> list[CaptureNote]:
        return self._notes.notes()

    @property
    def frames_read(self) -> int:
        """Records read (the last frame number), once the iteration has ended."""
        return self._reader.frames

    @property
    def linktypes(self) -> set[int]:
        return set(self._reader.linktypes)

    def __iter__(self) -> Iterator[RawPacket]:
        if self._started:  # a stream is read once; a second loop gets nothing
            return
        self._started = True
        yield from self._reader.packets()
        self.finish_reading()

    def take_reader(self) -> PcapReader | PcapngReader | None:
        """For a block reader (`decode.scan`): the format's reader, which the caller then reads
        to the end instead of iterating this capture, calling `finish_reading` after. None when
        the capture has been iterated already."""
        if self._started:
            return None
        self._started = True
        return self._reader

    def finish_reading(self) -> None:
        """What only the end of the input tells: the input limit, a stream problem."""
        stream = self._stream
        self.info.nanosecond = self._reader.nanosecond
        end = self._feed.base + len(self._feed.buf)
        if stream.limit_hit:
            # Records cut by the limit are not damage of the file.
            self.damage[:] = [d for d in self.damage if not d.reason.startswith("truncated")]
            self._notes.add(
                "input-limit",
                f"stopped after {stream.max_input_bytes} bytes of (decompressed) input;"
                " the rest of the capture was not read (max_input_bytes)",
            )
        elif stream.problem is not None:
            self.damage.insert(0, CaptureDamage(end, stream.problem))

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> Capture:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_capture(
    path: str | os.PathLike[str],
    max_input_bytes: int | None = None,
    *,
    stdin: BinaryIO | None = None,
    fileobj: BinaryIO | None = None,
) -> Capture:
    """Open a pcap or pcapng file, plain, gzip or zstd, standard input for "-" (`stdin`
    replaces `sys.stdin.buffer`, for tests), a URL (through fsspec), or an already open binary
    `fileobj` that `path` names (the caller closes it). Raises CaptureError when it cannot be
    read at all."""
    name = os.fspath(path)
    limit = Limits().max_input_bytes if max_input_bytes is None else max_input_bytes
    if fileobj is None and is_url(name):
        stream = InputStream(name, limit, fileobj=open_url(name), owned=True)
    else:
        stream = InputStream(name, limit, stdin, fileobj)
    notes = NoteBook()
    damage: list[CaptureDamage] = []
    try:
        feed = Feed(stream.chunks())
        feed.ensure(4)
        head = feed.buf[feed.pos : feed.pos + 4]
        reader: PcapReader | PcapngReader
        if is_pcapng_magic(head):
            reader = PcapngReader(feed, notes, damage)
        elif is_pcap_magic(head):
            reader = PcapReader(feed, notes, damage)
        else:
            raise CaptureError(_not_a_capture(head, stream))
    except CaptureError as exc:
        stream.close()
        raise CaptureError(f"{display_name(name)}: {exc}") from None
    return Capture(stream, feed, reader, notes, damage)


def _not_a_capture(head: bytes, stream: InputStream) -> str:
    inside = f" in {stream.compression}-compressed data" if stream.compression else ""
    if stream.problem is not None and len(head) < 4:
        return f"{stream.problem}; no capture data"
    if not head:
        return f"empty{inside or ' file'}, not a capture" if not inside else f"no data{inside}"
    if len(head) < 4:
        return f"too short to be a capture ({len(head)} bytes{inside})"
    magic = f"0x{head.hex()}"
    if is_variant_magic(head):
        return f"unsupported pcap variant (magic {magic}){inside}"
    return f"unrecognised format (magic {magic}){inside}, not a pcap or pcapng capture"
