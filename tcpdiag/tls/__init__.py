"""TLS on reassembled TCP streams: records, handshake messages, flights, fingerprints.

Public API: `TlsStream` (a flow-stage StreamConsumer; `summary()`, `records_by_frame()`),
`detect(first_bytes)`, and `looks_like_tls(first_bytes)`. Findings live in
`tcpdiag.findings.tls_rules`.
"""

from tcpdiag.tls.detect import detect, looks_like_tls
from tcpdiag.tls.stream import TlsStream

__all__ = ["TlsStream", "detect", "looks_like_tls"]
