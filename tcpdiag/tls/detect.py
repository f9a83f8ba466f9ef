"""Does a byte stream start like TLS? By content, on any port (Wireshark's `is_sslv3_or_tls`
and `is_sslv2_clienthello` heuristics, RFC 5246 appendix E.2)."""

from __future__ import annotations

from typing import Final

from tcpdiag.tls.constants import MAX_RECORD_LENGTH
from tcpdiag.tls.starttls import opener

DETECT_LIMIT: Final = 1024  # like Zeek's dpd_buffer_size: stop looking after this many bytes


def looks_like_tls(first: bytes) -> bool | None:
    """True: a TLS record header or an SSLv2-compatible ClientHello; False: cannot be;
    None: too few bytes to tell."""
    if not first:
        return None
    b0 = first[0]
    if b0 & 0x80:  # SSLv2 two-byte header, CLIENT-HELLO (1), version SSL2/SSL3/TLS
        if len(first) < 5:
            if len(first) >= 3 and first[2] != 1:
                return False
            return None
        length = ((b0 & 0x7F) << 8) | first[1]
        version = (first[3] << 8) | first[4]
        return first[2] == 1 and length >= 9 and version in (2, 0x300, 0x301, 0x302, 0x303)
    if b0 not in (20, 21, 22, 23, 24):
        return False
    if len(first) >= 2 and first[1] != 3:
        return False
    if len(first) >= 3 and first[2] > 4:
        return False
    if len(first) < 5:
        return None
    length = (first[3] << 8) | first[4]
    return 0 < length <= MAX_RECORD_LENGTH


def detect(first_bytes: bytes, starttls: bool = True) -> bool | None:
    """Whether a flow whose first payload bytes (of either direction) are `first_bytes` should
    get a `TlsStream`: TLS itself, or (with `starttls`) a protocol that can upgrade to TLS.
    None means "give me more bytes"; after DETECT_LIMIT bytes the answer is always a bool."""
    verdict = looks_like_tls(first_bytes)
    if verdict is not False:
        if verdict is None and len(first_bytes) >= DETECT_LIMIT:
            return False
        return verdict
    if not starttls:
        return False
    proto = opener(first_bytes)
    if proto is None:
        return None if len(first_bytes) < DETECT_LIMIT else False
    return proto is not False
