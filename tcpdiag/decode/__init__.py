"""Decoding: link, IP and TCP headers to the records of `tcpdiag.model` (see docs/internals.md).

dec = Decoder()
rec = dec.decode(raw)   # Segment | IcmpError | ArpPacket | None, never raises
dec.stats               # DecodeStats
"""

from tcpdiag.decode.decoder import Decoder, Record
from tcpdiag.decode.stats import MAX_LAYERS, DecodeStats

__all__ = ["MAX_LAYERS", "DecodeStats", "Decoder", "Record"]
