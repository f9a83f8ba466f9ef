"""JA3 and JA4 client fingerprints of a ClientHello.

JA3 (Salesforce): MD5 of "version,ciphers,extensions,groups,point_formats", decimal values
joined by '-', GREASE removed, wire order kept.
JA4 (FoxIO, technical_details/JA4.md): "t" + version + SNI d/i + 2-digit cipher count + 2-digit
extension count + ALPN first/last character, "_", sha256[:12] of the sorted cipher list, "_",
sha256[:12] of the sorted extension list (SNI and ALPN left out) + "_" + signature algorithms in
wire order. GREASE is ignored everywhere; counts include SNI and ALPN and are capped at 99.
"""

from __future__ import annotations

import hashlib
from typing import Final

from tcpdiag.tls.constants import is_grease
from tcpdiag.tls.handshake import ClientHello

_JA4_VERSIONS: Final = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}


def ja3_string(hello: ClientHello) -> str:
    def dec(values: list[int]) -> str:
        return "-".join(str(v) for v in values if not is_grease(v))

    return ",".join(
        [
            str(hello.legacy_version),
            dec(hello.cipher_suites),
            dec(hello.extensions),
            dec(hello.supported_groups),
            "-".join(str(v) for v in hello.ec_point_formats),
        ]
    )


def ja3(hello: ClientHello) -> str:
    return hashlib.md5(ja3_string(hello).encode(), usedforsecurity=False).hexdigest()


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _alpn_chars(hello: ClientHello, raw_first: bytes | None) -> str:
    if not hello.alpn or raw_first is None or not raw_first:
        return "00"
    first, last = chr(raw_first[0]), chr(raw_first[-1])
    if first.isascii() and first.isalnum() and last.isascii() and last.isalnum():
        return first + last
    # Non-alphanumeric: first hex digit of the first byte, last hex digit of the last byte.
    hexed = raw_first.hex()
    return hexed[0] + hexed[-1]


def ja4_parts(hello: ClientHello, alpn_first_raw: bytes | None = None) -> tuple[str, str, str]:
    """(ja4_a, raw cipher list, raw extension+sigalg list): the 'JA4_r' pieces."""
    versions = [v for v in hello.supported_versions if not is_grease(v)]
    version = max(versions) if versions else hello.legacy_version
    ciphers = [c for c in hello.cipher_suites if not is_grease(c)]
    exts = [e for e in hello.extensions if not is_grease(e)]
    raw = alpn_first_raw
    if raw is None and hello.alpn:
        raw = hello.alpn[0].encode("utf-8", errors="replace")
    a = "t{}{}{:02d}{:02d}{}".format(
        _JA4_VERSIONS.get(version, "00"),
        "d" if hello.sni is not None else "i",
        min(len(ciphers), 99),
        min(len(exts), 99),
        _alpn_chars(hello, raw),
    )
    cipher_list = ",".join(f"{c:04x}" for c in sorted(ciphers))
    ext_list = ",".join(f"{e:04x}" for e in sorted(e for e in exts if e not in (0x0000, 0x0010)))
    sigs = [s for s in hello.signature_algorithms if not is_grease(s)]
    if sigs:
        ext_list += "_" + ",".join(f"{s:04x}" for s in sigs)
    return a, cipher_list, ext_list


def ja4(hello: ClientHello, alpn_first_raw: bytes | None = None) -> str:
    a, ciphers, exts = ja4_parts(hello, alpn_first_raw)
    b = _hash12(ciphers) if ciphers else "000000000000"
    c = _hash12(exts) if exts else "000000000000"
    return f"{a}_{b}_{c}"


# A capture holds the same few ClientHello shapes over and over (one program, one TLS library
# per client): the fingerprints of a shape are computed once. Cleared when full, so hostile
# input (a scanner's random hellos) cannot grow it without bound.
_CACHE_MAX: Final = 4096
_cache: Final[dict[tuple[object, ...], tuple[str, str]]] = {}


def fingerprints(hello: ClientHello) -> tuple[str, str]:
    """(JA3, JA4) of `hello`: `ja3(hello), ja4(hello)`, memoised by the fields they read."""
    key = (
        hello.legacy_version,
        tuple(hello.cipher_suites),
        tuple(hello.extensions),
        tuple(hello.supported_groups),
        tuple(hello.ec_point_formats),
        tuple(hello.supported_versions),
        hello.sni is not None,
        hello.alpn[0] if hello.alpn else None,
        tuple(hello.signature_algorithms),
    )
    found = _cache.get(key)
    if found is None:
        found = (ja3(hello), ja4(hello))
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = found
    return found
