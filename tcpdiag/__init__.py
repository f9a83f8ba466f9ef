"""tcpdiag: why did that TCP connection or TLS handshake fail? Answers straight from a capture."""

__version__ = "0.1.0"
