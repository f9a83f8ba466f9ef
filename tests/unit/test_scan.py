"""The C block reader (`decode/_scan.c`, driven by `decode/scan.py`) against the per-packet path.

The extension is built by `pip install .`; an editable install has none, so this module builds
`_scan.c` alone with the C compiler into a temporary directory (a second or two) and puts it in
place of the installed one. Every check reads the same capture both ways and requires the same
records (every Segment field, every RawPacket decoded in Python), the same decoder counters,
frame count, notes and damage, and, through the engine, the same JSON report.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import random
import re
import struct
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tcpdiag.capture.source as source_module
from tcpdiag.capture import open_capture
from tcpdiag.config import AnalysisOptions, Limits
from tcpdiag.decode import Decoder, scan
from tcpdiag.engine import analyze_capture, shard_of
from tcpdiag.errors import CaptureError
from tcpdiag.model import NO_OPTIONS, RawPacket, Segment, TcpOptions, tuple_key
from tcpdiag.report.json import capture_json, dumps
from tests.capture_files import PUBLIC, block, epb, idb, option, pcap_header, pcap_record, shb, spb
from tests.cbuild import REPO, build_extension, load_extension

SOURCE = REPO / "tcpdiag" / "decode" / "_scan.c"
CAPTURE_DIRS = (REPO / "captures", PUBLIC)


def _build(directory: Path) -> ModuleType:
    target = build_extension(SOURCE, "tcpdiag.decode._scan", directory)
    module = load_extension(target, "tcpdiag.decode._scan")
    module.configure(RawPacket, Segment, TcpOptions, NO_OPTIONS)
    return module


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return _build(tmp_path_factory.mktemp("scan"))


@pytest.fixture
def use_native(native: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setattr(scan, "_SCAN", native)
    return native


@dataclasses.dataclass
class Reading:
    # (frame, decoded record), for the records that decode to one: a packet that decodes to
    # nothing is only counted (`stats`), and the C walk makes no object for some of them
    records: list[tuple[int, object]]
    in_c: int  # Segments the C walk made
    others: int  # IP packets of other protocols the C walk counted
    stats: dict[str, object]
    frames: int
    notes: list[object]
    damage: list[object]


def _read(
    path: Path,
    blocks: bool,
    stop: Callable[[], int] = lambda: 1 << 62,
    shard: tuple[int, int] = (0, 1),
) -> Reading:
    decoder = Decoder()
    records: list[tuple[int, object]] = []
    in_c = others = 0
    with open_capture(path) as capture:
        found = scan.open_blocks(capture, decoder.stats, stop, shard) if blocks else None
        if found is not None:
            for block in found:
                if shard[1] == 1:
                    assert block.segments == sum(type(i) is Segment for i in block.items)
                in_c += block.segments
                others += block.others
                for item in block.items:
                    if type(item) is Segment:
                        records.append((item.frame, item))
                    elif (rec := decoder.decode(item)) is not None:  # type: ignore[arg-type]
                        records.append((item.frame, rec))
        else:
            for raw in capture:
                if (rec := decoder.decode(raw)) is not None:
                    records.append((raw.frame, rec))
        return Reading(
            records,
            in_c,
            others,
            dataclasses.asdict(decoder.stats),
            capture.frames_read,
            capture.notes,
            list(capture.damage),
        )


def _same(path: Path, stop: Callable[[], int] = lambda: 1 << 62) -> Reading | None:
    """The block reading, once checked against the per-packet one (None: neither can open it)."""
    try:
        by_packet = _read(path, blocks=False)
    except CaptureError as exc:
        with pytest.raises(CaptureError, match=re.escape(str(exc))):
            _read(path, blocks=True, stop=stop)
        return None
    by_block = _read(path, blocks=True, stop=stop)
    assert by_block.records == by_packet.records
    assert by_block.stats == by_packet.stats
    assert by_block.frames == by_packet.frames
    assert by_block.notes == by_packet.notes
    assert by_block.damage == by_packet.damage
    return by_block


def _corpus() -> list[Path]:
    found: list[Path] = []
    for folder in CAPTURE_DIRS:
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if ".pcap" in p.name or p.suffix == ".cap")
    return found


def test_corpus_reads_the_same_both_ways(use_native: ModuleType) -> None:
    captures = _corpus()
    assert len(captures) >= 10
    segments_in_c = 0
    for path in captures:
        reading = _same(path)
        if reading is not None:
            segments_in_c += reading.in_c
    assert segments_in_c > 10_000  # the C path did the work, not the fallback


@pytest.mark.parametrize("count", [2, 3])
def test_a_shard_reads_its_own_segments_and_counts_the_others(
    use_native: ModuleType, count: int
) -> None:
    """A walk for shard i of n makes exactly the Segments whose flow `shard_of` puts in shard i
    (the C hash is Python's), hands every other record over as before, and counts the same
    packets, snap-length cuts and times as the whole reading."""
    kept_by_shard = [0] * count
    for path in _corpus():
        whole = _same(path)
        if whole is None:
            continue
        in_c = _frames_in_c(path)
        for index in range(count):
            part = _read(path, blocks=True, shard=(index, count))
            expected = [
                (frame, rec)
                for frame, rec in whole.records
                if type(rec) is not Segment
                or shard_of(rec.src, rec.sport, rec.dst, rec.dport, count) == index
                or frame not in in_c  # decoded in Python: a RawPacket, sharded by the engine
            ]
            assert part.records == expected, path.name
            assert part.stats == whole.stats
            assert part.frames == whole.frames
            assert part.in_c == whole.in_c  # skipped Segments are counted
            kept_by_shard[index] += sum(type(rec) is Segment for _, rec in part.records)
    assert min(kept_by_shard) > 1_000  # every shard got a real part of the corpus


def _frames_in_c(path: Path) -> set[int]:
    """Frames whose Segment the unsharded walk made in C."""
    frames: set[int] = set()
    with open_capture(path) as capture:
        found = scan.open_blocks(capture, Decoder().stats, lambda: 1 << 62)
        assert found is not None
        for block in found:
            frames.update(i.frame for i in block.items if type(i) is Segment)
    return frames


def test_shard_blocks_keep_the_times_of_skipped_records(
    use_native: ModuleType, tmp_path: Path
) -> None:
    """Two flows, one per shard: each shard's blocks still span the first to the last record."""
    path = tmp_path / "two.pcap"
    a = (b"\x0a\x00\x00\x01", 1000, b"\x0a\x00\x00\x02", 80)
    b = next(
        (b"\x0a\x00\x00\x01", port, b"\x0a\x00\x00\x02", 80)
        for port in range(1001, 2000)
        if shard_of(b"\x0a\x00\x00\x01", port, b"\x0a\x00\x00\x02", 80, 2) != shard_of(*a, 2)
    )
    records = b"".join(
        pcap_record(1_700_000_000 + t, 0, _flow_frame(*flow))
        for t, flow in enumerate([a, b, b, a, b])
    )
    path.write_bytes(pcap_header() + records)
    for index in range(2):
        with open_capture(path) as capture:
            found = scan.open_blocks(capture, Decoder().stats, lambda: 1 << 62, (index, 2))
            assert found is not None
            blocks = list(found)
        assert [b.segments for b in blocks] == [5]
        assert blocks[0].first_ns == 1_700_000_000 * 10**9
        assert blocks[0].last_ns == 1_700_000_004 * 10**9
        own = 2 if shard_of(*a, 2) == index else 3
        assert len(blocks[0].items) == own


def _flow_frame(src: bytes, sport: int, dst: bytes, dport: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1000, 2000, 5 << 4, 0x18, 512, 0, 0) + b"hi"
    ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(tcp), 7, 0x4000, 61, 6, 0) + src + dst
    return ETHERNET_V4 + ip + tcp


def _flow_frame_v6(src: bytes, sport: int, dst: bytes, dport: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1000, 2000, 5 << 4, 0x18, 512, 0, 0) + b"hi"
    ip = struct.pack("!IHBB", 6 << 28, len(tcp), 6, 61) + src + dst
    return ETHERNET_V6 + ip + tcp


# (use_native's patch holds for every example)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1))
def test_shards_of_tuples_that_share_a_cache_slot(
    use_native: ModuleType, tmp_path_factory: pytest.TempPathFactory, seed: int
) -> None:
    """The C reader remembers the bucket of the last tuples it saw, in slots chosen by the last
    word of each address and the ports: tuples that differ only elsewhere (IPv6 prefixes; an
    IPv4 tuple of the same words) share a slot, and each must still land in the shard
    `shard_of` gives it, interleaved, repeated and reversed."""
    rng = random.Random(seed)
    tail, sport, dport = rng.randbytes(4), rng.randrange(1, 65536), rng.randrange(1, 65536)
    other = rng.randbytes(4)
    v6 = [(rng.randbytes(12) + tail, sport, rng.randbytes(12) + other, dport) for _ in range(6)]
    # IPv4: one tuple in the IPv6 tuples' slot, others anywhere
    v4 = [(tail, sport, other, dport)]
    v4 += [(rng.randbytes(4), sport, rng.randbytes(4), rng.randrange(1, 65536)) for _ in range(5)]
    tuples = v6 + v4
    tuples += [(dst, dp, src, sp) for src, sp, dst, dp in tuples]  # the replies
    sent = [rng.choice(tuples) for _ in range(300)]
    frames = [(_flow_frame_v6 if len(t[0]) == 16 else _flow_frame)(*t) for t in sent]
    path = tmp_path_factory.mktemp("slots") / "slots.pcap"
    records = [pcap_record(1_700_000_000 + i, 0, frame) for i, frame in enumerate(frames)]
    path.write_bytes(pcap_header() + b"".join(records))
    for count in (2, 3):
        kept: list[tuple[bytes, int, bytes, int]] = []
        for index in range(count):
            with open_capture(path) as capture:
                found = scan.open_blocks(capture, Decoder().stats, lambda: 1 << 62, (index, count))
                assert found is not None
                segments = [i for b in found for i in b.items if type(i) is Segment]
            assert all(shard_of(g.src, g.sport, g.dst, g.dport, count) == index for g in segments)
            kept += [(g.src, g.sport, g.dst, g.dport) for g in segments]
        assert sorted(kept) == sorted(sent)


def test_shards_of_more_tuples_than_cache_slots(
    use_native: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of IPv4 tuples from one address and port, each seen twice in random order:
    more than the reader's cache has slots, so tuples that differ only in the destination
    meet in a slot, and each must land in the shard `shard_of` gives it."""
    monkeypatch.setattr(source_module, "_READ_SIZE", 1 << 24)  # one walk: no record in Python
    rng = random.Random(7)
    src = b"\x0a\x00\x00\x01"
    tuples = list({(src, 40000, rng.randbytes(4), 443) for _ in range(6000)})
    sent = tuples * 2
    rng.shuffle(sent)
    path = tmp_path / "many.pcap"
    records = [pcap_record(1_700_000_000, i, _flow_frame(*t)) for i, t in enumerate(sent)]
    path.write_bytes(pcap_header() + b"".join(records))
    kept: list[tuple[bytes, int, bytes, int]] = []
    for index in range(3):
        with open_capture(path) as capture:
            found = scan.open_blocks(capture, Decoder().stats, lambda: 1 << 62, (index, 3))
            assert found is not None
            segments = [i for b in found for i in b.items if type(i) is Segment]
        assert all(shard_of(g.src, g.sport, g.dst, g.dport, 3) == index for g in segments)
        kept += [(g.src, g.sport, g.dst, g.dport) for g in segments]
    assert sorted(kept) == sorted(sent)


def test_a_bad_shard_is_refused(native: ModuleType) -> None:
    for index, count in ((0, 0), (2, 2), (-1, 2), (0, 65), (0, 1 << 33)):
        with pytest.raises(ValueError, match="shard"):
            native.scan(b"", 0, 0, 1 << 62, 16, False, 1000, 10**6, 65535, 1, 8, index, count)


def test_engine_reports_are_identical(
    use_native: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With tight limits, idle expiry lands inside blocks: the stop at the expiry time must
    reproduce the per-packet order of expiries and packets exactly."""
    tight = AnalysisOptions(
        limits=Limits(max_flows=3, idle_timeout=0.5, timeline_head=5, timeline_tail=3),
        keep_all_timelines=True,
    )
    for path in _corpus():
        for options in (AnalysisOptions(keep_all_timelines=True), tight):
            with_c = _report(path, options)
            monkeypatch.setattr(scan, "_SCAN", None)
            without = _report(path, options)
            monkeypatch.setattr(scan, "_SCAN", use_native)
            assert with_c == without, path.name


def _report(path: Path, options: AnalysisOptions) -> str:
    try:
        return dumps(capture_json(analyze_capture(str(path), options)))
    except CaptureError as exc:
        return f"error: {exc}"


# ------------------------------------------------------------------ crafted and mutated files


def _tcp(options: bytes = b"", payload: bytes = b"", flags: int = 0x18) -> bytes:
    options += b"\0" * (-len(options) % 4)
    offset = (20 + len(options)) // 4 << 4
    header = struct.pack("!HHIIBBHHH", 40000, 443, 1000, 2000, offset, flags, 512, 0, 0)
    return header + options + payload


def _ipv4(tcp: bytes, frag: int = 0x4000, ihl: int = 5, proto: int = 6) -> bytes:
    opts = b"\x01" * (ihl * 4 - 20)
    total = ihl * 4 + len(tcp)
    addresses = b"\x0a\0\0\x01\xc0\xa8\0\x02"
    head = struct.pack("!BBHHHBBH", 0x40 | ihl, 0, total, 7, frag, 61, proto, 0) + addresses
    return head + opts + tcp


def _ipv6(tcp: bytes, next_header: int = 6) -> bytes:
    src = bytes(range(16))
    dst = bytes(range(16, 32))
    return struct.pack("!IHBB", 0x60000000, len(tcp), next_header, 55) + src + dst + tcp


ETHERNET_V4 = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
ETHERNET_V6 = b"\x02" * 6 + b"\x04" * 6 + b"\x86\xdd"
OPTION_BLOCKS = (
    b"",
    b"\x01\x01\x08\x0a" + bytes(range(8)),  # NOP NOP timestamps
    b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + bytes(8) + b"\x01\x03\x03\x07",  # SYN options
    b"\x01\x01\x05\x12" + bytes(range(16)),  # two SACK blocks
    b"\x03\x03\x0f",  # window scale 15: clamped (counted: left to Python)
    b"\x02\x01",  # length 1: malformed (counted: left to Python)
    b"\x00\x02\x04",  # end of list, then garbage
)


def _frames() -> list[tuple[int, bytes]]:
    """(link type, frame) of every shape the C path takes or deliberately leaves to Python."""
    out: list[tuple[int, bytes]] = []
    for opts in OPTION_BLOCKS:
        for payload in (b"", b"hello", bytes(1400)):
            tcp = _tcp(opts, payload)
            out += [(1, ETHERNET_V4 + _ipv4(tcp)), (1, ETHERNET_V6 + _ipv6(tcp))]
    tcp = _tcp(payload=b"x" * 30)
    out += [
        (1, ETHERNET_V4 + _ipv4(tcp, frag=0x2000)),  # a first fragment: Python
        (1, ETHERNET_V4 + _ipv4(tcp, ihl=6)),  # IPv4 options
        (1, ETHERNET_V4 + _ipv4(tcp, proto=17)),  # not TCP
        (1, ETHERNET_V6 + _ipv6(tcp, next_header=0)),  # extension header: Python
        (1, b"\x02" * 12 + b"\x81\x00\x00\x05\x08\x00" + _ipv4(tcp)),  # 802.1Q
        (1, b"\x02" * 12 + b"\x88\xa8\x00\x07\x81\x00\x00\x05\x86\xdd" + _ipv6(tcp)),  # QinQ
        (1, b"\x02" * 12 + b"\x91\x00\x00\x07\x92\x00\x00\x05\x08\x00" + _ipv4(tcp)),
        (1, b"\x02" * 12 + b"\x81\x00\x00\x05" * 8 + b"\x08\x00" + _ipv4(tcp)),  # 8 tags
        (1, b"\x02" * 12 + b"\x81\x00\x00\x05" * 9 + b"\x08\x00" + _ipv4(tcp)),  # 9: Python
        (1, b"\x02" * 12 + b"\x81\x00\x00\x05" * 17 + b"\x08\x00" + _ipv4(tcp)),  # too many
        (1, b"\x02" * 12 + b"\x81\x00\x00\x05\x88\x47" + b"\x00\x01\x01\x40" + _ipv4(tcp)),
        (1, b"\x02" * 12 + b"\x81\x00\x00\x05\x08\x00" + _ipv4(tcp, proto=17)),
        (1, b"\x02" * 12 + b"\x81\x00\x00\x05\x08\x06" + bytes(28)),  # tagged ARP
        (1, b"\x02" * 12 + b"\x81\x00\x00"),  # a cut tag
        (113, bytes(14) + b"\x81\x00\x00\x05\x00\x08\x00" + _ipv4(tcp)[:-1]),
        (113, bytes(14) + b"\x81\x00\x00\x05\x08\x00" + _ipv4(tcp)),  # cooked, tagged
        (276, b"\x81\x00" + bytes(18) + b"\x00\x05\x86\xdd" + _ipv6(tcp)),
        (1, ETHERNET_V4 + _ipv4(tcp) + bytes(12)),  # Ethernet padding past the IP length
        (1, ETHERNET_V4 + _ipv4(tcp)[:30]),  # cut inside the TCP header
        (113, bytes(14) + b"\x08\x00" + _ipv4(tcp)),  # Linux cooked v1
        (276, b"\x86\xdd" + bytes(18) + _ipv6(tcp)),  # Linux cooked v2
        (101, _ipv4(tcp)),
        (228, _ipv4(tcp)),
        (229, _ipv6(tcp)),
        (0, b"\x02\0\0\0" + _ipv4(tcp)),  # BSD loopback, the capturing host's order
        (0, b"\0\0\0\x02" + _ipv4(tcp)),  # the other order
        (108, b"\0\0\0\x02" + _ipv4(tcp)),  # OpenBSD loop
        (0, b"\x1e\0\0\0" + _ipv6(tcp)),  # Darwin IPv6
        (0, b"\0\0\0\x18" + _ipv6(tcp)),
        (0, b"\x1c\0\0\0" + _ipv6(tcp)),
        (0, b"\x0a\0\0\0" + _ipv6(tcp)),
        (0, b"\x07\0\0\0" + _ipv4(tcp)),  # another family: not IP
        (0, b"\x1e\0\0\0" + _ipv4(tcp)),  # IPv6 family, IPv4 inside: Python
        (0, b"\x02\0\0"),  # cut
    ]
    return out


def _pcap(
    records: list[tuple[int, int, bytes, int | None, int | None]],
    linktype: int,
    big_endian: bool = False,
    nanosecond: bool = False,
    snaplen: int = 65535,
    version: tuple[int, int] = (2, 4),
) -> bytes:
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out = pcap_header(magic, version, snaplen, linktype, big_endian)
    for sec, frac, data, caplen, orig_len in records:
        out += pcap_record(sec, frac, data, caplen, orig_len, big_endian)
    return out


def _write(tmp: Path, content: bytes) -> Path:
    path = tmp / "x.pcap"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_every_frame_shape_reads_the_same(
    use_native: ModuleType, tmp_path: Path, big_endian: bool, nanosecond: bool
) -> None:
    for linktype, frame in _frames():
        records = [(1_700_000_000 + i, 999 * i, frame, None, None) for i in range(3)]
        # The snap length cut: a captured length below the length on the wire.
        records.append((1_700_000_010, 5, frame[:60], None, len(frame)))
        content = _pcap(records, linktype, big_endian, nanosecond)
        _same(_write(tmp_path, content))


@pytest.mark.parametrize("linkfield", [0x80010001, 0xFFFFFFFF, 0x7FFF0001, 0x04000001])
def test_link_type_fields_with_reserved_bits_read_the_same(
    use_native: ModuleType, tmp_path: Path, linkfield: int
) -> None:
    """The whole 32-bit field is the link type when reserved bits are set (the per-packet
    reader keeps it, to leave such packets undecoded); the C walk once took it as a C int and
    raised OverflowError from bit 31 up (found by fuzz_scan)."""
    frame = ETHERNET_V4 + _ipv4(_tcp(payload=b"abc"))
    content = _pcap([(1_700_000_000, i, frame, None, None) for i in range(3)], linkfield)
    reading = _same(_write(tmp_path, content))
    assert reading is not None
    if linkfield & 0x03FF0000:
        assert reading.records == []
        assert reading.stats["unsupported_linktypes"] == {linkfield: 3}
    else:  # only the FCS bits: still Ethernet, decoded in C
        assert reading.in_c == 3


def test_the_common_case_is_decoded_in_c(use_native: ModuleType, tmp_path: Path) -> None:
    frame = ETHERNET_V4 + _ipv4(_tcp(OPTION_BLOCKS[1], b"hello"))
    content = _pcap([(1_700_000_000, i, frame, None, None) for i in range(1000)], 1)
    decoder = Decoder()
    with open_capture(_write(tmp_path, content)) as capture:
        blocks = scan.open_blocks(capture, decoder.stats, lambda: 1 << 62)
        assert blocks is not None
        items = [item for block in blocks for item in block.items]
    assert len(items) == 1000 and all(type(i) is Segment for i in items)
    assert items[5].options == TcpOptions(ts_val=0x00010203, ts_ecr=0x04050607)
    assert items[5].payload == b"hello" and items[5].frame == 6
    assert items[5].time == (1_700_000_000 * 10**9 + 5000) / 1e9
    assert decoder.stats.packets == decoder.stats.tcp == 1000
    # Never in the cyclic collector's lists (`_scan.c`: a record cannot be part of a cycle).
    assert not any(gc.is_tracked(i) or gc.is_tracked(i.options) for i in items)
    # The flow table's key, one object for the direction (its hash then computed once).
    first = items[0]
    assert first.tuple_key == tuple_key(first.src, first.sport, first.dst, first.dport)
    assert all(i.tuple_key is first.tuple_key for i in items)


TAGGED_V4 = b"\x02" * 12 + b"\x81\x00\x00\x05\x08\x00"
QINQ_V6 = b"\x02" * 12 + b"\x88\xa8\x00\x07\x81\x00\x00\x05\x86\xdd"


@pytest.mark.parametrize(
    ("linktype", "link", "ip", "tags"),
    [
        (1, TAGGED_V4, _ipv4, 1),
        (1, QINQ_V6, _ipv6, 1),
        (113, bytes(14) + b"\x81\x00\x00\x05\x08\x00", _ipv4, 1),
        (0, b"\x02\0\0\0", _ipv4, 0),
        (0, b"\0\0\0\x1e", _ipv6, 0),
        (108, b"\0\0\0\x02", _ipv4, 0),
    ],
    ids=["802.1Q", "QinQ-IPv6", "cooked-tagged", "null-IPv4", "null-IPv6-big-endian", "loop"],
)
def test_tagged_and_loopback_frames_are_decoded_in_c(
    use_native: ModuleType,
    tmp_path: Path,
    linktype: int,
    link: bytes,
    ip: Callable[[bytes], bytes],
    tags: int,
) -> None:
    """VLAN-tagged frames (trunk ports, mirror sessions) and BSD loopback (macOS lo0) are the
    common case of their captures: the C walk decodes them, and counts the tagged ones as the
    per-packet path does; a shard counts the other shards' too."""
    frames = [link + ip(_tcp(payload=bytes([i]) * 20)) for i in range(40)]
    path = _write(
        tmp_path, _pcap([(1_700_000_000, i, f, None, None) for i, f in enumerate(frames)], linktype)
    )
    whole = _same(path)
    assert whole is not None
    assert whole.in_c == 40
    assert whole.stats["vlan_tagged"] == 40 * tags
    assert whole.stats["tcp"] == 40
    for index in range(2):
        part = _read(path, blocks=True, shard=(index, 2))
        assert part.stats == whole.stats


def _udp(ip: Callable[[bytes], bytes], size: int) -> bytes:
    """An IP packet of UDP (`ip` takes the transport bytes and gives the IP packet)."""
    header = struct.pack("!HHHH", 50000, 443, 8 + size, 0)
    return ip(header + bytes(size))


@pytest.mark.parametrize(
    ("linktype", "link", "ip"),
    [
        (1, ETHERNET_V4, lambda t: _ipv4(t, proto=17)),
        (1, ETHERNET_V6, lambda t: _ipv6(t, next_header=17)),
        (1, TAGGED_V4, lambda t: _ipv4(t, proto=132)),  # SCTP, tagged
        (0, b"\x02\0\0\0", lambda t: _ipv4(t, proto=47)),  # GRE on loopback
    ],
    ids=["UDP", "UDP-IPv6", "SCTP-tagged", "GRE-loopback"],
)
@pytest.mark.parametrize("echo", [False, True], ids=["alone", "with-ICMP"])
def test_other_protocols_are_counted_in_c(
    use_native: ModuleType,
    tmp_path: Path,
    linktype: int,
    link: bytes,
    ip: Callable[[bytes], bytes],
    echo: bool,
) -> None:
    """IP packets of protocols the analysis does not follow (UDP: QUIC, DNS) are counted by
    the C walk as the decoder counts them, in every shard, and no object is made for them;
    ICMP (which may quote a TCP header) still goes to Python. A walk of such packets alone
    is still a block: its packets count."""
    frames = [link + _udp(ip, 30 + i) for i in range(30)]
    if echo:  # an ICMP echo request: decoded in Python (not an error), counted there
        frames.append((ETHERNET_V4 if link == ETHERNET_V6 else link) + _ipv4(bytes(32), proto=1))
    records = [(1_700_000_000, i, f, None, None) for i, f in enumerate(frames)]
    path = _write(tmp_path, _pcap(records, linktype))
    whole = _same(path)
    assert whole is not None
    assert whole.others == 30
    assert whole.stats["non_tcp"] == whole.stats["packets"] == len(frames)
    assert whole.records == []
    for index in range(2):
        part = _read(path, blocks=True, shard=(index, 2))
        assert part.stats == whole.stats
        assert part.others == 30


def test_addresses_survive_the_address_cache(use_native: ModuleType, tmp_path: Path) -> None:
    """The C reader hands out one bytes object per recent address (a 1024-slot cache): many
    more distinct addresses than slots, IPv4 and IPv6 with the same leading bytes, each seen
    again later, must all read as their own address."""
    rng = random.Random(7)
    hosts4 = [bytes([10, 0]) + rng.randbytes(2) for _ in range(3000)]
    hosts6 = [b"\x20\x01\x0d\xb8" + bytes(8) + rng.randbytes(4) for _ in range(3000)]
    records = []
    for i in range(12000):
        if i % 2:
            src, dst = rng.choice(hosts4), rng.choice(hosts4)
            addresses = struct.pack("!BBHHHBBH", 0x45, 0, 40, 7, 0x4000, 61, 6, 0) + src + dst
            frame = ETHERNET_V4 + addresses + _tcp()
        else:
            src, dst = rng.choice(hosts6), rng.choice(hosts6)
            frame = ETHERNET_V6 + struct.pack("!IHBB", 0x60000000, 20, 6, 55) + src + dst + _tcp()
        records.append((1_700_000_000, i, frame, None, None))
    reading = _same(_write(tmp_path, _pcap(records, 1)))
    # (a record split across two reads is left to Python: a handful here)
    assert reading is not None and reading.in_c > 11900
    sources = {seg.src for _, seg in reading.records if isinstance(seg, Segment)}
    assert len(sources) > 4000  # the cache was overrun many times over


def test_options_survive_the_options_cache(use_native: ModuleType, tmp_path: Path) -> None:
    """The C reader hands out one TcpOptions per recent option block (a 1024-slot cache keyed
    by the raw bytes): blocks repeated in trains, thousands of distinct ones that overrun the
    cache, blocks of every length and blocks that differ only after the end-of-list option
    must all read as the per-packet path reads them."""
    rng = random.Random(11)
    stamps = [b"\x01\x01\x08\x0a" + rng.randbytes(8) for _ in range(5000)]
    records = []
    for i in range(12000):
        if i % 7 == 0:  # SACK blocks, of 1 to 4 edges pairs (up to the 40 bytes of options)
            edges = rng.randbytes(8 * rng.randint(1, 4))
            options = b"\x01\x01\x05" + bytes([2 + len(edges)]) + edges
        elif i % 7 == 1:  # the same parse, other bytes after the end of the list
            options = b"\x02\x04\x05\xb4\x00" + rng.randbytes(3)
        else:  # a train of a few segments with the same timestamps, often seen again later
            options = stamps[(i // 3) % len(stamps) if rng.random() < 0.8 else rng.randrange(5000)]
        options = options[:40]
        frame = ETHERNET_V4 + _ipv4(_tcp(options, b"x"))
        records.append((1_700_000_000, i, frame, None, None))
    reading = _same(_write(tmp_path, _pcap(records, 1)))
    assert reading is not None and reading.in_c > 11900
    segments = [seg for _, seg in reading.records if isinstance(seg, Segment)]
    assert len({seg.options.ts_val for seg in segments}) > 4000  # overran the cache many times
    shared = sum(a.options is b.options for a, b in itertools.pairwise(segments))
    assert shared > 2000  # and the trains did share one object (2,909 pairs here)


def test_no_record_at_or_after_the_stop_time_is_decoded_in_c(
    use_native: ModuleType, tmp_path: Path
) -> None:
    frame = ETHERNET_V4 + _ipv4(_tcp())
    content = _pcap([(1_700_000_000 + i, 0, frame, None, None) for i in range(10)], 1)
    stop = (1_700_000_004) * 10**9
    with open_capture(_write(tmp_path, content)) as capture:
        blocks = scan.open_blocks(capture, Decoder().stats, lambda: stop)
        assert blocks is not None
        kinds = [(type(i).__name__, i.frame) for b in blocks for i in b.items]
    assert kinds[:4] == [("Segment", n) for n in range(1, 5)]
    # From the stop on, each record comes from the reader (a RawPacket): the caller expires
    # flows on the first of them and moves the stop on.
    assert kinds[4:] == [("RawPacket", n) for n in range(5, 11)]


def test_odd_record_headers_and_damage_read_the_same(
    use_native: ModuleType, tmp_path: Path
) -> None:
    frame = ETHERNET_V4 + _ipv4(_tcp(payload=b"abc"))
    good = (1_700_000_000, 0, frame, None, None)
    cases = [
        [good, (1_700_000_001, 2_000_000, frame, None, None), good],  # fraction out of range
        [good, (1_700_000_001, 0, frame, None, len(frame) - 4), good],  # caplen > orig_len
        [good, (1_700_000_001, 0, frame, 70_000, None), good],  # caplen > snaplen, truncated
        [good, good, (1_700_000_002, 0, frame[:10], len(frame), None)],  # truncated record
    ]
    for records in cases:
        _same(_write(tmp_path, _pcap(records, 1)))
        _same(_write(tmp_path, _pcap(records, 1, snaplen=64)))
        _same(_write(tmp_path, _pcap(records, 1, version=(2, 2))))
    # A record header cut short at the end of the file.
    _same(_write(tmp_path, _pcap([good, good], 1) + b"\x01\x02\x03"))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_captures_read_the_same(
    native: ModuleType, data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Random frames with random bytes overwritten, random record lengths, tiny read chunks
    (records split across reads), tiny blocks and a moving stop time."""
    linktype = data.draw(st.sampled_from([1, 113, 276, 101, 229, 0, 108]))
    every = [frame for _, frame in _frames()]
    matching = [frame for lt, frame in _frames() if lt == linktype]
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    records = []
    for i in range(data.draw(st.integers(1, 25))):
        frame = bytearray(rng.choice(matching if rng.random() < 0.8 else every))
        for _ in range(rng.choice((0, 0, 1, 3))):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        caplen = orig_len = None
        if rng.random() < 0.1:
            caplen = rng.randrange(0, len(frame) + 50)
        if rng.random() < 0.1:
            orig_len = rng.randrange(0, len(frame) * 2)
        when = (1_700_000_000 + i // 3, rng.randrange(1_100_000))
        records.append((*when, bytes(frame), caplen, orig_len))
    content = _pcap(records, linktype)
    if data.draw(st.booleans()):
        content = content[: data.draw(st.integers(24, len(content)))]
    path = _write(tmp_path_factory.mktemp("fuzz"), content)
    stops = iter(range(1_700_000_000 * 10**9, 1 << 62, 10**9 // 3))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scan, "_SCAN", native)
        patch.setattr(scan, "BLOCK_RECORDS", data.draw(st.integers(1, 5)))
        patch.setattr(source_module, "_READ_SIZE", data.draw(st.integers(1, 300)))
        _same(path, stop=lambda: next(stops))


# ------------------------------------------------------------------ pcapng


def _pcapng(big_endian: bool, rng: random.Random | None = None) -> bytes:
    """Two sections (one of an unknown version, skipped), interfaces of several link types and
    timestamp resolutions, enhanced, simple and obsolete packet blocks, statistics blocks, and
    the blocks the reader must judge: unknown interface, captured length beyond the block or
    above the original length, a timestamp offset beyond 64 bits."""
    shapes = _frames()
    tsresol_us, tsresol_ns, tsresol_2 = (b"\x06", b"\x09", b"\x94")
    huge_offset = struct.pack(">q" if big_endian else "<q", 2**62)

    def opt(code: int, value: bytes) -> bytes:
        return option(code, value, big_endian)

    out = shb(big_endian)
    out += idb(1, options=[opt(9, tsresol_us)], big_endian=big_endian)
    out += idb(101, options=[opt(9, tsresol_ns)], big_endian=big_endian)
    out += idb(113, options=[opt(9, tsresol_2)], big_endian=big_endian)
    out += idb(1, options=[opt(14, huge_offset)], big_endian=big_endian)
    by_link = {1: [0, 3], 101: [1], 113: [2]}
    for i, (linktype, frame) in enumerate(shapes * 2):
        if rng is not None:
            linktype, frame = shapes[rng.randrange(len(shapes))]
        iface = by_link.get(linktype, [0])[i % len(by_link.get(linktype, [0]))]
        units = 1_700_000_000_000_000 + 1000 * i
        out += epb(iface, units, frame, big_endian=big_endian)
        if i % 17 == 3:
            out += epb(9, units, frame, big_endian=big_endian)  # unknown interface
            out += epb(0, units, frame, orig_len=len(frame) - 1, big_endian=big_endian)
            out += epb(0, units, frame, caplen=len(frame) + 64, big_endian=big_endian)
            # A captured length reaching into the block's trailer, by two bytes.
            aligned = frame + bytes(-len(frame) % 4)
            over = len(aligned) + 2
            out += epb(0, units, aligned, caplen=over, orig_len=over, big_endian=big_endian)
            out += spb(len(frame), frame, big_endian=big_endian)
            out += block(5, bytes(24), big_endian)  # interface statistics
        if i % 23 == 5:
            out += block(
                2,
                struct.pack(
                    ("<" if not big_endian else ">") + "HHIIII", 0, 0, 0, i, len(frame), len(frame)
                )
                + frame,
                big_endian,
            )  # obsolete packet block
    out += shb(big_endian, major=2)  # a section of an unknown version: skipped
    out += idb(1, big_endian=big_endian)
    out += epb(0, 5, shapes[0][1], big_endian=big_endian)
    out += shb(not big_endian)  # the next section in the other byte order
    out += idb(1, big_endian=not big_endian)
    out += epb(0, 10**15, shapes[0][1], big_endian=not big_endian)
    return out


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_reads_the_same(use_native: ModuleType, tmp_path: Path, big_endian: bool) -> None:
    path = tmp_path / "x.pcapng"
    path.write_bytes(_pcapng(big_endian))
    reading = _same(path)
    assert reading is not None
    assert reading.in_c > 20
    assert reading.notes  # the blocks to judge were judged (by Python)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_mutated_pcapng_reads_the_same(
    native: ModuleType, data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    content = bytearray(_pcapng(data.draw(st.booleans()), rng))
    for _ in range(data.draw(st.integers(0, 6))):
        content[rng.randrange(len(content))] = rng.randrange(256)
    cut = data.draw(st.integers(28, len(content)))
    path = tmp_path_factory.mktemp("fuzzng") / "x.pcapng"
    path.write_bytes(bytes(content[:cut]))
    stops = iter(range(1_700_000_000 * 10**9, 1 << 62, 10**6))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scan, "_SCAN", native)
        patch.setattr(scan, "BLOCK_RECORDS", data.draw(st.integers(1, 7)))
        patch.setattr(source_module, "_READ_SIZE", data.draw(st.integers(1, 500)))
        _same(path, stop=lambda: next(stops))


def test_not_used_when_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TCPDIAG_PURE", "1")
    assert scan._native() is None
