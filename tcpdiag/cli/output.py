"""Writing a report: to `-o FILE` atomically and safely, or to stdout without tracebacks.

`-o FILE` never leaves a partial file: the report goes to a temporary file in the same
directory, is flushed to disk, and replaces FILE with one `rename` (a SIGKILL mid-write leaves
the previous FILE intact). A FILE that exists and is not a regular file (`/dev/null`, another
device, a named pipe) is written in place: a rename would replace the device node itself (as
root, `-o /dev/null` left a regular file there). It refuses, before writing anything, when FILE
is one of the input captures (the report would destroy the evidence), when FILE is an existing
symlink (a planted link must not redirect the write), when FILE is a directory, and when its
directory is missing.

On stdout a reader that goes away (`tcpdiag analyze x.pcap | head -1`) is a normal end, not a
traceback: BrokenPipeError is swallowed and stdout is pointed at /dev/null so the interpreter's
final flush stays quiet.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Sequence
from typing import TextIO

from tcpdiag.errors import TcpdiagError


class OutputError(TcpdiagError):
    """The report cannot be written where asked (exit 2, one line)."""


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output_path(path: str, inputs: Sequence[str] = ()) -> None:
    """Raise OutputError when `path` must not be written (see the module docstring)."""
    if not path:
        raise OutputError("empty output path")
    for inp in inputs:
        if inp != "-" and _same_file(path, inp):
            raise OutputError(f"{path}: refusing to overwrite the input capture {inp}")
    if os.path.islink(path):
        raise OutputError(f"{path}: is a symbolic link; refusing to write through it")
    if os.path.isdir(path):
        raise OutputError(f"{path}: is a directory")
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise OutputError(f"{path}: directory {directory} does not exist")


def _chunks(text: str | Iterable[str]) -> Iterable[str]:
    return (text,) if isinstance(text, str) else text


def write_file(path: str, text: str | Iterable[str], inputs: Sequence[str] = ()) -> None:
    """Write `text` (UTF-8; a string or chunks of one) to `path` atomically (temporary file +
    rename in the same directory); keeps an existing file's permission bits. A device or a
    named pipe is written in place (see the module docstring)."""
    check_output_path(path, inputs)
    if _special_file(path):
        _write_in_place(path, text)
        return
    directory = os.path.dirname(path) or "."
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    except OSError as exc:
        raise OutputError(f"{path}: {exc.strerror or exc}") from None
    try:
        fd, tmp = tempfile.mkstemp(
            dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp"
        )
    except OSError as exc:
        raise OutputError(f"{path}: cannot create a file in {directory}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in _chunks(text):
                fh.write(chunk.encode("utf-8", errors="replace"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        # Re-check right before the rename: a symlink planted meanwhile is replaced, not
        # followed (rename replaces the link itself), but say so rather than surprise.
        if os.path.islink(path):
            raise OutputError(f"{path}: became a symbolic link; refusing to replace it")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _special_file(path: str) -> bool:
    """`path` exists and is neither a regular file nor a directory: a device, a named pipe, a
    socket."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _write_in_place(path: str, text: str | Iterable[str]) -> None:
    try:
        with open(path, "wb") as fh:
            for chunk in _chunks(text):
                fh.write(chunk.encode("utf-8", errors="replace"))
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def write_stdout(text: str | Iterable[str], stream: TextIO | None = None) -> bool:
    """Write `text` (a string or chunks of one) to stdout (UTF-8 bytes when the stream has a
    buffer, so an ASCII locale cannot fail on a Unicode report). Returns False when the reader
    went away."""
    out = stream or sys.stdout
    try:
        buffer = getattr(out, "buffer", None)
        if buffer is not None:
            out.flush()
            for chunk in _chunks(text):
                buffer.write(chunk.encode("utf-8", errors="replace"))
            buffer.flush()
        else:
            for chunk in _chunks(text):
                out.write(chunk)
            out.flush()
    except BrokenPipeError:
        if stream is None:
            _silence_stdout()
        return False
    return True


def emit(text: str | Iterable[str], output: str | None, inputs: Sequence[str] = ()) -> None:
    """The report to `output` (a file path) or to stdout when `output` is None or "-"."""
    if output is None or output == "-":
        write_stdout(text)
    else:
        write_file(output, text, inputs)
