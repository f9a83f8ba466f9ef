"""What a flow store keeps in memory about each flow it wrote (`store.FlowStore`).

Why a module of its own: the store appends these facts for every finished flow, and the store
itself stays interpreted (a `Sequence` subclass with file handling, which mypyc would leave a
Python class anyway). Interpreted, the dozen appends and the findings loop cost ~14,000
instructions a flow; compiled (setup.py), ~10,000. (`FlowStore.add` as a whole: ~46,000 ->
~42,000, most of it `marshal`.)
"""

from __future__ import annotations

from array import array
from collections import Counter

from tcpdiag.result import Finding, FlowResult

SEVERITY_SLOTS = 4  # the index of `StoreIndex.severities`: a severity's value (0 unused)


class StoreIndex:
    """Per record, in the order added: flow id, place in the store's file (offset, length),
    worst finding severity (0 without a finding), the server of a flow that completed a
    handshake (an index into `servers`, each "addr:port" once; -1 without a SYN/ACK, so that
    the syn-unanswered context rule reads no flow that only completed a handshake), first
    frame, where in the capture the flow was finished and whether the report quota counted it
    as a problem flow (for merging shards, `split.py`). Across records: findings per name and
    per severity, and the record positions of the flows with a finding of each name."""

    def __init__(self) -> None:
        self.size = 0  # bytes written: the offset of the next record
        self.ids: array[int] = array("q")
        self.offsets: array[int] = array("q")
        self.lengths: array[int] = array("q")
        self.severity = bytearray()
        self.names: Counter[str] = Counter()
        # Findings per severity, by its value (INFO 1 to ERROR 3). A list of ints, not a
        # Counter: compiled, a Counter's `+= 1` is a generic lookup and store (~2,400
        # instructions a flow of the `failures` pattern, against ~100).
        self.severities: list[int] = [0] * SEVERITY_SLOTS
        self.with_name: dict[str, array[int]] = {}
        self.handshake_servers: array[int] = array("q")
        self.servers: list[str] = []
        self.server_index: dict[str, int] = {}
        self.first_frames: array[int] = array("q")
        self.finished_at: array[int] = array("q")
        self.finish_rank: array[int] = array("q")
        self.problems = bytearray()

    def add(self, flow: FlowResult, length: int, finished: tuple[int, int], problem: bool) -> None:
        """The facts of `flow`, written as the next `length` bytes of the file."""
        position = len(self.ids)
        self.ids.append(flow.id)
        self.first_frames.append(flow.first_frame)
        self.finished_at.append(finished[0])
        self.finish_rank.append(finished[1])
        self.problems.append(1 if problem else 0)
        self.offsets.append(self.size)
        self.lengths.append(length)
        self.size += length
        self.handshake_servers.append(
            self.server_number(flow.server) if flow.handshake.syn_ack else -1
        )
        findings = flow.findings
        if not findings:  # most flows
            self.severity.append(0)
            return
        worst = 0
        names = self.names
        severities = self.severities
        for finding in findings:
            severity = int(finding.severity)
            if severity > worst:
                worst = severity
            severities[severity] += 1
            names[finding.name] += 1
        self.severity.append(worst)
        with_name = self.with_name
        for name in {finding.name for finding in findings}:
            positions = with_name.get(name)
            if positions is None:
                positions = with_name[name] = array("i")
            positions.append(position)

    def server_number(self, server: str) -> int:
        number = self.server_index.get(server)
        if number is None:
            number = self.server_index[server] = len(self.servers)
            self.servers.append(server)
        return number


def worst_severity(findings: list[Finding]) -> int:
    """The highest severity among `findings` as an int (0 when there is none)."""
    worst = 0
    for finding in findings:
        severity = int(finding.severity)
        if severity > worst:
            worst = severity
    return worst
