"""pcapng reader on crafted files: bad-inputs cases 14-24 and the block types."""

from __future__ import annotations

import resource
import struct
from pathlib import Path
from typing import Any

import pytest

from tcpdiag.capture import open_capture
from tcpdiag.errors import CaptureError
from tests.capture_files import block, epb, frames, idb, option, shb, spb, tcp_frame

DATA = frames(4)
TS = 1_700_000_000_000_000  # in microseconds (the default resolution)


def _read(tmp_path: Path, content: bytes) -> tuple[list[Any], Any]:
    path = tmp_path / "x.pcapng"
    path.write_bytes(content)
    with open_capture(path) as cap:
        packets = list(cap)
    return packets, cap


def _notes(cap: Any) -> dict[str, int]:
    return {n.name: n.count for n in cap.notes}


def _good(count: int = 2, big_endian: bool = False) -> bytes:
    return b"".join(epb(0, TS + i, DATA[i], big_endian=big_endian) for i in range(count))


def test_basic_section_interface_and_packets(tmp_path: Path) -> None:
    packets, cap = _read(tmp_path, shb() + idb() + _good(3))
    assert [p.data for p in packets] == DATA[:3]
    assert [p.ts_ns for p in packets] == [(TS + i) * 1000 for i in range(3)]
    assert [p.frame for p in packets] == [1, 2, 3]
    assert cap.info.format == "pcapng"
    assert not cap.damage and not cap.notes


@pytest.mark.parametrize("length", [0, 8, 13, 0xFFFFFFF0])
def test_bad_block_length_after_packets_is_damage(tmp_path: Path, length: int) -> None:
    good = shb() + idb() + _good(2)
    bad = block(0x12345678, b"\0" * 16, length=length)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    packets, cap = _read(tmp_path, good + bad + _good(1))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000
    assert len(packets) == 2
    (damage,) = cap.damage
    assert damage.offset == len(good)
    assert str(length) in damage.reason


@pytest.mark.parametrize("length", [0, 8, 13, 0xFFFFFFF0])
def test_bad_first_block_length_is_capture_error(tmp_path: Path, length: int) -> None:
    first = bytearray(shb() + idb() + _good(1))
    first[4:8] = struct.pack("<I", length)
    with pytest.raises(CaptureError, match="damaged pcapng section header"):
        _read(tmp_path, bytes(first))


def test_trailer_mismatch_stops_reading(tmp_path: Path) -> None:
    good = shb() + idb() + _good(2)
    bad = epb(0, TS, DATA[2])
    bad = bad[:-4] + struct.pack("<I", len(bad) + 4)
    packets, cap = _read(tmp_path, good + bad + _good(2))
    assert len(packets) == 2
    (damage,) = cap.damage
    assert damage.offset == len(good)
    assert "trailer" in damage.reason


def test_first_block_trailer_mismatch_is_capture_error(tmp_path: Path) -> None:
    first = shb()
    with pytest.raises(CaptureError, match="does not match its trailer"):
        _read(tmp_path, first[:-4] + b"0000" + idb())


def test_bad_byte_order_magic_is_capture_error(tmp_path: Path) -> None:
    first = bytearray(shb())
    first[8:12] = b"abcd"
    with pytest.raises(CaptureError, match="byte-order magic"):
        _read(tmp_path, bytes(first))


def test_truncated_block_at_the_end(tmp_path: Path) -> None:
    good = shb() + idb() + _good(2)
    packets, cap = _read(tmp_path, good + epb(0, TS, DATA[3])[:30])
    assert len(packets) == 2
    assert cap.damage[0].offset == len(good)
    assert cap.damage[0].reason.startswith("truncated block")


@pytest.mark.parametrize("block_type", [0x12345678, 0x80000001, 0x00000BAD, 0x40000BAD, 0xA, 4, 5])
def test_unknown_and_uninteresting_blocks_are_skipped(tmp_path: Path, block_type: int) -> None:
    content = shb() + idb() + _good(1) + block(block_type, b"junk" * 5) + epb(0, TS, DATA[1])
    packets, cap = _read(tmp_path, content)
    assert [p.data for p in packets] == DATA[:2]
    assert [p.frame for p in packets] == [1, 2]  # a non-packet block is not a frame
    assert not cap.damage


def test_packet_before_any_interface_is_skipped_and_counted(tmp_path: Path) -> None:
    content = shb() + epb(0, TS, DATA[0]) + idb() + epb(0, TS, DATA[1])
    packets, cap = _read(tmp_path, content)
    assert [(p.frame, p.data) for p in packets] == [(2, DATA[1])]
    assert _notes(cap) == {"pcapng-unknown-interface": 1}


def test_packet_for_undescribed_interface_is_skipped(tmp_path: Path) -> None:
    content = shb() + idb() + epb(3, TS, DATA[0]) + epb(1, TS, DATA[1]) + epb(0, TS, DATA[2])
    packets, cap = _read(tmp_path, content)
    assert [(p.frame, p.data) for p in packets] == [(3, DATA[2])]
    assert _notes(cap) == {"pcapng-unknown-interface": 2}


def test_captured_length_beyond_block_is_skipped(tmp_path: Path) -> None:
    content = shb() + idb() + epb(0, TS, DATA[0], caplen=1 << 31) + epb(0, TS, DATA[1])
    packets, cap = _read(tmp_path, content)
    assert [p.data for p in packets] == [DATA[1]]
    assert "pcapng-corrupt-block" in _notes(cap)
    assert not cap.damage


def test_caplen_above_original_length(tmp_path: Path) -> None:
    packets, cap = _read(tmp_path, shb() + idb() + epb(0, TS, DATA[0], orig_len=10))
    assert packets[0].orig_len == len(DATA[0])
    assert "caplen-exceeds-length" in _notes(cap)


def test_simple_packet_block_uses_snaplen_and_drops_padding(tmp_path: Path) -> None:
    frame = tcp_frame(payload=b"p" * 50)  # 104 bytes
    content = shb() + idb(snaplen=70) + spb(len(frame), frame[:70] + b"\xee" * 6)
    content += spb(30, frame[:30] + b"\xee" * 2)  # orig below snaplen: padding excluded
    packets, _ = _read(tmp_path, content)
    assert [(p.data, p.orig_len) for p in packets] == [(frame[:70], len(frame)), (frame[:30], 30)]


def test_simple_packet_block_before_interface(tmp_path: Path) -> None:
    packets, cap = _read(tmp_path, shb() + spb(4, b"abcd"))
    assert packets == []
    assert "pcapng-unknown-interface" in _notes(cap)


def test_obsolete_packet_block(tmp_path: Path) -> None:
    body = struct.pack("<HHIIII", 0, 0, 0, 1000, len(DATA[0]), len(DATA[0])) + DATA[0]
    packets, _ = _read(tmp_path, shb() + idb() + block(2, body))
    assert [(p.ts_ns, p.data) for p in packets] == [(1000 * 1000, DATA[0])]


def test_sections_with_opposite_byte_orders_restart_interfaces(tmp_path: Path) -> None:
    content = (
        shb()
        + idb(linktype=1)
        + idb(linktype=101)
        + epb(1, TS, DATA[0])
        + shb(big_endian=True)
        + idb(linktype=113, big_endian=True)
        + epb(0, TS + 1, DATA[1], big_endian=True)
        + shb()
        + idb(linktype=276)
        + epb(0, TS + 2, DATA[2])
    )
    packets, cap = _read(tmp_path, content)
    assert [(p.linktype, p.interface, p.data) for p in packets] == [
        (101, 1, DATA[0]),
        (113, 2, DATA[1]),
        (276, 3, DATA[2]),
    ]
    assert [p.ts_ns for p in packets] == [(TS + i) * 1000 for i in range(3)]
    assert cap.linktypes == {1, 101, 113, 276}


def test_interfaces_with_different_link_types(tmp_path: Path) -> None:
    content = shb() + idb(1) + idb(276) + idb(101)
    content += epb(2, TS, DATA[0]) + epb(0, TS, DATA[1]) + epb(1, TS, DATA[2])
    packets, _ = _read(tmp_path, content)
    assert [(p.linktype, p.interface) for p in packets] == [(101, 2), (1, 0), (276, 1)]


UNITS = 1_700_000_000_123_456_789


@pytest.mark.parametrize(
    ("options", "expected_ns", "note"),
    [
        ([], UNITS * 1000, None),
        ([option(9, b"\x06")], UNITS * 1000, None),
        ([option(9, b"\x09")], UNITS, None),
        ([option(9, b"\x0c")], UNITS // 1000, None),
        ([option(9, b"\x8a")], UNITS * 10**9 // 1024, None),
        ([option(9, b"\x14")], UNITS * 1000, "invalid-timestamp"),  # 10^-20
        ([option(9, b"\xc0")], UNITS * 1000, "invalid-timestamp"),  # 2^-64
        ([option(9, b"\x09"), option(9, b"\x03")], UNITS, "pcapng-bad-option"),  # duplicated
        ([option(9, b"\x09\x09")], UNITS * 1000, "pcapng-bad-option"),  # length 2
        ([option(9, b"\x09"), option(14, struct.pack("<q", 10**9))], UNITS + 10**18, None),
        ([option(9, b"\x09"), option(14, struct.pack("<q", -(10**9)))], UNITS - 10**18, None),
        ([option(14, b"\x01\x02")], UNITS * 1000, "pcapng-bad-option"),
    ],
)
def test_timestamp_resolution_and_offset(
    tmp_path: Path, options: list[bytes], expected_ns: int, note: str | None
) -> None:
    packets, cap = _read(tmp_path, shb() + idb(options=options) + epb(0, UNITS, DATA[0]))
    assert packets[0].ts_ns == expected_ns
    assert list(_notes(cap)) == ([note] if note else [])


def test_nanosecond_resolution_is_reported(tmp_path: Path) -> None:
    _, cap = _read(tmp_path, shb() + idb(options=[option(9, b"\x09")]) + _good(1))
    assert cap.info.nanosecond is True


def test_option_running_past_block_end_is_bounded(tmp_path: Path) -> None:
    body = struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 9, 400) + b"\x09\0\0\0"
    packets, cap = _read(tmp_path, shb() + block(1, body) + _good(1))
    assert packets[0].ts_ns == TS * 1000  # default resolution kept
    assert "pcapng-bad-option" in _notes(cap)


def test_options_without_end_marker(tmp_path: Path) -> None:
    body = struct.pack("<HHI", 1, 0, 0) + option(9, b"\x09") + option(2, b"eth0")
    packets, _ = _read(tmp_path, shb() + block(1, body) + epb(0, UNITS, DATA[0]))
    assert packets[0].ts_ns == UNITS


def test_ten_thousand_options_are_bounded(tmp_path: Path) -> None:
    opts = [option(1, b"\xff\xfe comment without NUL")] * 10_000 + [option(9, b"\x09")]
    packets, cap = _read(tmp_path, shb() + idb(options=opts) + epb(0, UNITS, DATA[0]))
    assert len(packets) == 1
    assert "pcapng-bad-option" in _notes(cap)


def test_unknown_version_section_in_the_middle_is_skipped(tmp_path: Path) -> None:
    content = (
        shb()
        + idb()
        + epb(0, TS, DATA[0])
        + shb(major=2)
        + idb()
        + epb(0, TS, DATA[1])
        + shb()
        + idb()
        + epb(0, TS, DATA[2])
    )
    packets, cap = _read(tmp_path, content)
    assert [p.data for p in packets] == [DATA[0], DATA[2]]
    assert "pcapng-section-skipped" in _notes(cap)


def test_unknown_version_first_section_is_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"unsupported pcapng version 2\.0"):
        _read(tmp_path, shb(major=2) + idb())


def test_truncated_first_block(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="truncated"):
        _read(tmp_path, shb()[:20])


def test_a_capture_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    path.write_bytes(shb() + idb() + _good(2))
    with open_capture(path) as cap:
        assert len(list(cap)) == 2
        assert list(cap) == []
        assert cap.frames_read == 2
