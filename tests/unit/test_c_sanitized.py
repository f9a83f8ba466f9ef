"""The differential tests of the C modules again (`test_scan.py`: the block reader,
`decode/_scan.c`; `test_rows.py`: the timeline rows, `flow/_rows.c`; `test_compact_json.py`:
the JSON writer, `report/_compact.c`; `test_ring_records.py`: live ring blocks,
`capture/_ring.c`), with the C built under AddressSanitizer and UndefinedBehaviorSanitizer.

`_scan.c` reads hostile files with raw pointers, `_rows.c` packed rows and hash tables of its
own, `_compact.c` strs of any kind into a buffer it grows itself: an out-of-bounds read that
happens to return the same bytes as Python would pass the differential tests unnoticed. Here
the same tests run in a child process with the extensions compiled with
`-fsanitize=address,undefined` and the sanitizer runtimes preloaded into Python (which is not
instrumented itself), so any bad read or write, and any undefined behaviour, aborts the child
and fails this test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cbuild import CFLAGS_ENV, SANITIZED_ENV

REPO = Path(__file__).resolve().parents[2]
FLAGS = "-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"


def _runtime(compiler: str, name: str) -> str | None:
    """The path of a sanitizer runtime the compiler ships (None when it has none)."""
    found = subprocess.run(
        [compiler, f"-print-file-name={name}"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return found if os.path.isabs(found) and os.path.exists(found) else None


@pytest.mark.slow
def test_c_modules_are_clean_under_sanitizers(tmp_path: Path) -> None:
    compiler = os.environ.get("CC") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no gcc to build the C modules with the sanitizers")
    runtimes = [_runtime(compiler, "libasan.so"), _runtime(compiler, "libubsan.so")]
    if None in runtimes:
        pytest.skip(f"{compiler} ships no sanitizer runtimes")
    env = dict(
        os.environ,
        **{CFLAGS_ENV: FLAGS, SANITIZED_ENV: "1"},  # the builds check they are instrumented
        LD_PRELOAD=" ".join(str(r) for r in runtimes),
        # Python's own allocations are not ours to judge: leaks off; any report is fatal.
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--basetemp",
            str(tmp_path / "pytest"),
            "tests/unit/test_scan.py",
            "tests/unit/test_rows.py",
            "tests/unit/test_compact_json.py",
            "tests/unit/test_ring_records.py",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = proc.stdout + proc.stderr
    tail = output[-6000:]
    assert proc.returncode == 0, tail
    assert "ERROR: AddressSanitizer" not in output and "runtime error:" not in output, tail
    assert " passed" in output and " failed" not in output and " skipped" not in output, tail
