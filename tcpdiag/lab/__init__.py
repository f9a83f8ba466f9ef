"""The recording lab: stages every scenario with real sockets, the real kernel and tcpdump.

Importable without root and without scapy; staging a scenario needs root (namespaces, nft,
packet capture). See ``tcpdiag lab --list`` and ``captures/README.md``.
"""

from __future__ import annotations

from tcpdiag.lab.netns import LabError
from tcpdiag.lab.scenarios import SCENARIOS, record

__all__ = ["SCENARIOS", "LabError", "record"]
