"""Link layers: find the network-layer protocol (as an EtherType) and where its header starts.

`network_layer` returns (ethertype, offset), or (-1, 0) when the frame was counted as
undecodable (truncated, unsupported link type, too many layers). Non-IP EtherTypes are returned
as they are; the caller decides what it wants.
"""

from __future__ import annotations

from typing import Final

from tcpdiag.decode.stats import MAX_LAYERS, DecodeStats

ETH_IPV4: Final = 0x0800
ETH_ARP: Final = 0x0806
ETH_IPV6: Final = 0x86DD
# 802.1Q, 802.1ad, and the pre-standard QinQ TPIDs some switches still emit.
VLAN_TPIDS: Final = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
MPLS_TYPES: Final = frozenset({0x8847, 0x8848})
PPPOE_SESSION: Final = 0x8864
# PPP protocol numbers of the network layers we decode (RFC 1332, RFC 5072).
_PPP_TO_ETHERTYPE: Final = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6}

# BSD loopback address families meaning IPv6: OpenBSD/NetBSD 24, FreeBSD 28, Darwin 30, Linux 10.
_NULL_IPV6: Final = frozenset({24, 28, 30, 10})
_RAW_LINKTYPES: Final = frozenset({101, 12, 14})

FAIL: Final = (-1, 0)


def ethernet_inner(data: bytes, ethertype: int, off: int, stats: DecodeStats) -> tuple[int, int]:
    """Peel VLAN tags and MPLS labels starting at `off` (just after an EtherType field)."""
    n = len(data)
    layers = 0
    tagged = False
    while True:
        if ethertype in VLAN_TPIDS:
            if off + 4 > n:
                stats.truncated += 1
                return FAIL
            ethertype = (data[off + 2] << 8) | data[off + 3]
            off += 4
            tagged = True
        elif ethertype in MPLS_TYPES:
            # Labels until bottom-of-stack; the payload's version nibble says IPv4 or IPv6.
            while True:
                if off + 4 > n:
                    stats.truncated += 1
                    return FAIL
                bottom = data[off + 2] & 1
                off += 4
                layers += 1
                if layers > MAX_LAYERS:
                    stats.too_many_layers += 1
                    return FAIL
                if bottom:
                    break
            if off >= n:
                stats.truncated += 1
                return FAIL
            version = data[off] >> 4
            ethertype = ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0
        elif ethertype == PPPOE_SESSION:
            # 6-byte PPPoE header, then the 2-byte PPP protocol.
            if off + 8 > n:
                stats.truncated += 1
                return FAIL
            ethertype = _PPP_TO_ETHERTYPE.get((data[off + 6] << 8) | data[off + 7], 0)
            off += 8
        else:
            if tagged:
                stats.vlan_tagged += 1
            return ethertype, off
        layers += 1
        if layers > MAX_LAYERS:
            stats.too_many_layers += 1
            return FAIL


def network_layer(linktype: int, data: bytes, stats: DecodeStats) -> tuple[int, int]:
    n = len(data)
    if linktype == 1:  # Ethernet
        if n < 14:
            stats.truncated += 1
            return FAIL
        return ethernet_inner(data, (data[12] << 8) | data[13], 14, stats)
    if linktype == 113:  # Linux cooked v1: protocol at the end of a 16-byte header
        if n < 16:
            stats.truncated += 1
            return FAIL
        return ethernet_inner(data, (data[14] << 8) | data[15], 16, stats)
    if linktype == 276:  # Linux cooked v2: protocol first, 20-byte header
        if n < 20:
            stats.truncated += 1
            return FAIL
        return ethernet_inner(data, (data[0] << 8) | data[1], 20, stats)
    if linktype in _RAW_LINKTYPES or linktype == 228 or linktype == 229:
        if n < 1:
            stats.truncated += 1
            return FAIL
        version = data[0] >> 4
        if linktype == 228 or (linktype != 229 and version == 4):
            return ETH_IPV4, 0
        if linktype == 229 or version == 6:
            return ETH_IPV6, 0
        stats.bad_ip_header += 1
        return FAIL
    if linktype == 0 or linktype == 108:  # BSD loopback: a 4-byte address family
        if n < 4:
            stats.truncated += 1
            return FAIL
        # The family is in the capturing host's byte order for NULL and big-endian for LOOP,
        # but writers disagree; families are small, so the order that gives one is right.
        family = data[0] | (data[1] << 8) | (data[2] << 16) | (data[3] << 24)
        if family > 0xFFFF:
            family = (data[0] << 24) | (data[1] << 16) | (data[2] << 8) | data[3]
        if family == 2:
            return ETH_IPV4, 4
        if family in _NULL_IPV6:
            return ETH_IPV6, 4
        return 0, 4  # another family: not IP
    stats.count_unsupported(linktype)
    return FAIL
