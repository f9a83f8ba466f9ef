"""Compressed inputs (gzip, zstd: by content), standard input, and the input size limit."""

from __future__ import annotations

import gzip
import io
import os
import random
import resource
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
import zstandard

from tcpdiag.capture import open_capture, source
from tcpdiag.capture.source import InputStream
from tcpdiag.errors import CaptureError
from tests.capture_files import frames, pcap_bytes, pcap_header, pcap_record, pcapng_bytes
from tests.synthetic import short_connections

DATA = frames(200)
PLAIN = pcap_bytes((i * 1000, d) for i, d in enumerate(DATA))


def _read(path: Path, **kwargs: Any) -> tuple[list[Any], Any]:
    with open_capture(path, **kwargs) as cap:
        packets = list(cap)
    return packets, cap


def _write(tmp_path: Path, content: bytes, name: str = "x.pcap") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("name", ["x.pcap", "x.pcap.gz", "x.zst"])
def test_gzip_detected_by_content_not_name(tmp_path: Path, name: str) -> None:
    packets, cap = _read(_write(tmp_path, gzip.compress(PLAIN), name))
    assert [p.data for p in packets] == DATA
    assert cap.info.compression == "gzip"
    assert not cap.damage


def test_gzip_multi_member(tmp_path: Path) -> None:
    half = len(PLAIN) // 2
    content = gzip.compress(PLAIN[:half]) + gzip.compress(PLAIN[half:])
    packets, cap = _read(_write(tmp_path, content))
    assert [p.data for p in packets] == DATA
    assert not cap.damage


def test_gzip_pcapng(tmp_path: Path) -> None:
    content = gzip.compress(pcapng_bytes((i * 1000, d) for i, d in enumerate(DATA)))
    packets, cap = _read(_write(tmp_path, content))
    assert len(packets) == len(DATA)
    assert cap.info.format == "pcapng"


def _prefix_count(packets: list[Any]) -> int:
    assert [p.data for p in packets] == DATA[: len(packets)]
    return len(packets)


def test_gzip_truncated_stream_keeps_packets_so_far(tmp_path: Path) -> None:
    content = gzip.compress(PLAIN)
    packets, cap = _read(_write(tmp_path, content[: len(content) * 2 // 3]))
    assert 0 < _prefix_count(packets) < len(DATA)
    assert any("gzip stream truncated" in d.reason for d in cap.damage)


def test_gzip_bad_crc(tmp_path: Path) -> None:
    content = bytearray(gzip.compress(PLAIN))
    content[-8] ^= 0xFF  # CRC32 in the trailer
    packets, cap = _read(_write(tmp_path, bytes(content)))
    assert _prefix_count(packets) > 0
    assert "gzip data damaged" in cap.damage[0].reason


def test_gzip_corrupt_deflate_data(tmp_path: Path) -> None:
    content = bytearray(gzip.compress(PLAIN))
    content[len(content) // 2 : len(content) // 2 + 20] = b"\xff" * 20
    packets, cap = _read(_write(tmp_path, bytes(content)))
    _prefix_count(packets)
    assert cap.damage


def test_gzip_trailing_garbage(tmp_path: Path) -> None:
    packets, cap = _read(_write(tmp_path, gzip.compress(PLAIN) + b"garbage after the end"))
    assert [p.data for p in packets] == DATA
    assert "trailing garbage" in cap.damage[0].reason


def test_gzip_trailing_zero_padding_is_fine(tmp_path: Path) -> None:
    packets, cap = _read(_write(tmp_path, gzip.compress(PLAIN) + b"\0" * 512))
    assert len(packets) == len(DATA)
    assert not cap.damage


def _inflated(stream: InputStream) -> tuple[bytes, str | None]:
    data = b"".join(stream.chunks())
    stream.close()
    return data, stream.problem


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[int]]:
    """Three gzip members of ~1 MB of capture each (several read chunks and output steps), and
    where each begins."""
    content = short_connections(tmp_path_factory.mktemp("gz") / "c.pcap", 9_000, 5).read_bytes()
    third = len(content) // 3
    parts = [content[:third], content[third : 2 * third], content[2 * third :]]
    packed = [gzip.compress(part, compresslevel=1) for part in parts]
    starts = [sum(len(p) for p in packed[:i]) for i in range(3)]
    assert len(content) > 2 * (1 << 20)
    return b"".join(packed), starts


def test_gzip_file_reads_as_a_pipe_does_damaged_or_not(
    tmp_path: Path, members: tuple[bytes, list[int]]
) -> None:
    """A gzip file is inflated by ISA-L, a member it cannot read again by zlib from where it
    begins; a pipe by zlib alone. Cut anywhere, or with any byte damaged, in any member, both
    give the same bytes and the same problem (the words are zlib's)."""
    content, starts = members
    path = tmp_path / "c.pcap.gz"
    rng = random.Random(7)
    cases: list[bytes] = [content]
    for _ in range(40):
        cases.append(content[: rng.randrange(len(content))])
        damaged = bytearray(content)
        at = rng.randrange(starts[1], len(content))  # past the first member, mostly
        damaged[at] ^= 1 << rng.randrange(8)
        cases.append(bytes(damaged))
    cases.append(content + b"not gzip")
    cases.append(content + b"\x1f")
    for at, value in ((3, 0x20), (3, 0x80), (3, 0x02), (3, 0x04), (2, 7), (9, 0xFF)):
        # The second member's header: reserved flags (zlib rejects them, ISA-L did not look),
        # a header CRC (only zlib checks it), an extra field, a method that is not deflate.
        damaged = bytearray(content)
        damaged[starts[1] + at] |= value
        cases.append(bytes(damaged))
    problems = set()
    for case in cases:
        path.write_bytes(case)
        from_file = _inflated(InputStream(str(path), 1 << 40))
        from_pipe = _inflated(InputStream("-", 1 << 40, stdin=io.BytesIO(case)))
        assert from_file == from_pipe
        problems.add(from_file[1] or "")
    kinds = {problem.split(" (")[0] for problem in problems}
    assert kinds >= {
        "",
        "gzip data damaged",
        "gzip stream truncated",
        "gzip: trailing garbage after the last member",
    }
    assert any("unknown header flags set" in p for p in problems)


def test_gzip_file_damaged_just_before_a_cut_reads_as_a_pipe_does(tmp_path: Path) -> None:
    """A bit flipped in the first block's header, the stream cut a few bytes after: zlib finds
    the damage, ISA-L waits for more input. So a member left unfinished is read by zlib."""
    member = gzip.compress(PLAIN)
    path = tmp_path / "cut.pcap.gz"
    problems = set()
    for at in range(10, 40):
        for bit in range(8):
            case = bytearray(member)
            case[at] ^= 1 << bit
            cut = bytes(case[: at + 20])
            path.write_bytes(cut)
            from_file = _inflated(InputStream(str(path), 1 << 40))
            assert from_file == _inflated(InputStream("-", 1 << 40, stdin=io.BytesIO(cut)))
            problems.add((from_file[1] or "").split(" (")[0])
    assert problems == {"gzip data damaged", "gzip stream truncated"}


def test_gzip_file_is_inflated_by_isal_and_only_a_damaged_member_by_zlib(
    tmp_path: Path, members: tuple[bytes, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    content, starts = members
    path = tmp_path / "c.pcap.gz"
    made: list[str] = []
    fast = source._isal_zlib
    assert fast is not None

    def counted(module: Any, name: str) -> Any:
        make = module.decompressobj

        def decompressobj(wbits: int) -> Any:
            made.append(name)
            return make(wbits)

        return decompressobj

    monkeypatch.setattr(fast, "decompressobj", counted(fast, "isal"), raising=False)
    monkeypatch.setattr(source.zlib, "decompressobj", counted(zlib, "zlib"))
    path.write_bytes(content)
    whole = _inflated(InputStream(str(path), 1 << 40))
    assert made == ["isal"] * 4  # one per member, and one to find no fourth
    made.clear()
    damaged = bytearray(content)
    damaged[starts[2] + 5000] ^= 0x10
    path.write_bytes(bytes(damaged))
    data, problem = _inflated(InputStream(str(path), 1 << 40))
    assert made == ["isal"] * 3 + ["zlib"]
    assert problem is not None and problem.startswith("gzip data damaged")
    assert (data, problem) == _inflated(InputStream("-", 1 << 40, stdin=io.BytesIO(damaged)))
    two = len(gzip.decompress(content[: starts[2]]))
    assert data[:two] == whole[0][:two] and len(data) < len(whole[0])


def test_gzip_of_non_capture_is_capture_error(tmp_path: Path) -> None:
    path = _write(tmp_path, gzip.compress(b"hello world"), "x.gz")
    with pytest.raises(CaptureError, match=r"unrecognised format \(magic 0x68656c6c\) in gzip"):
        open_capture(path)


def test_gzip_header_only_is_capture_error(tmp_path: Path) -> None:
    path = _write(tmp_path, gzip.compress(PLAIN)[:12], "x.gz")
    with pytest.raises(CaptureError, match="gzip"):
        open_capture(path)


def test_zstd(tmp_path: Path) -> None:
    packets, cap = _read(_write(tmp_path, zstandard.ZstdCompressor().compress(PLAIN)))
    assert [p.data for p in packets] == DATA
    assert cap.info.compression == "zstd"
    assert not cap.damage


def test_zstd_multi_frame(tmp_path: Path) -> None:
    half = len(PLAIN) // 2
    z = zstandard.ZstdCompressor()
    packets, cap = _read(_write(tmp_path, z.compress(PLAIN[:half]) + z.compress(PLAIN[half:])))
    assert [p.data for p in packets] == DATA
    assert not cap.damage


def test_zstd_many_frames_across_read_chunks(tmp_path: Path) -> None:
    """Frames of odd sizes end anywhere in a read chunk, and the compressed stream spans several
    read chunks (random payloads do not compress): the bytes come out exactly."""
    plain = pcap_bytes((i, os.urandom(300 + i % 700)) for i in range(2000))
    z = zstandard.ZstdCompressor()
    step = 7_777
    content = b"".join(z.compress(plain[i : i + step]) for i in range(0, len(plain), step))
    assert len(content) > 4 * (1 << 18)
    stream = InputStream(str(_write(tmp_path, content)), max_input_bytes=1 << 40)
    try:
        assert b"".join(stream.chunks()) == plain
        assert stream.problem is None
    finally:
        stream.close()


def test_zstd_streamed_without_content_size(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(out, closefd=False) as writer:
        for i in range(0, len(PLAIN), 1000):
            writer.write(PLAIN[i : i + 1000])
    packets, _ = _read(_write(tmp_path, out.getvalue()))
    assert len(packets) == len(DATA)


def test_zstd_truncated(tmp_path: Path) -> None:
    big = pcap_bytes((i, os.urandom(200)) for i in range(2000))
    content = zstandard.ZstdCompressor().compress(big)
    packets, cap = _read(_write(tmp_path, content[: len(content) // 2]))
    assert 0 < len(packets) < 2000
    assert any("zstd stream truncated" in d.reason for d in cap.damage)


def test_zstd_bad_checksum(tmp_path: Path) -> None:
    big = pcap_bytes((i, os.urandom(200)) for i in range(2000))
    content = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(big))
    content[-1] ^= 0xFF
    packets, cap = _read(_write(tmp_path, bytes(content)))
    # The checksum is checked with the frame's last block, whose output zstd then withholds:
    # everything before that block (128 KiB) is kept.
    assert len(packets) > 2000 - (128 << 10) // 216 - 2
    assert "zstd data damaged" in cap.damage[0].reason


def test_zstd_trailing_garbage(tmp_path: Path) -> None:
    content = zstandard.ZstdCompressor().compress(PLAIN) + b"not a zstd frame"
    packets, cap = _read(_write(tmp_path, content))
    assert len(packets) == len(DATA)
    assert "trailing garbage" in cap.damage[0].reason


def test_input_limit_stops_with_a_note(tmp_path: Path) -> None:
    packets, cap = _read(_write(tmp_path, gzip.compress(PLAIN)), max_input_bytes=5000)
    assert 0 < _prefix_count(packets) < len(DATA)
    assert "input-limit" in {n.name for n in cap.notes}
    assert not cap.damage


def test_input_limit_equal_to_size_is_not_hit(tmp_path: Path) -> None:
    packets, cap = _read(_write(tmp_path, PLAIN), max_input_bytes=len(PLAIN))
    assert len(packets) == len(DATA)
    assert not cap.notes


def test_decompression_bomb_is_bounded(tmp_path: Path) -> None:
    # 1 GiB of valid 1 KiB records from a ~1 MB file: one small gzip member repeated (a reader
    # must take multi-member files, so this is as good a bomb as one long member).
    record = pcap_record(1, 0, b"\0" * 1008)
    member = gzip.compress(record * 1024, 9)
    path = _write(tmp_path, gzip.compress(pcap_header()) + member * 1024)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open_capture(path, max_input_bytes=64 << 20) as cap:
        count = sum(1 for _ in cap)
    assert count == ((64 << 20) - 24) // 1024
    assert "input-limit" in {n.name for n in cap.notes}
    assert not cap.damage
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 150_000  # KiB


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress, zstandard.compress])
def test_stdin_stream_same_as_file(tmp_path: Path, compress: Any) -> None:
    content = compress(PLAIN)
    from_file, _ = _read(_write(tmp_path, content))
    with open_capture("-", stdin=io.BufferedReader(io.BytesIO(content))) as cap:  # type: ignore[arg-type]
        from_stdin = list(cap)
    assert from_stdin == from_file
    assert cap.info.path == "-"


def test_stdin_from_a_pipe_written_in_small_pieces(tmp_path: Path) -> None:
    content = gzip.compress(PLAIN)
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as out:
            for i in range(0, len(content), 3):
                out.write(content[i : i + 3])

    writer = threading.Thread(target=feed)
    writer.start()
    with os.fdopen(read_fd, "rb") as pipe, open_capture("-", stdin=pipe) as cap:
        packets = list(cap)
    writer.join()
    assert [p.data for p in packets] == DATA


def test_empty_stdin_is_capture_error() -> None:
    with pytest.raises(CaptureError, match=r"^<stdin>: empty file, not a capture$"):
        open_capture("-", stdin=io.BytesIO(b""))


def test_fifo_path_is_read_as_it_arrives(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "live"
    os.mkfifo(fifo)
    first_packet = threading.Event()
    early: list[bool] = []

    # The header and two records (the reader looks at two record headers before the first
    # packet, to tell pcap variants apart); the rest only once a packet came out.
    head = 24 + 16 + len(DATA[0]) + 16 + len(DATA[1])

    def feed() -> None:
        with open(fifo, "wb", buffering=0) as out:
            out.write(PLAIN[:head])
            # A full-buffer read would wait for 256 KiB that never come before the event.
            early.append(first_packet.wait(10))
            out.write(PLAIN[head:])

    writer = threading.Thread(target=feed)
    writer.start()
    with open_capture(fifo) as cap:
        packets = []
        for raw in cap:
            packets.append(raw)
            first_packet.set()
    writer.join()
    assert early == [True]
    assert [p.data for p in packets] == DATA
