"""TLS on reassembled TCP streams: records, handshake messages, flights, fingerprints.

Public API: `TlsStream` (a flow-stage StreamConsumer; `summary()`, `records_by_frame()`, or
`label_state()` now and `labels_from_state(state)` later), `detect(first_bytes)`, and
`looks_like_tls(first_bytes)`. Findings live in
`tcpdiag.findings.tls_rules`.
"""

import os as _os

from tcpdiag._native import use_pure_python as _use_pure_python

# Modules that setup.py may compile with mypyc (TCPDIAG_PURE=1 runs their source instead).
COMPILED_MODULES = (
    "cursor",
    "records",
    "handshake",
    "stream",
    "fingerprint",
    "flights",
    "constants",
    "detect",
    "starttls",
)
_use_pure_python(__name__, _os.path.dirname(__file__), COMPILED_MODULES)

from tcpdiag.tls.detect import detect, looks_like_tls  # noqa: E402
from tcpdiag.tls.stream import SideLabels, TlsStream, labels_from_state  # noqa: E402

__all__ = ["SideLabels", "TlsStream", "detect", "labels_from_state", "looks_like_tls"]
