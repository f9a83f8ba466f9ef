"""`expand_inputs`: the command line's CAPTURE arguments to the list of captures to analyse."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable

from tcpdiag.capture.reader import open_capture
from tcpdiag.capture.records import InputSpec
from tcpdiag.capture.remote import GLOB, expand_url, is_url
from tcpdiag.errors import CaptureError


def expand_inputs(paths: Iterable[str | os.PathLike[str]]) -> list[InputSpec]:
    """Files and "-" as given (a bad one fails later, loudly, when opened); directories walked
    recursively in sorted path order, keeping the files whose content is a capture and marking
    the others `skipped` with a one-line reason. Symlinked directories are not followed, so a
    link loop cannot make the walk endless. A quoted glob that names no file is expanded
    (sorted); URLs (fsspec) are taken as given, or listed when they name a directory or glob."""
    specs: list[InputSpec] = []
    for given in paths:
        path = os.fspath(given)
        if is_url(path):
            specs.extend(InputSpec(f.url) for f in expand_url(path))
            continue
        names = [path]
        if path != "-" and GLOB.search(path) and not os.path.exists(path):
            names = sorted(glob.glob(path, recursive=True)) or [path]
        for name in names:
            if name != "-" and os.path.isdir(name):
                specs.extend(_walk(name))
            else:
                specs.append(InputSpec(name))
    return specs


def _walk(top: str) -> list[InputSpec]:
    found: list[str] = []
    for root, _dirs, files in os.walk(top):
        found.extend(os.path.join(root, name) for name in files)
    specs: list[InputSpec] = []
    for path in sorted(found):
        # A FIFO or device found by a walk would block or never end: only regular files.
        reason = _why_not_a_capture(path) if os.path.isfile(path) else "not a regular file"
        specs.append(InputSpec(path, reason))
    return specs


def _why_not_a_capture(path: str) -> str | None:
    try:
        with open_capture(path):
            return None
    except CaptureError as exc:
        return str(exc).removeprefix(f"{path}: ")
