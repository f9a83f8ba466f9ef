"""Decoding: link, IP and TCP headers to the records of `tcpdiag.model` (see docs/internals.md).

dec = Decoder()
rec = dec.decode(raw)   # Segment | IcmpError | ArpPacket | None, never raises
dec.stats               # DecodeStats
"""

import os as _os

from tcpdiag._native import use_pure_python as _use_pure_python

# Modules that setup.py may compile with mypyc (TCPDIAG_PURE=1 runs their source instead).
# stats.py stays Python: DecodeStats travels between processes (pickle).
COMPILED_MODULES = ("arp", "icmp", "ipv6ext", "link", "tcp", "ip", "decoder")
_use_pure_python(__name__, _os.path.dirname(__file__), COMPILED_MODULES)

from tcpdiag.decode.decoder import Decoder, Record  # noqa: E402
from tcpdiag.decode.stats import MAX_LAYERS, DecodeStats  # noqa: E402

__all__ = ["MAX_LAYERS", "DecodeStats", "Decoder", "Record"]
