"""Bad-inputs cases 1-27: file level (pcap, pcapng, compression, standard input).

E cases go through the CLI (exit 2, one `tcpdiag: error:` line, < 1 s CPU); W cases check the
finding through the CLI or the API and that the rest was analysed; B cases measure the peak RSS
of the CLI process.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest

from tcpdiag.capture import open_capture
from tcpdiag.errors import CaptureError
from tests.hostile import packets as p
from tests.hostile.helpers import (
    analyze,
    analyze_bytes,
    assert_error,
    assert_read,
    cli,
    finding,
)

T0 = 1_700_000_000


def session_packets(n_data: int = 3) -> list[tuple[int, bytes]]:
    s = p.Session(dport=80)
    s.handshake()
    for i in range(n_data):
        s.send("c", bytes([65 + i]) * 100)
    s.close()
    return s.packets


PACKETS = session_packets()  # 3 + 3*2 + 3 = 12 frames, one flow
PCAP = p.pcap(PACKETS)


def read(data: bytes) -> tuple[list[Any], Any]:
    with open_capture("-", stdin=io.BytesIO(data)) as cap:
        raws = list(cap)
        return raws, cap


# -- 1-3, 5: unreadable inputs -----------------------------------------------------------------


def test_case01_empty_file(write: Any) -> None:
    line = assert_error(analyze(write("empty.pcap", b"")), "empty file, not a capture")
    assert "empty.pcap" in line


@pytest.mark.parametrize(
    ("name", "data", "magic"),
    [
        ("notes.txt", b"hello, this is text\n", "0x68656c6c"),
        ("image.pcap", b"\x89PNG\r\n\x1a\n" + bytes(100), "0x89504e47"),
        ("prog.pcapng", b"\x7fELF\x02\x01\x01" + bytes(100), "0x7f454c46"),
    ],
)
def test_case02_non_capture(write: Any, name: str, data: bytes, magic: str) -> None:
    assert_error(analyze(write(name, data)), "unrecognised format", f"magic {magic}")


@pytest.mark.parametrize(
    ("name", "data", "fmt"),
    [("pcap-content.pcapng", PCAP, "pcap"), ("pcapng-content.pcap", p.pcapng(PACKETS), "pcapng")],
)
def test_case02_format_by_magic_not_name(write: Any, name: str, data: bytes, fmt: str) -> None:
    run = analyze(write(name, data))
    assert_read(run)
    assert run.capture["format"] == fmt
    assert run.capture["packets"] == len(PACKETS)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (PCAP[:10], ("truncated pcap header", "10 of 24 bytes")),
        (p.shb()[:10], ("truncated pcapng header",)),
        (p.shb()[:20], ("pcapng", "20 of 28")),
    ],
)
def test_case03_truncated_header(write: Any, data: bytes, words: tuple[str, ...]) -> None:
    assert_error(analyze(write("cut.pcap", data)), *words)


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (p.pcap_header(major=2, minor=5), ("unsupported pcap version 2.5",)),
        (p.pcap_header(major=1, minor=0), ("unsupported pcap version 1.0",)),
        (p.pcap_header(magic=0xA1B2CD34), ("unsupported pcap variant", "0x34cdb2a1")),
        (p.shb(major=2), ("unsupported pcapng version 2.0",)),
    ],
)
def test_case05_unsupported_version(write: Any, header: bytes, words: tuple[str, ...]) -> None:
    data = header + (PCAP[24:] if header[:4] != b"\n\r\r\n" else b"")
    assert_error(analyze(write("v.pcap", data)), *words)


# -- 4: the four pcap magics -------------------------------------------------------------------


def test_case04_all_four_magics_identical(tmp_path: Path) -> None:
    # Timestamps with whole microseconds so that every variant can hold them exactly.
    packets = [(T0 * 10**9 + i * 1_234_567_000 + 1000, f) for i, (_, f) in enumerate(PACKETS)]
    expected = [ts for ts, _ in packets]
    reports = []
    for ns in (False, True):
        for big in (False, True):
            data = p.pcap(packets, nanosecond=ns, big_endian=big)
            raws, _ = read(data)
            assert [r.ts_ns for r in raws] == expected
            reports.append(analyze_bytes(data))
    counts = {(r.packets, r.tcp_packets, len(r.flows), r.first_time, r.last_time) for r in reports}
    assert len(counts) == 1, counts
    assert reports[0].packets == len(PACKETS)


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_case04_nanosecond_timestamps_equal_tshark(tmp_path: Path) -> None:
    packets = [
        (T0 * 10**9 + i * 1_000_000_007 + 999_999_999 - i, f) for i, (_, f) in enumerate(PACKETS)
    ]
    path = tmp_path / "ns.pcap"
    path.write_bytes(p.pcap(packets, nanosecond=True, big_endian=True))
    out = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    tshark_ns = [int(t.replace(".", "")) for t in out]
    raws, _ = read(path.read_bytes())
    assert [r.ts_ns for r in raws] == tshark_ns == [ts for ts, _ in packets]


# -- 6-11: pcap record oddities ----------------------------------------------------------------


@pytest.mark.parametrize("snaplen", [0, 0xFFFFFFFF, 1 << 31])
def test_case06_bogus_snaplen_bounded(write: Any, snaplen: int) -> None:
    data = p.pcap(PACKETS[:6], snaplen=snaplen)
    assert len(data) < 1024
    run = analyze(write("snap.pcap", data))
    assert_read(run)
    assert run.rss_mb < 100, run.rss_mb
    assert run.capture["packets"] == 6
    hits = run.findings("capture-header-anomaly")
    assert any(f"snaplen {snaplen}" in f["message"] for f in hits), hits


def test_case07_caplen_exceeds_snaplen() -> None:
    frame = p.tcp_frame(payload=b"x" * 1000)
    data = p.pcap([(T0 * 10**9, frame)], snaplen=128)
    result = analyze_bytes(data)
    assert result.packets == 1 and result.tcp_packets == 1
    f = finding(result, "capture-header-anomaly", "exceeds the snap length 128")
    assert f"captured length {len(frame)} " in f.message


def test_case08_huge_caplen_mid_file(write: Any) -> None:
    records = [p.pcap_record(f, sec=T0 + i) for i, (_, f) in enumerate(PACKETS[:5])]
    offset = 24 + len(records[0]) + len(records[1])
    records[2] = struct.pack("<IIII", T0 + 2, 0, 0xFFFFFFF0, 0xFFFFFFF0) + PACKETS[2][1]
    run = analyze(write("caplen.pcap", p.pcap_header() + b"".join(records)))
    assert_read(run)
    assert run.rss_mb < 100 and run.cpu < 1.0, (run.rss_mb, run.cpu)
    assert run.capture["packets"] == 2
    assert run.capture["damaged"] is True
    (damaged,) = run.findings("capture-damaged")
    assert f"byte offset {offset:,}" in damaged["message"], damaged
    assert "4294967280" in damaged["message"]


def test_case09_caplen_exceeds_original_length() -> None:
    frame = p.tcp_frame(payload=b"y" * 10)
    data = p.pcap_header() + p.pcap_record(frame, sec=T0, orig=20)
    raws, _ = read(data)
    assert raws[0].orig_len == len(frame)
    result = analyze_bytes(data)
    finding(result, "capture-header-anomaly", "original length set to the captured length")
    assert result.tcp_packets == 1


@pytest.mark.parametrize("cut", ["header", "data"])
def test_case10_truncated_final_record(write: Any, cut: str) -> None:
    full = p.pcap(PACKETS)
    last = 16 + len(PACKETS[-1][1])
    data = full[: len(full) - last + 7] if cut == "header" else full[:-5]
    run = analyze(write("cut.pcap", data))
    assert_read(run)
    assert run.capture["packets"] == len(PACKETS) - 1
    (damaged,) = run.findings("capture-damaged")
    assert f"byte offset {len(full) - last:,}" in damaged["message"], damaged
    assert "truncated record" in damaged["message"]
    # CI use: `check --fail-on warning` turns the damage into a failing exit status.
    strict = cli("check", str(write("cut2.pcap", data)), "--fail-on", "warning")
    assert strict.rc == 1, (strict.rc, strict.err)
    # `analyze --strict`: the same report of the readable part, then exit 2 with one error line.
    strict = analyze(write("cut.pcap", data), "--strict")
    assert strict.rc == 2 and json.loads(strict.out) == json.loads(run.out), strict.err
    (line,) = strict.err.splitlines()
    assert line.endswith("cut.pcap: the capture is damaged (see capture-damaged); --strict"), line
    # The near miss: the intact capture passes `--strict`.
    intact = analyze(write("whole.pcap", full), "--strict")
    assert intact.rc == 0 and intact.err == "", (intact.rc, intact.err)


def test_case11_zero_length_records() -> None:
    data = p.pcap_header() + p.pcap_record(b"", sec=T0) * 10_000
    result = analyze_bytes(data)
    assert result.packets == 10_000 and result.tcp_packets == 0
    quality = [f for f in result.findings if f.name.startswith("capture-")]
    assert len(quality) == 1, quality
    assert quality[0].count == 10_000


# -- 12-13: link types and time ----------------------------------------------------------------


@pytest.mark.parametrize("linkfield", [0xFFFF, 147, 0x00010001])
def test_case12_unknown_link_type(write: Any, linkfield: int) -> None:
    frame = PACKETS[0][1]
    data = p.pcap_header(linktype=linkfield) + p.pcap_record(frame, sec=T0) * 3
    run = analyze(write("link.pcap", data))
    assert_read(run)
    assert run.capture["packets"] == 3 and run.capture["tcp_packets"] == 0
    assert run.capture["flows"] == []
    hits = run.findings("capture-link-unsupported")
    assert len(hits) == 1 and hits[0]["count"] == 3, hits


def _time_file(times: list[tuple[int, int]]) -> bytes:
    s = p.Session(dport=80)
    s.handshake()
    s.send("c", b"a" * 10)
    s.send("c", b"b" * 10)
    frames = [f for _, f in s.packets]
    return p.pcap_header() + b"".join(
        p.pcap_record(f, sec=sec, frac=frac) for f, (sec, frac) in zip(frames, times, strict=True)
    )


def test_case13_timestamp_extremes(write: Any) -> None:
    times = [(T0, 0), (T0, 1), (0, 0), (0xFFFFFFFF, 999_999), (T0 - 3600, 0), (T0, 1_500_000)]
    run = analyze(write("time.pcap", _time_file([*times, (T0, 6)])))
    assert_read(run)
    assert run.capture["packets"] == 7
    (hit,) = run.findings("capture-timestamps-invalid")
    assert "1500000" in hit["message"], hit
    for flow in run.capture["flows"]:
        assert flow["duration"] >= 0 and flow["end"] >= flow["start"], flow
    # nanosecond magic with a fraction >= 1e9
    ns = p.pcap_header(magic=0xA1B23C4D) + p.pcap_record(PACKETS[0][1], sec=T0, frac=2_000_000_000)
    result = analyze_bytes(ns)
    finding(result, "capture-timestamps-invalid", "2000000000")


def test_case13_bad_fraction_in_second_record() -> None:
    # Regression: this used to make the variant guess pick the 24-byte "modified pcap" layout.
    times = [(T0, 0), (T0, 1_500_000), (T0, 2), (T0, 3), (T0, 4), (T0, 5), (T0, 6)]
    raws, cap = read(_time_file(times))
    assert len(raws) == 7, cap.damage
    assert not cap.damage


# -- 14-24: pcapng ------------------------------------------------------------------------------

FRAME = PACKETS[3][1]
GOOD_NG = p.shb() + p.idb() + p.epb(FRAME) + p.epb(FRAME)


@pytest.mark.parametrize("length", [0, 8, 13, 0xFFFFFFF0])
def test_case14_bad_block_length_mid_file(write: Any, length: int) -> None:
    bad = struct.pack("<II", 6, length) + bytes(40)
    run = analyze(write("len.pcapng", GOOD_NG + bad + p.epb(FRAME)))
    assert_read(run)
    assert run.rss_mb < 100, run.rss_mb
    assert run.capture["packets"] == 2
    (damaged,) = run.findings("capture-damaged")
    assert f"byte offset {len(GOOD_NG):,}" in damaged["message"], damaged
    assert str(length) in damaged["message"]


@pytest.mark.parametrize("length", [0, 8, 13, 0xFFFFFFF0])
def test_case14_bad_first_block_is_an_error(write: Any, length: int) -> None:
    shb = bytearray(p.shb())
    shb[4:8] = struct.pack("<I", length)
    run = analyze(write("first.pcapng", bytes(shb) + p.idb()))
    assert_error(run, "pcapng")
    assert run.rss_mb < 100


def test_case15_trailer_mismatch_stops(write: Any) -> None:
    bad = p.block(6, bytes(20) + FRAME, trailer=1234)
    run = analyze(write("trailer.pcapng", GOOD_NG + bad + p.epb(FRAME) + p.epb(FRAME)))
    assert_read(run)
    assert run.capture["packets"] == 2
    (damaged,) = run.findings("capture-damaged")
    assert "does not match its trailer 1234" in damaged["message"]
    assert f"byte offset {len(GOOD_NG):,}" in damaged["message"]


def test_case16_unknown_blocks_skipped() -> None:
    blocks = [
        p.block(0x12345678, b"abcdefgh"),
        p.block(0x80000001, b"local"),
        p.block(0x00000BAD, b"\x00\x00\x7e\x49custom"),
        p.block(0x0000000A, b"\x00\x00\x00\x00\x00\x00\x00\x00"),  # DSB
        p.block(0x00000004, b"\x00\x00\x00\x00"),  # NRB (end only)
        p.block(0x00000005, bytes(12)),  # ISB
    ]
    data = p.shb() + p.idb() + b"".join(blocks) + p.epb(FRAME) + p.epb(FRAME)
    raws, cap = read(data)
    assert len(raws) == 2 and not cap.damage
    assert [r.frame for r in raws] == [1, 2]


def test_case17_unknown_interface() -> None:
    data = p.shb() + p.epb(FRAME, 0) + p.idb() + p.epb(FRAME, 5) + p.epb(FRAME, 0) + p.epb(FRAME, 0)
    raws, cap = read(data)
    assert [r.frame for r in raws] == [3, 4]
    (note,) = [n for n in cap.notes if n.name == "pcapng-unknown-interface"]
    assert note.count == 2
    result = analyze_bytes(data)
    assert result.packets == 2
    finding(result, "capture-damaged", "interface")


@pytest.mark.parametrize("caplen", [len(FRAME) + 100, 1 << 31, 0xFFFFFFFF])
def test_case18_epb_caplen_beyond_block(caplen: int) -> None:
    data = GOOD_NG + p.epb(FRAME, caplen=caplen) + p.epb(FRAME)
    raws, cap = read(data)
    assert len(raws) == 3 and all(len(r.data) == len(FRAME) for r in raws)
    assert any("exceeds its block" in n.message for n in cap.notes)
    assert analyze_bytes(data).packets == 3


def test_case19_spb_snaplen_and_padding() -> None:
    data = p.shb() + p.idb(snaplen=60) + p.spb(len(FRAME), FRAME[:60] + b"\xee\xee")
    raws, _ = read(data)
    assert len(raws[0].data) == 60 and raws[0].orig_len == len(FRAME)
    # orig < snaplen, and 3 padding bytes after a 61-byte packet
    data = p.shb() + p.idb(snaplen=0) + p.spb(61, FRAME[:61])
    raws, _ = read(data)
    assert len(raws[0].data) == 61


def test_case20_sections_with_opposite_byte_orders() -> None:
    ip_frame = FRAME[14:]
    data = (
        p.shb("<")
        + p.idb(1)
        + p.idb(101)
        + p.epb(FRAME, 0)
        + p.epb(ip_frame, 1)
        + p.shb(">")
        + p.idb(101, order=">")
        + p.idb(1, order=">")
        + p.epb(ip_frame, 0, order=">")
        + p.epb(FRAME, 1, order=">")
    )
    raws, _ = read(data)
    assert [(r.linktype, r.interface) for r in raws] == [(1, 0), (101, 1), (101, 2), (1, 3)]
    result = analyze_bytes(data)
    assert result.packets == 4 and result.tcp_packets == 4


def test_case21_mixed_link_types_in_one_section() -> None:
    ip_frame = FRAME[14:]
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 1, 1, 0, 6, bytes(8))
    data = (
        p.shb()
        + p.idb(1)
        + p.idb(276)
        + p.idb(101)
        + p.epb(FRAME, 0)
        + p.epb(sll2 + ip_frame, 1)
        + p.epb(ip_frame, 2)
    )
    result = analyze_bytes(data)
    assert result.packets == 3 and result.tcp_packets == 3, result
    assert sorted(result.link_types) == ["ethernet", "linux-sll2", "raw"]


@pytest.mark.parametrize(
    ("options", "ts_units", "expected_ns", "note"),
    [
        (b"", 1_700_000_000_123_456, 1_700_000_000_123_456_000, None),
        (p.opt(9, b"\x09"), 1_700_000_000_123_456_789, 1_700_000_000_123_456_789, None),
        (p.opt(9, b"\x8a"), 1_700_000_000 << 10 | 512, 1_700_000_000_500_000_000, None),
        (p.opt(9, b"\x14"), 1_700_000_000_123_456, 1_700_000_000_123_456_000, "not usable"),
        (p.opt(9, b"\xc0"), 1_700_000_000_123_456, 1_700_000_000_123_456_000, "not usable"),
        (p.opt(9, b"\x09") + p.opt(9, b"\x03"), 5, 5, "duplicated"),
        (p.opt(9, b"\x09\x09"), 7_000, 7_000_000, "length 2"),
        (p.opt(14, struct.pack("<q", 1 << 40)), 0, (1 << 40) * 10**9, None),
        (p.opt(14, struct.pack("<q", -(1 << 40))), 0, -(1 << 40) * 10**9, None),
    ],
)
def test_case22_tsresol_and_tsoffset(
    options: bytes, ts_units: int, expected_ns: int, note: str | None
) -> None:
    data = p.shb() + p.idb(options=options + p.opt(0, b"")) + p.epb(FRAME, ts=ts_units)
    raws, cap = read(data)
    assert raws[0].ts_ns == expected_ns
    messages = " ".join(n.message for n in cap.notes)
    if note is None:
        assert not cap.notes, cap.notes
    else:
        assert note in messages, messages
    result = analyze_bytes(data)  # no datetime/overflow exception anywhere downstream
    assert result.packets == 1


@pytest.mark.parametrize(
    "options",
    [
        p.opt(1, b"runs past", length=4000),
        p.opt(1, b"no end of options"),
        p.opt(1, b"comment without NUL\x1b[2J"),
        p.opt(2, b"eth\xff\xfe\x00\x1b]0;pwn\x07"),
        p.opt(1, b"x") * 10_000,
    ],
    ids=["past-end", "no-endofopt", "no-nul", "bad-utf8", "10k-options"],
)
def test_case23_option_walk(write: Any, options: bytes) -> None:
    data = p.shb(options=options) + p.idb(options=options) + p.epb(FRAME, 0) + p.epb(FRAME, 0)
    run = analyze(write("opts.pcapng", data))
    assert_read(run)
    assert run.capture["packets"] == 2 and run.cpu < 2.0
    assert "\x1b" not in run.out and "\x07" not in run.out
    text = analyze(write("opts2.pcapng", data), "--no-color", fmt="text")
    assert text.rc == 0 and "\x1b" not in text.out


def test_case24_unsupported_section_skipped() -> None:
    data = GOOD_NG + p.shb(major=2) + p.idb() + p.epb(FRAME) + p.shb() + p.idb() + p.epb(FRAME)
    raws, _ = read(data)
    assert [r.frame for r in raws] == [1, 2, 3]
    result = analyze_bytes(data)
    assert result.packets == 3
    finding(result, "capture-damaged", "unsupported version 2.0")


# -- 25-27: compression and standard input -----------------------------------------------------

GZ = gzip.compress(PCAP, mtime=0)


def _bad_crc(data: bytes) -> bytes:
    out = bytearray(data)
    out[-8] ^= 0xFF
    return bytes(out)


@pytest.mark.parametrize(
    ("data", "packets", "damage"),
    [
        (GZ, len(PACKETS), None),
        (gzip.compress(PCAP[:500], mtime=0) + gzip.compress(PCAP[500:], mtime=0), 12, None),
        (GZ[: len(GZ) // 2], None, "truncated"),
        (_bad_crc(GZ), len(PACKETS), "damaged"),  # all packets: the CRC is checked last
        (GZ + b"garbage!", len(PACKETS), "trailing garbage"),
    ],
    ids=["valid", "multi-member", "truncated", "bad-crc", "trailing-garbage"],
)
def test_case25_gzip(write: Any, data: bytes, packets: int | None, damage: str | None) -> None:
    run = analyze(write("capture.pcap", data))  # named .pcap: detected by content
    assert_read(run)
    cap = run.capture
    assert cap["format"] == "pcap"
    if packets is not None:
        assert cap["packets"] == packets
    else:
        assert 0 < cap["packets"] < len(PACKETS)
    hits = run.findings("capture-damaged")
    if damage is None:
        assert not hits
    else:
        # The stream's problem; a truncated stream may also leave a cut record (second line).
        assert 1 <= len(hits) <= 2 and any(damage in h["message"] for h in hits), hits
        assert "Traceback" not in run.err


def _bomb(decompressed: int, record: int = 65535) -> bytes:
    """gzip of a pcap whose records are all zeros: ~1000:1."""
    rec = struct.pack("<IIII", T0, 0, record, record) + bytes(record)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [comp.compress(p.pcap_header())]
    block = rec * 16
    for _ in range(decompressed // len(block)):
        parts.append(comp.compress(block))
    parts.append(comp.flush())
    return b"".join(parts)


def test_case26_decompression_bomb_stops_at_limit(write: Any) -> None:
    # 256 MB decompressed from ~250 KB; the limit stops it at 64 MB (the 10 GB version with
    # the default 8 GiB limit is in benchmarks/hostile.py).
    bomb = _bomb(256 << 20)
    assert len(bomb) < 400 << 10
    run = analyze(write("bomb.pcap.gz", bomb), "--max-input-bytes", str(64 << 20))
    assert_read(run)
    assert run.rss_mb < 150, run.rss_mb
    (hit,) = run.findings("capture-damaged")
    assert "stopped after 67108864 bytes" in hit["message"], hit
    assert run.capture["packets"] == (64 << 20) // (65535 + 16)


def test_case27_stdin_plain_and_gzip(write: Any) -> None:
    by_file = analyze(write("f.pcap", PCAP)).json["captures"][0]
    for data in (PCAP, GZ, p.pcapng(PACKETS)):
        run = cli("analyze", "-", "--format", "json", stdin=data)
        assert_read(run)
        cap = run.capture
        assert cap["packets"] == by_file["packets"]
        assert cap["flows"] == by_file["flows"]
        assert cap["findings"] == by_file["findings"]


def test_case27_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as fh:
            for i in range(0, len(GZ), 100):
                fh.write(GZ[i : i + 100])
                fh.flush()

    writer = threading.Thread(target=feed)
    writer.start()
    proc = subprocess.run(
        [sys.executable, "-m", "tcpdiag", "analyze", str(fifo), "--format", "json"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    writer.join(10)
    assert proc.returncode == 0, proc.stderr
    import json

    cap = json.loads(proc.stdout)["captures"][0]
    assert cap["packets"] == len(PACKETS) and cap["compression"] == "gzip"


def test_unreadable_path_is_one_line(tmp_path: Path) -> None:
    assert_error(analyze(tmp_path / "missing.pcap"), "missing.pcap")
    with pytest.raises(CaptureError):
        open_capture(tmp_path)
