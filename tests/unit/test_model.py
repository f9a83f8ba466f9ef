"""Address text in the report contract: `model.format_ip` / `format_endpoint`."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag import model
from tcpdiag.model import format_endpoint, format_ip

V6 = [
    "2001:db8::1",
    "::1",
    "::",
    "fe80::1:0:0:2",  # the longest zero run is compressed, not the first
    "2001:db8:0:1:1:1:1:1",  # a single zero group stays
    "::ffff:c000:201",
    "ff02::1:ff00:1",
]


@pytest.mark.parametrize("text", V6)
def test_ipv6_text_is_the_rfc5952_form(text: str) -> None:
    packed = ipaddress.IPv6Address(text).packed
    assert format_ip(packed) == text
    assert format_ip(packed) == text  # again, from the cache
    assert format_endpoint(packed, 443) == f"[{text}]:443"


def test_ipv4_text() -> None:
    assert format_ip(bytes([10, 0, 0, 2])) == "10.0.0.2"
    assert format_ip(bytes([10, 0, 0, 2])) == "10.0.0.2"  # again, from the cache
    assert format_endpoint(bytes([192, 168, 1, 255]), 8080) == "192.168.1.255:8080"
    assert format_ip(bytes(4)) == "0.0.0.0" and format_ip(b"\xff" * 4) == "255.255.255.255"


@pytest.mark.parametrize("prefix", [b"\x0a", b"\x20\x01\x0d\xb8" + bytes(9)])
def test_address_cache_stays_bounded_and_right(prefix: bytes) -> None:
    for i in range(model._IP_TEXT_MAX * 2 + 10):
        addr = prefix + i.to_bytes(3, "big")
        assert format_ip(addr) == str(ipaddress.ip_address(addr))
        assert len(model._IP_TEXT) <= model._IP_TEXT_MAX


def test_bad_length_is_not_cached() -> None:
    with pytest.raises(ipaddress.AddressValueError):
        format_ip(b"\x01\x02\x03\x04\x05")
    assert b"\x01\x02\x03\x04\x05" not in model._IP_TEXT


ZERO_RUNS = st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xABCD]), min_size=8, max_size=8)


@settings(max_examples=2000, deadline=None)
@given(
    groups=st.one_of(ZERO_RUNS, st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8)),
    embedded=st.sampled_from([None, 0, 0xFFFF]),
)
def test_ipv6_text_matches_ipaddress(groups: list[int], embedded: int | None) -> None:
    """The C library's text (the fast path) and `ipaddress`'s agree on every address, zero
    runs of every length and place and the IPv4-embedding forms included."""
    if embedded is not None:
        groups[:6] = [0, 0, 0, 0, 0, embedded]
    packed = b"".join(g.to_bytes(2, "big") for g in groups)
    model._IP_TEXT.clear()
    assert format_ip(packed) == str(ipaddress.IPv6Address(packed))
