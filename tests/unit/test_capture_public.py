"""The readers against real captures: tshark's packet counts (facts.json) and scapy's raw readers
(packet bytes, lengths, timestamps to the nanosecond where the file has them)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import zstandard

from tcpdiag.capture import open_capture
from tcpdiag.errors import CaptureError
from tests.capture_files import PUBLIC

FACTS: dict[str, Any] = (
    json.loads((PUBLIC / "facts.json").read_text())["files"] if PUBLIC.is_dir() else {}
)
pytestmark = pytest.mark.skipif(not FACTS, reason="shared/captures/public is not beside the repo")

ALL = sorted(FACTS)
DAMAGED = [n for n in ALL if FACTS[n]["read_error"] and FACTS[n]["packets"]]
UNREADABLE = [n for n in ALL if FACTS[n]["read_error"] and not FACTS[n]["packets"]]
CLEAN = [n for n in ALL if not FACTS[n]["read_error"]]


def _read(path: Path) -> tuple[list[tuple[int, int, bytes, int, int]], Any]:
    with open_capture(path) as cap:
        packets = [(r.frame, r.ts_ns, r.data, r.orig_len, r.linktype) for r in cap]
    return packets, cap


@pytest.mark.parametrize("name", [n for n in ALL if n not in UNREADABLE])
def test_packet_count_equals_tshark(name: str) -> None:
    packets, cap = _read(PUBLIC / name)
    assert len(packets) == FACTS[name]["packets"]
    assert [p[0] for p in packets] == list(range(1, len(packets) + 1))
    assert cap.frames_read == len(packets)
    assert bool(cap.damage) == bool(FACTS[name]["read_error"])


@pytest.mark.parametrize("name", DAMAGED)
def test_damage_names_the_record_tshark_rejects(name: str) -> None:
    # tshark: "File has 3925868813-byte packet, bigger than maximum of 262144".
    too_big = re.search(r"File has (\d+)-byte packet", FACTS[name]["read_error"])
    assert too_big is not None
    _, cap = _read(PUBLIC / name)
    (damage,) = cap.damage
    assert f"captured length {too_big.group(1)}" in damage.reason
    raw = (PUBLIC / name).read_bytes()
    assert 24 < damage.offset < len(raw)


@pytest.mark.parametrize("name", UNREADABLE)
def test_unreadable_file_is_a_capture_error(name: str) -> None:
    with pytest.raises(CaptureError, match=f"^{re.escape(str(PUBLIC / name))}: "):
        open_capture(PUBLIC / name)


@pytest.mark.parametrize("name", CLEAN)
def test_packets_equal_scapy_raw_readers(name: str, tmp_path: Path) -> None:
    from scapy.utils import RawPcapReader

    path = PUBLIC / name
    if name.endswith(".zst"):  # scapy cannot read zstd: give it the decompressed bytes
        plain = tmp_path / name.removesuffix(".zst")
        with path.open("rb") as src, plain.open("wb") as dst:
            zstandard.ZstdDecompressor().copy_stream(src, dst)
        scapy_path = plain
    else:
        scapy_path = path
    expected = []
    reader = RawPcapReader(str(scapy_path))
    try:
        for data, meta in reader:
            if hasattr(meta, "usec"):  # classic pcap
                ts = meta.sec * 10**9 + meta.usec * (1 if reader.nano else 1000)
                expected.append((ts, data, meta.wirelen, reader.linktype))
            else:  # pcapng: tsresol is units per second
                units = (meta.tshigh << 32) | meta.tslow
                expected.append((units * 10**9 // meta.tsresol, data, meta.wirelen, meta.linktype))
    finally:
        reader.close()
    packets, _ = _read(path)
    assert [(ts, data, orig, lt) for _, ts, data, orig, lt in packets] == expected


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("name", CLEAN)
def test_timestamps_and_lengths_equal_tshark(name: str) -> None:
    # tshark reads zstd too, so this covers the file scapy cannot.
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(PUBLIC / name),
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.len",
            "-e",
            "frame.cap_len",
            "-e",
            "frame.interface_id",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    expected = []
    for line in out.splitlines():
        epoch, wire, cap, iface = line.split("\t")
        sec, _, frac = epoch.partition(".")
        ts = int(sec) * 10**9 + int(frac.ljust(9, "0"))
        expected.append((ts, int(wire), int(cap), int(iface or 0)))
    with open_capture(PUBLIC / name) as cap:
        got = [(r.ts_ns, r.orig_len, len(r.data), r.interface) for r in cap]
    assert got == expected
