"""Zero escapes (bad-inputs target F1): any bytes given to the reader either raise CaptureError
at open or read to the end, with damage or notes, and never another exception."""

from __future__ import annotations

import gzip
import io

import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag.capture import open_capture
from tcpdiag.errors import CaptureError
from tests.capture_files import epb, frames, idb, option, pcap_bytes, shb, spb

PCAP = pcap_bytes((i * 999, f) for i, f in enumerate(frames(6)))
PCAPNG = (
    shb()
    + idb(options=[option(9, b"\x09"), option(14, b"\x01" * 8)])
    + idb(113)
    + epb(0, 5, frames(1)[0])
    + spb(20, b"x" * 20)
    + shb(big_endian=True)
    + idb(276, big_endian=True)
    + epb(0, 7, frames(2)[1], big_endian=True)
)
SEEDS = [PCAP, PCAPNG, gzip.compress(PCAP), zstandard.compress(PCAPNG)]


def _read_all(content: bytes) -> None:
    try:
        cap = open_capture("-", stdin=io.BytesIO(content))
    except CaptureError:
        return
    with cap:
        for raw in cap:
            assert isinstance(raw.data, bytes)
            assert raw.orig_len >= len(raw.data)
        assert all(d.offset >= 0 for d in cap.damage)


@settings(max_examples=1500, deadline=None)
@given(data=st.data())
def test_mutated_captures_never_escape(data: st.DataObject) -> None:
    buf = bytearray(data.draw(st.sampled_from(SEEDS)))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        kind = data.draw(st.sampled_from(["byte", "cut", "insert"]))
        if kind == "byte":
            buf[pos] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del buf[pos : pos + data.draw(st.integers(1, 64))]
            if not buf:
                break
        else:
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
    _read_all(bytes(buf))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_escape(content: bytes) -> None:
    _read_all(content)
    _read_all(b"\x0a\x0d\x0d\x0a" + content)
    _read_all(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + content)
