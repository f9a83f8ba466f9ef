"""Captures by URL (fsspec), by glob, and from an already open file object."""

from __future__ import annotations

import builtins
import io
from pathlib import Path
from typing import Any

import pytest

from tcpdiag.capture import expand_inputs, open_capture
from tcpdiag.capture.remote import expand_url, is_url
from tcpdiag.errors import CaptureError
from tests.conftest import PROJECT_CAPTURES

REFUSED = PROJECT_CAPTURES / "tcp-refused-ipv4.pcap"

fsspec = pytest.importorskip("fsspec")


def _count(path: str, **kw: Any) -> int:
    with open_capture(path, **kw) as cap:
        return sum(1 for _ in cap)


def test_is_url() -> None:
    assert is_url("s3://bucket/x.pcap") and is_url("file:///tmp/x") and is_url("memory://a")
    assert not is_url("/tmp/x.pcap") and not is_url("-") and not is_url("c:x.pcap")


def test_memory_url_reads_like_the_file() -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/caps/a.pcap", REFUSED.read_bytes())
    fs.pipe("/caps/b.pcap", REFUSED.read_bytes())
    fs.pipe("/caps/notes.txt", b"hello")
    assert _count("memory://caps/a.pcap") == _count(str(REFUSED)) == 2
    listed = expand_url("memory://caps/*.pcap")
    assert [f.url for f in listed] == ["memory:///caps/a.pcap", "memory:///caps/b.pcap"]
    assert all(f.listed and f.size == REFUSED.stat().st_size for f in listed)
    assert [s.path for s in expand_inputs(["memory://caps/*.pcap"])] == [f.url for f in listed]


def test_missing_url_is_a_one_line_capture_error() -> None:
    with pytest.raises(CaptureError, match=r"^memory://nope/x\.pcap: "):
        _count("memory://nope/x.pcap")
    with pytest.raises(CaptureError, match="no files found"):
        expand_url("memory://nope/*.pcap")


def test_without_fsspec_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_fsspec(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "fsspec":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_fsspec)
    with pytest.raises(CaptureError, match=r"tcpdiag\[dask\]"):
        _count("s3://bucket/x.pcap")


def test_open_file_object_named_by_path() -> None:
    with open_capture("saved.pcap", fileobj=io.BytesIO(REFUSED.read_bytes())) as cap:
        assert cap.info.path == "saved.pcap"
        assert [raw.frame for raw in cap] == [1, 2]


def test_quoted_glob_is_expanded_sorted(tmp_path: Path) -> None:
    for name in ("b.pcap", "a.pcap", "c.txt"):
        (tmp_path / name).write_bytes(REFUSED.read_bytes())
    specs = expand_inputs([str(tmp_path / "*.pcap")])
    assert [Path(s.path).name for s in specs] == ["a.pcap", "b.pcap"]
    # A name that exists is never taken for a glob, even with glob characters in it.
    odd = tmp_path / "x[1].pcap"
    odd.write_bytes(REFUSED.read_bytes())
    assert [s.path for s in expand_inputs([str(odd)])] == [str(odd)]
