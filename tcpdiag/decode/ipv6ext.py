"""IPv6 extension headers, shared by the IPv6 decoder and the ICMPv6 quoted-packet parser."""

from __future__ import annotations

from typing import Final

from tcpdiag.decode.stats import MAX_LAYERS, DecodeStats

HOP_BY_HOP: Final = 0
ROUTING: Final = 43
FRAGMENT: Final = 44
AH: Final = 51
DEST_OPTIONS: Final = 60
# Headers with the generic (next header, length in 8-octet units beyond the first) layout.
_GENERIC: Final = frozenset({HOP_BY_HOP, ROUTING, DEST_OPTIONS, 135, 139, 140})

# Result of `skip_extensions` for "give up" (already counted in stats).
STOP: Final = (-1, 0, False)


def skip_extensions(
    data: bytes, p: int, nh: int, end: int, stats: DecodeStats | None
) -> tuple[int, int, bool]:
    """Walk extension headers from data[p] (whose type is `nh`) to the upper-layer header:
    (protocol, offset, first_fragment). `first_fragment` says a fragment header with offset 0
    was crossed. Non-first fragments, truncation and too many headers give STOP. `stats` is
    None when walking a quoted packet (an ICMP error's payload), whose oddities are not ours."""
    n = min(len(data), end)
    first_fragment = False
    for _ in range(MAX_LAYERS):
        if nh in _GENERIC:
            if p + 2 > n:
                break
            size = (data[p + 1] + 1) << 3
        elif nh == FRAGMENT:
            if p + 8 > n:
                break
            if stats is not None:
                stats.ipv6_fragments += 1
            if ((data[p + 2] << 8) | data[p + 3]) & 0xFFF8:
                if stats is not None:
                    stats.fragments_skipped += 1
                return STOP
            first_fragment = True
            size = 8
        elif nh == AH:
            if p + 2 > n:
                break
            size = (data[p + 1] + 2) << 2
        else:
            return nh, p, first_fragment
        nh = data[p]
        p += size
    else:
        if stats is not None:
            stats.too_many_layers += 1
        return STOP
    if stats is not None:
        stats.truncated += 1
    return STOP
