"""`benchmarks/differential.py` against the tshark installed here, on the bundled recordings:
tcpdiag's per-frame TCP analysis flags must equal tshark's, frame for frame, on the TCP
scenarios, and its TLS facts (plaintext handshake messages, alerts, server name and JA3 of each
ClientHello) on the TLS ones. The public corpus is compared through `facts.json` in
test_wireshark_flags.py and test_tls_facts.py; this runs tshark itself, as the script does on
large captures."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.modules import load_file

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
    return load_file(SCRIPT, "differential")


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


TLS_NAMES = sorted(p.name for p in CAPTURES.glob("tls*.pcap*"))


@pytest.mark.parametrize("name", TLS_NAMES)
def test_tls_facts_equal_tsharks(name: str) -> None:
    script = _script()
    theirs, their_conns = script.tshark_tls(CAPTURES / name)
    ours, our_conns = script.tcpdiag_tls(CAPTURES / name)
    spanning = script.spanning_messages(ours, theirs, our_conns, their_conns)
    for fact in script.TLS_FACTS:
        assert ours[fact] - spanning == theirs[fact] - spanning, fact


def test_tls_facts_are_exercised() -> None:
    script = _script()
    counts = dict.fromkeys(("handshake", "alert", "sni"), 0)
    for name in TLS_NAMES:
        ours, _ = script.tcpdiag_tls(CAPTURES / name)
        for fact in counts:
            counts[fact] += len(ours[fact])
    assert len(TLS_NAMES) >= 15 and counts["handshake"] >= 40
    assert counts["alert"] >= 5 and counts["sni"] >= 15
