"""`benchmarks/differential.py` against the tshark installed here, on the bundled recordings of
the TCP scenarios: tcpdiag's per-frame analysis flags must equal tshark's, frame for frame (the
public corpus is compared through `facts.json` in test_wireshark_flags.py; this runs tshark
itself, as the script does on large captures)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "differential.py"
CAPTURES = ROOT / "captures"
# Recordings whose packets carry the flags: retransmissions, dup ACKs, lost segments,
# zero windows and probes, keep-alives, port reuse.
NAMES = (
    "tcp-retransmissions.pcap",
    "tcp-zero-window.pcap",
    "tcp-keepalive.pcap",
    "tcp-port-reuse.pcap",
    "tcp-synack-lost.pcap",
    "tcp-syn-dropped.pcap",
    "capture-loss.pcap",
    "tcp-stale-segment.pcap",
)

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("differential", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NAMES)
def test_flags_equal_tsharks(name: str) -> None:
    script = _script()
    path = CAPTURES / name
    theirs, streams = script.tshark_flags(path)
    ours, flows = script.tcpdiag_flags(path)
    assert flows == streams
    comparison, linux_probes = script.compare(ours, theirs)
    for flag, (both, only_ours, only_theirs) in comparison.items():
        assert (only_ours, only_theirs) == ([], []), flag
        assert both == len(theirs[flag] - (linux_probes if flag == "keep-alive" else set()))


def test_the_flags_are_exercised() -> None:
    script = _script()
    seen: set[str] = set()
    for name in NAMES:
        ours, _ = script.tcpdiag_flags(CAPTURES / name)
        seen |= {flag for flag, frames in ours.items() if frames}
    assert {"retransmission", "duplicate-ack", "zero-window", "keep-alive", "port-reused"} <= seen


def test_the_linux_zero_window_probes_are_the_deliberate_difference() -> None:
    script = _script()
    path = CAPTURES / "tcp-zero-window.pcap"
    ours, theirs = script.tcpdiag_flags(path)[0], script.tshark_flags(path)[0]
    _, linux_probes = script.compare(ours, theirs)
    assert linux_probes and linux_probes <= theirs["keep-alive"]
    assert linux_probes <= ours["zero-window-probe"]


def test_the_script_exits_0_when_only_the_deliberate_difference_remains() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(CAPTURES / "tcp-zero-window.pcap")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "deliberate: 3 Linux zero-window probes" in proc.stdout
