"""Classic pcap reader on crafted files: bad-inputs cases 1-13 at file level."""

from __future__ import annotations

import resource
import struct
import time
from pathlib import Path

import pytest

from tcpdiag.capture import Capture, open_capture
from tcpdiag.errors import CaptureError
from tcpdiag.model import RawPacket
from tests.capture_files import frames, pcap_bytes, pcap_header, pcap_record, tcp_frame

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D


def _write(tmp_path: Path, content: bytes, name: str = "x.pcap") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _read(path: Path) -> tuple[list[RawPacket], Capture]:
    with open_capture(path) as cap:
        packets = list(cap)
    return packets, cap


def _note_names(cap: Capture) -> set[str]:
    return {n.name for n in cap.notes}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file, not a capture"),
        (b"HTTP/1.1 200 OK\r\n\r\nhello", r"unrecognised format \(magic 0x48545450\), not a pcap"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, r"unrecognised format \(magic 0x89504e47\)"),
        (b"\x7fELF\x02\x01\x01" + b"\0" * 60, r"unrecognised format \(magic 0x7f454c46\)"),
        (pcap_header()[:10], r"truncated pcap header \(10 of 24 bytes\)"),
        (b"\xd4\xc3", r"too short to be a capture \(2 bytes\)"),
        (pcap_header(magic=0xA1B2CD34), r"unsupported pcap variant \(magic 0x34cdb2a1\)"),
        (pcap_header(version=(2, 5)), r"unsupported pcap version 2\.5"),
        (pcap_header(version=(1, 0)), r"unsupported pcap version 1\.0"),
    ],
)
def test_not_readable_is_one_line_capture_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = _write(tmp_path, content, "x.txt")
    with pytest.raises(CaptureError, match=f"^{path}: {message}") as info:
        open_capture(path)
    assert "\n" not in str(info.value)


def test_missing_file_is_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="No such file"):
        open_capture(tmp_path / "nope.pcap")


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_all_four_magics_give_identical_packets(
    tmp_path: Path, big_endian: bool, nanosecond: bool
) -> None:
    data = frames(5)
    stamps = [1_700_000_000_123_456_789 + i * 1_000_001_001 for i in range(5)]
    content = pcap_bytes(
        zip(stamps, data, strict=True), nanosecond=nanosecond, big_endian=big_endian
    )
    packets, cap = _read(_write(tmp_path, content))
    assert [p.data for p in packets] == data
    expected = stamps if nanosecond else [ts // 1000 * 1000 for ts in stamps]
    assert [p.ts_ns for p in packets] == expected
    assert cap.info.nanosecond is nanosecond
    assert [p.frame for p in packets] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("snaplen", [0, 0xFFFFFFFF, 1 << 31])
def test_bogus_snaplen_is_a_note_and_allocates_nothing(tmp_path: Path, snaplen: int) -> None:
    content = pcap_header(snaplen=snaplen) + pcap_record(1, 0, tcp_frame())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    packets, cap = _read(_write(tmp_path, content))
    assert len(packets) == 1
    assert "bogus-snaplen" in _note_names(cap)
    assert not cap.damage
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB


def test_caplen_above_snaplen_but_sane_is_kept_with_a_note(tmp_path: Path) -> None:
    big = tcp_frame(payload=b"x" * 2000)
    content = pcap_header(snaplen=1500) + pcap_record(1, 0, big) + pcap_record(2, 0, tcp_frame())
    packets, cap = _read(_write(tmp_path, content))
    assert [p.data for p in packets] == [big, tcp_frame()]
    assert "caplen-exceeds-snaplen" in _note_names(cap)


def test_absurd_caplen_stops_with_damage_at_its_offset(tmp_path: Path) -> None:
    records = [pcap_record(i, 0, f) for i, f in enumerate(frames(5))]
    records[2] = pcap_record(2, 0, frames(5)[2], caplen=0xFFFFFFF0)
    content = pcap_header() + b"".join(records)
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    packets, cap = _read(_write(tmp_path, content))
    assert time.perf_counter() - start < 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000
    assert len(packets) == 2
    (damage,) = cap.damage
    assert damage.offset == 24 + len(records[0]) + len(records[1])
    assert "4294967280" in damage.reason


def test_caplen_above_original_length_sets_original(tmp_path: Path) -> None:
    content = pcap_header() + pcap_record(1, 0, tcp_frame(), orig_len=20)
    packets, cap = _read(_write(tmp_path, content))
    assert packets[0].orig_len == len(tcp_frame())
    assert "caplen-exceeds-length" in _note_names(cap)


def test_original_length_above_caplen_is_kept(tmp_path: Path) -> None:
    content = pcap_header(snaplen=40) + pcap_record(1, 0, tcp_frame()[:40], orig_len=1514)
    packets, cap = _read(_write(tmp_path, content))
    assert (len(packets[0].data), packets[0].orig_len) == (40, 1514)
    assert not cap.notes


@pytest.mark.parametrize("cut", [5, 16 + 10])  # inside the last header; inside its data
def test_truncated_final_record_keeps_earlier_packets(tmp_path: Path, cut: int) -> None:
    records = [pcap_record(i, 0, f) for i, f in enumerate(frames(3))]
    content = pcap_header() + b"".join(records)
    content = content[: 24 + len(records[0]) + len(records[1]) + cut]
    packets, cap = _read(_write(tmp_path, content))
    assert len(packets) == 2
    (damage,) = cap.damage
    assert damage.offset == 24 + len(records[0]) + len(records[1])
    assert damage.reason.startswith("truncated record")


def test_ten_thousand_zero_length_records(tmp_path: Path) -> None:
    content = pcap_header() + pcap_record(1, 0, b"") * 10_000
    packets, cap = _read(_write(tmp_path, content))
    assert len(packets) == 10_000
    assert all(p.data == b"" for p in packets)
    assert not cap.damage


@pytest.mark.parametrize(
    ("sec", "frac", "magic"),
    [
        (0, 0, MAGIC_US),
        (0xFFFFFFFF, 999_999, MAGIC_US),
        (5, 1_000_000, MAGIC_US),
        (5, 0xFFFFFFFF, MAGIC_US),
        (5, 1_000_000_000, MAGIC_NS),
        (0xFFFFFFFF, 0xFFFFFFFF, MAGIC_NS),
    ],
)
def test_timestamp_extremes_never_raise(tmp_path: Path, sec: int, frac: int, magic: int) -> None:
    content = pcap_header(magic=magic) + pcap_record(sec, frac, tcp_frame())
    packets, cap = _read(_write(tmp_path, content))
    unit = 1 if magic == MAGIC_NS else 1000
    assert packets[0].ts_ns == sec * 10**9 + frac * unit
    limit = 10**9 if magic == MAGIC_NS else 10**6
    assert ("invalid-timestamp" in _note_names(cap)) is (frac >= limit)


def test_linktype_field_reserved_bits_make_it_unsupported(tmp_path: Path) -> None:
    content = pcap_header(linktype=0x00010001) + pcap_record(1, 0, tcp_frame())
    packets, cap = _read(_write(tmp_path, content))
    assert packets[0].linktype == 0x00010001
    assert "linktype-reserved-bits" in _note_names(cap)


def test_fcs_bits_of_the_linktype_field_are_not_the_link_type(tmp_path: Path) -> None:
    content = pcap_header(linktype=0x14000001) + pcap_record(1, 0, tcp_frame())
    packets, cap = _read(_write(tmp_path, content))
    assert packets[0].linktype == 1
    assert cap.linktypes == {1}


def test_modified_pcap_variant_is_recognised_like_wireshark(tmp_path: Path) -> None:
    # 24-byte record headers (Kuznetzov's patched libpcap) behind the standard magic: read with
    # 16-byte headers, the second "record" has today's seconds as its captured length.
    data = frames(3)
    records = b"".join(
        struct.pack("<IIII", 1_700_000_000 + i, 0, len(d), len(d)) + b"\0" * 8 + d
        for i, d in enumerate(data)
    )
    packets, cap = _read(_write(tmp_path, pcap_header(snaplen=65535) + records))
    assert [p.data for p in packets] == data
    assert [p.ts_ns for p in packets] == [(1_700_000_000 + i) * 10**9 for i in range(3)]
    assert "pcap-variant" in _note_names(cap)
    assert not cap.damage


def test_standard_file_is_never_read_as_a_variant(tmp_path: Path) -> None:
    data = frames(4)
    packets, cap = _read(_write(tmp_path, pcap_bytes((i, d) for i, d in enumerate(data))))
    assert [p.data for p in packets] == data
    assert not cap.notes


def test_version_2_3_with_swapped_lengths(tmp_path: Path) -> None:
    frame = tcp_frame()
    content = pcap_header(version=(2, 3), snaplen=65535) + pcap_record(
        1, 0, frame[:40], caplen=len(frame), orig_len=40
    )
    # 2.3 writers swapped caplen and len: a caplen above len means they are swapped.
    packets, _ = _read(_write(tmp_path, content))
    assert (packets[0].data, packets[0].orig_len) == (frame[:40], len(frame))
