"""What a capture reader reports besides packets: what the input is, notes, and damage.

`CaptureNote`s are aggregated by name (one note per kind of oddity, with a count and the first
occurrence in the message) so that a file with a million bad records yields one line, not a million.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

# Largest captured length we accept for one record: libpcap's and Wireshark's maximum snapshot
# length. A bigger caplen in a classic pcap record means the file is corrupt, not a jumbo frame.
MAX_CAPLEN = 262144


@dataclass(slots=True)
class CaptureInfo:
    path: str  # as given ("-" for standard input)
    format: str  # "pcap" | "pcapng"
    compression: str | None  # "gzip" | "zstd" | None
    nanosecond: bool  # the file can hold nanosecond timestamps (pcap ns magic, pcapng tsresol)


class CaptureDamage(NamedTuple):
    """Why reading stopped before the end of the input. `offset` counts bytes of the (decompressed)
    capture stream, from its start, where the bad record or block begins."""

    offset: int
    reason: str


@dataclass(frozen=True, slots=True)
class CaptureNote:
    """A capture-quality remark that did not stop reading (bogus snaplen, unknown interface...)."""

    name: str
    message: str
    count: int


class InputSpec(NamedTuple):
    """One input to analyse, from `expand_inputs`. `skipped` is set (the reason, one line) for a
    file found in a directory whose content is not a capture; `note` is then the line for stderr."""

    path: str
    skipped: str | None = None

    @property
    def note(self) -> str | None:
        return None if self.skipped is None else f"skipped {self.path}: {self.skipped}"


class NoteBook:
    """Collects notes by name; the first message of each name is kept, later ones only counted."""

    __slots__ = ("_counts", "_messages")

    def __init__(self) -> None:
        self._messages: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def add(self, name: str, message: str) -> None:
        if name in self._counts:
            self._counts[name] += 1
        else:
            self._messages[name] = message
            self._counts[name] = 1

    def notes(self) -> list[CaptureNote]:
        return [CaptureNote(n, self._messages[n], c) for n, c in self._counts.items()]

    def __contains__(self, name: object) -> bool:
        return name in self._counts
