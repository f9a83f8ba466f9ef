"""Counters of what the decoder saw but could not (or would not) turn into records.

The capture-quality findings read these at the end; they are plain ints so that counting costs
one attribute increment on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Encapsulation layers (VLAN tags, MPLS labels, IPv6 extension headers) followed per packet before
# giving up: real traffic has a handful, a hostile packet thousands.
MAX_LAYERS = 16


@dataclass(slots=True)
class DecodeStats:
    packets: int = 0
    tcp: int = 0
    icmp_errors: int = 0
    arp: int = 0
    # Frames shorter than the headers they need (Ethernet < 14 bytes, IP header cut...).
    truncated: int = 0
    # Packets of link types we do not decode, per link type.
    unsupported_linktypes: dict[int, int] = field(default_factory=dict)
    non_ip: int = 0  # ARP for other protocols, LLC, LLDP, ...
    non_tcp: int = 0  # UDP, ICMP other than errors quoting TCP, other IP protocols
    vlan_tagged: int = 0
    too_many_layers: int = 0
    bad_ip_header: int = 0  # wrong version, IHL < 5, total length < IHL
    ip_length_exceeds_frame: int = 0  # IP says more bytes than the frame had on the wire
    ipv4_fragments: int = 0
    ipv6_fragments: int = 0
    fragments_skipped: int = 0  # non-first fragments: no TCP header in them
    bad_tcp_header: int = 0  # data offset < 5 or beyond the IP payload
    bad_tcp_options: int = 0  # option length 0/1 or past the header
    wscale_clamped: int = 0  # window scale above 14 (RFC 7323 2.3)
    snaplen_truncated: int = 0  # TCP segments whose payload the snap length cut

    def count_unsupported(self, linktype: int) -> None:
        self.unsupported_linktypes[linktype] = self.unsupported_linktypes.get(linktype, 0) + 1
