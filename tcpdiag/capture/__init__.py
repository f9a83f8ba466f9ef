"""Capture input: the only place tcpdiag reads files (see docs/internals.md, "capture/").

with open_capture("x.pcap.gz") as cap:
    for raw in cap: ...          # RawPacket
    cap.damage, cap.notes, cap.linktypes, cap.info
"""

from tcpdiag.capture.inputs import expand_inputs
from tcpdiag.capture.reader import Capture, open_capture
from tcpdiag.capture.records import (
    MAX_CAPLEN,
    CaptureDamage,
    CaptureInfo,
    CaptureNote,
    InputSpec,
)
from tcpdiag.capture.writer import PcapngWriter, PcapWriter

# The name the engine uses for an open capture's type.
CaptureReader = Capture

__all__ = [
    "MAX_CAPLEN",
    "Capture",
    "CaptureDamage",
    "CaptureInfo",
    "CaptureNote",
    "CaptureReader",
    "InputSpec",
    "PcapWriter",
    "PcapngWriter",
    "expand_inputs",
    "open_capture",
]
