"""`Decoder`: RawPacket -> Segment | IcmpError | ArpPacket | None, never raising.

This is the hot path (millions of packets): untagged Ethernet, the common case, is handled
inline; everything else goes through `link.network_layer`.
"""

from __future__ import annotations

from tcpdiag.decode.arp import arp
from tcpdiag.decode.ip import ipv4, ipv6
from tcpdiag.decode.link import ETH_ARP, ETH_IPV4, ETH_IPV6, ethernet_inner, network_layer
from tcpdiag.decode.stats import DecodeStats
from tcpdiag.model import ArpPacket, IcmpError, RawPacket, Segment

Record = Segment | IcmpError | ArpPacket


class Decoder:
    __slots__ = ("stats",)

    def __init__(self) -> None:
        self.stats = DecodeStats()

    def decode(self, raw: RawPacket) -> Record | None:
        frame, ts_ns, linktype, data, orig_len, _ = raw
        stats = self.stats
        stats.packets += 1
        if linktype == 1 and len(data) >= 14:
            ethertype = (data[12] << 8) | data[13]
            off = 14
            if ethertype != ETH_IPV4 and ethertype != ETH_IPV6:
                ethertype, off = ethernet_inner(data, ethertype, 14, stats)
        else:
            ethertype, off = network_layer(linktype, data, stats)
        # The frame's length on the wire bounds any IP length (a snap length only shortens data).
        wire_len = orig_len if orig_len > len(data) else len(data)
        if ethertype == ETH_IPV4:
            return ipv4(frame, ts_ns / 1e9, data, off, wire_len, stats)
        if ethertype == ETH_IPV6:
            return ipv6(frame, ts_ns / 1e9, data, off, wire_len, stats)
        if ethertype == ETH_ARP:
            return arp(frame, ts_ns / 1e9, data, off, stats)
        if ethertype >= 0:
            stats.non_ip += 1
        return None
