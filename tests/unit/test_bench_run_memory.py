"""`benchmarks/run.py`'s memory sample of all a tool's processes (`session_rss`)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGE = os.sysconf("SC_PAGE_SIZE")  # what session_rss multiplies statm by

pytestmark = pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="Linux /proc")

# The launcher's stand-in (a session leader, which `session_rss` leaves out): writes 64 MB of
# its own, forks argv[1] children that share those pages without writing them, says "ready"
# and waits, like its children, for stdin to close.
HOLDER = r"""
import os, sys
block = bytearray(64 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
for _ in range(int(sys.argv[1])):
    if os.fork() == 0:
        sys.stdin.read()
        os._exit(0)
print("ready", flush=True)
sys.stdin.read()
"""


def _run_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "benchmarks" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _holding(children: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(children)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _children(pid: int) -> list[str]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(entry.name)
    return out


def _mb(n: int) -> float:
    return n / 2**20


def test_one_process_counts_its_resident_memory() -> None:
    run = _run_module()
    proc = _holding(1)
    try:
        (child,) = _children(proc.pid)
        # The child alone is counted (the leader is the launcher), by its RSS: the 64 MB it
        # shares with the leader count in full.
        sampled = _mb(run.session_rss(proc.pid))
        assert 64 <= sampled < 120
        assert abs(sampled - _mb(run._resident(child, PAGE))) < 4
    finally:
        proc.communicate("")


def test_several_processes_count_shared_pages_once() -> None:
    run = _run_module()
    proc = _holding(2)
    try:
        children = _children(proc.pid)
        assert len(children) == 2
        # Three processes share the 64 MB: each child's proportional share is a third of them.
        sampled = _mb(run.session_rss(proc.pid))
        plain = _mb(sum(run._resident(pid, PAGE) for pid in children))
        assert plain >= 128
        assert 40 <= sampled < 80
    finally:
        proc.communicate("")
