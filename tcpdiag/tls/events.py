"""What the TLS stream noticed that the findings report: malformed bytes, records cut short,
bytes never captured. Plain records; `TlsStream` fills them, `findings/tls_rules.py` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcpdiag.model import Direction
from tcpdiag.tls.records import Partial


@dataclass(slots=True)
class MalformedEvent:
    sender: Direction
    frame: int
    offset: int  # stream offset (relative, as the flow stage counts)
    what: str  # "record header", "ClientHello"...
    reason: str
    data: bytes = b""  # the offending bytes, for a hex excerpt

    @property
    def hex(self) -> str:
        return self.data[:16].hex(" ")


@dataclass(slots=True)
class TruncatedEvent:
    sender: Direction
    partial: Partial
    how: str  # "fin" | "rst" | "eof" | "gap"
    frame: int | None  # frame of the FIN/RST, when known
    by: Direction | None = None  # who sent that FIN/RST (a RST from the peer cuts too)


@dataclass(slots=True)
class GapEvent:
    sender: Direction
    offset: int
    length: int
    frame: int
