"""Packet capture control for the lab: tcpdump (pcap) or dumpcap (pcapng).

Theory of operation: the capture process is started (inside a namespace with ``ip netns exec``
when asked), and traffic is generated only after it has printed that it listens. It is stopped
with SIGINT after a short grace period, so that the last packets reach the file, and the
recording fails when the capture tool reports packets dropped by the kernel: a capture with
holes would make the ground truth a lie.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Literal

from tcpdiag.lab.netns import LabError, Namespace
from tcpdiag.lab.wire import pcap_to_pcapng

Tool = Literal["tcpdump", "dumpcap"]

_DROP_RE = re.compile(r"(\d+) packets? dropped by kernel")
_DUMPCAP_DROP_RE = re.compile(r"Packets received/dropped on interface '[^']*': \d+/(\d+)")


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


class Recorder:
    """``with Recorder(path, "lo", "tcp port 8080"): ...`` records while the block runs."""

    def __init__(
        self,
        path: Path,
        iface: str,
        bpf: str,
        *,
        netns: Namespace | None = None,
        tool: Tool = "tcpdump",
        linktype: str | None = None,
        nano: bool = False,
        snaplen: int = 0,
        grace: float = 0.3,
    ) -> None:
        self.path = path
        self.iface = iface
        self.bpf = bpf
        self.netns = netns
        self.tool: Tool = tool
        self.linktype = linktype
        self.nano = nano
        self.snaplen = snaplen  # 0: whole frames
        self.grace = grace
        self.stderr_lines: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None
        # Without dumpcap (CI installs only tcpdump), record pcap and rewrite it as pcapng.
        self._convert_to: Path | None = None
        if tool == "dumpcap" and not have("dumpcap"):
            self.tool = "tcpdump"
            self._convert_to = path
            self.path = path.with_name(path.name + ".tmp.pcap")

    def argv(self) -> list[str]:
        if self.tool == "tcpdump":
            argv = ["tcpdump", "-i", self.iface, "-n", "-Z", "root", "--immediate-mode"]
            argv += ["-B", "32768", "-s", str(self.snaplen), "-U"]
            if self.linktype:
                argv += ["-y", self.linktype]
            if self.nano:
                argv += ["--time-stamp-precision=nano"]
            argv += ["-w", str(self.path), self.bpf]
        else:
            # dumpcap: -n selects pcapng (its default too); -B is in MiB.
            argv = ["dumpcap", "-i", self.iface, "-n", "-s", "0", "-B", "32"]
            argv += ["-f", self.bpf, "-w", str(self.path)]
        return self.netns.exec_argv(argv) if self.netns else argv

    def command(self) -> str:
        """The capture command as a human would type it (for captures/README.md)."""
        text = " ".join(a if " " not in a else f"'{a}'" for a in self.argv())
        if self._convert_to is not None:
            text += " (then rewritten as pcapng by tcpdiag.lab.wire.pcap_to_pcapng)"
        return text

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            self.stderr_lines.append(line.rstrip("\n"))
            if "listening on" in line or "Capturing on" in line:
                self._ready.set()
        self._ready.set()

    def start(self) -> None:
        if not have(self.tool):
            raise LabError(f"{self.tool} is not installed (tests/scenarios/install-deps.sh)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.path.unlink()
        self._proc = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._ready.wait(15) or self._proc.poll() is not None:
            self.stop(check=False)
            raise LabError(f"{self.tool} did not start: {' | '.join(self.stderr_lines)}")
        if self.tool == "dumpcap":
            # dumpcap announces the interface slightly before its filter is attached.
            time.sleep(0.2)

    def stop(self, *, check: bool = True) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.poll() is None:
            time.sleep(self.grace)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        if not check:
            return
        text = "\n".join(self.stderr_lines)
        drops = [int(n) for n in _DROP_RE.findall(text) + _DUMPCAP_DROP_RE.findall(text)]
        if any(drops):
            raise LabError(f"the kernel dropped packets during the capture: {text}")
        if not self.path.exists() or os.path.getsize(self.path) == 0:
            raise LabError(f"{self.tool} wrote no file: {text}")
        if self._convert_to is not None:
            pcap_to_pcapng(self.path, self._convert_to)
            self.path.unlink()

    def __enter__(self) -> Recorder:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(check=exc_type is None)
