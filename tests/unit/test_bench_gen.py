"""The benchmark capture generator (benchmarks/gen.py): deterministic, exact size, readable."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import pytest

from tests.modules import load_file

GEN_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "gen.py"
PACKETS = 3000


gen = load_file(GEN_PATH, "bench_gen", register=True)
# The default patterns start connections 3 s before the capture (to open in steady state): ~50k
# packets generated and dropped. A shorter warm-up keeps these tests fast.
MIXED = dataclasses.replace(gen.PATTERNS["mixed"], warmup_s=0.2)


def _records(path: Path) -> list[tuple[int, bytes]]:
    """(timestamp in µs, frame) of every record of a little-endian microsecond pcap."""
    data = path.read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", data, 0)
    assert magic == 0xA1B2C3D4 and linktype == 1
    out, off = [], 24
    while off < len(data):
        sec, usec, caplen, orig = struct.unpack_from("<IIII", data, off)
        assert caplen == orig
        out.append((sec * 1_000_000 + usec, data[off + 16 : off + 16 + caplen]))
        off += 16 + caplen
    assert off == len(data)
    return out


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "a.pcap"
    gen.generate(str(path), PACKETS, seed=7, pattern=MIXED)
    return path


def test_writes_the_asked_number_of_packets_in_time_order(capture: Path) -> None:
    records = _records(capture)
    assert len(records) == PACKETS
    times = [ts for ts, _ in records]
    assert times == sorted(times)


def test_same_seed_same_bytes_and_smaller_is_a_prefix(capture: Path, tmp_path: Path) -> None:
    again = tmp_path / "b.pcap"
    gen.generate(str(again), PACKETS, seed=7, pattern=MIXED)
    assert again.read_bytes() == capture.read_bytes()
    small = tmp_path / "small.pcap"
    gen.generate(str(small), PACKETS // 3, seed=7, pattern=MIXED)
    assert capture.read_bytes().startswith(small.read_bytes())
    other = tmp_path / "other.pcap"
    gen.generate(str(other), PACKETS, seed=8, pattern=MIXED)
    assert other.read_bytes() != capture.read_bytes()


def test_frames_are_consistent_ethernet_ip_tcp(capture: Path) -> None:
    versions, flags = set(), 0
    for _, frame in _records(capture):
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        if ethertype == 0x0800:
            assert frame[14] == 0x45 and frame[23] == 6
            assert struct.unpack_from("!H", frame, 16)[0] == len(frame) - 14
            tcp = 34
        else:
            assert ethertype == 0x86DD and frame[20] == 6
            assert struct.unpack_from("!H", frame, 18)[0] == len(frame) - 54
            tcp = 54
        versions.add(ethertype)
        offset = frame[tcp + 12] >> 4
        assert offset >= 5 and tcp + offset * 4 <= len(frame)
        flags |= frame[tcp + 13]
    assert versions == {0x0800, 0x86DD}
    assert flags & 0x1F == 0x1F  # FIN, SYN, RST, PSH and ACK all occur


def test_every_pattern_generates(tmp_path: Path) -> None:
    for name, pattern in gen.PATTERNS.items():
        path = tmp_path / f"{name}.pcap"
        stats = gen.generate(
            str(path), 500, seed=1, pattern=dataclasses.replace(pattern, warmup_s=0.2)
        )
        assert stats.packets == 500 and len(_records(path)) == 500


def test_tcpdiag_reader_reads_it_back(capture: Path) -> None:
    capture_mod = pytest.importorskip("tcpdiag.capture")
    open_capture = getattr(capture_mod, "open_capture", None)
    if open_capture is None:
        pytest.skip("tcpdiag.capture.open_capture does not exist yet")
    expected = _records(capture)
    with open_capture(str(capture)) as cap:
        got = list(cap)
        assert not cap.damage
    assert len(got) == PACKETS
    assert [raw.frame for raw in got] == list(range(1, PACKETS + 1))
    assert all(raw.linktype == 1 for raw in got)
    assert [raw.data for raw in got] == [frame for _, frame in expected]
    assert [raw.ts_ns // 1000 for raw in got] == [ts for ts, _ in expected]
