"""expand_inputs: files, "-", directories walked in sorted order with non-captures skipped."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from tcpdiag.capture import InputSpec, expand_inputs
from tests.capture_files import frames, pcap_bytes, pcapng_bytes

PCAP = pcap_bytes((i, d) for i, d in enumerate(frames(2)))


def test_files_and_stdin_pass_through_unprobed(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a capture")
    specs = expand_inputs([str(text), "-", tmp_path / "missing.pcap"])
    assert specs == [
        InputSpec(str(text)),
        InputSpec("-"),
        InputSpec(str(tmp_path / "missing.pcap")),
    ]


def test_directory_walked_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "b" / "z.pcap").write_bytes(PCAP)
    (tmp_path / "a" / "deep" / "y.capture").write_bytes(gzip.compress(PCAP))
    (tmp_path / "a" / "x.pcapng").write_bytes(pcapng_bytes([(0, b"abc")]))
    (tmp_path / "a" / "README").write_text("hello")
    (tmp_path / "a" / "empty.pcap").write_bytes(b"")
    specs = expand_inputs([tmp_path])
    base = str(tmp_path)
    assert [s.path for s in specs] == [
        os.path.join(base, "a", "README"),
        os.path.join(base, "a", "deep", "y.capture"),
        os.path.join(base, "a", "empty.pcap"),
        os.path.join(base, "a", "x.pcapng"),
        os.path.join(base, "b", "z.pcap"),
    ]
    skipped = {Path(s.path).name: s.skipped for s in specs if s.skipped}
    assert set(skipped) == {"README", "empty.pcap"}
    assert skipped["README"].startswith("unrecognised format (magic 0x68656c6c)")
    assert skipped["empty.pcap"] == "empty file, not a capture"
    notes = [s.note for s in specs if s.note]
    assert notes[0] == f"skipped {os.path.join(base, 'a', 'README')}: {skipped['README']}"
    assert all("\n" not in note for note in notes)
    assert [s.note for s in specs if not s.skipped] == [None] * 3


def test_symlinked_directory_loop_terminates(tmp_path: Path) -> None:
    (tmp_path / "c.pcap").write_bytes(PCAP)
    try:
        (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    except OSError:
        pytest.skip("no symlinks here")
    specs = expand_inputs([tmp_path])
    assert [Path(s.path).name for s in specs] == ["c.pcap"]


def test_fifo_in_a_directory_is_skipped_not_opened(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "pipe")
    (specs,) = expand_inputs([tmp_path])
    assert specs.skipped == "not a regular file"
