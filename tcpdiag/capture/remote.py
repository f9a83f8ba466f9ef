"""Captures named by URL (`s3://`, `gs://`, `file://`, `memory://`...), read through fsspec.

fsspec is optional (the `tcpdiag[dask]` extra brings it, since fleets of captures usually live
in object stores); it is imported only when a URL is given. A listing (a directory or a glob
URL) is expanded in sorted order so every run sees the same captures in the same order.
"""

from __future__ import annotations

import re
from typing import Any, BinaryIO, NamedTuple

from tcpdiag.errors import CaptureError

INSTALL_HINT = "pip install 'tcpdiag[dask]'"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
GLOB = re.compile(r"[*?[]")


class RemoteFile(NamedTuple):
    url: str
    size: int | None  # bytes, when the store says
    listed: bool  # found by a listing or a glob (not named by the user)


def is_url(path: str) -> bool:
    return bool(_URL.match(path))


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError:
        raise CaptureError(f"reading URLs needs fsspec: {INSTALL_HINT}") from None
    return fsspec


def open_url(url: str) -> BinaryIO:
    """An open binary file for `url` (the caller closes it)."""
    fsspec = _fsspec()
    try:
        fileobj: BinaryIO = fsspec.open(url, "rb").open()
    except ImportError as exc:  # the protocol's backend (s3fs, gcsfs...) is not installed
        raise CaptureError(f"{url}: {exc}") from None
    except OSError as exc:
        raise CaptureError(f"{url}: {exc.strerror or type(exc).__name__}") from None
    return fileobj


def expand_url(url: str) -> list[RemoteFile]:
    """One file, or the files of a directory or glob URL in sorted order."""
    fsspec = _fsspec()
    try:
        fs, path = fsspec.core.url_to_fs(url)
        if GLOB.search(path):
            found = fs.glob(path, detail=True)
        elif fs.isdir(path):
            found = fs.find(path, detail=True)
        else:
            try:
                size = int(fs.size(path))
            except (OSError, ValueError, TypeError):
                size = -1
            return [RemoteFile(url, size if size >= 0 else None, listed=False)]
    except ImportError as exc:
        raise CaptureError(f"{url}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise CaptureError(f"{url}: {exc}") from None
    files: list[RemoteFile] = []
    for name in sorted(found):
        entry = found[name]
        if entry.get("type") == "directory":
            continue
        size = entry.get("size")
        files.append(
            RemoteFile(fs.unstrip_protocol(name), size if isinstance(size, int) else None, True)
        )
    if not files:
        raise CaptureError(f"{url}: no files found")
    return files
