"""The finished flows of one capture, kept serialised until the report reads them.

Why: a long capture finishes tens of thousands of flows, and a `FlowResult` with its findings,
TLS summary and timeline costs ~6 KB as Python objects (~1 KB serialised). Holding them all made
memory grow with the capture's length instead of with the connections open at one time. The
store writes each finished flow (`result.flow_to_plain` through `marshal`, with the flow's
packed timeline beside it) to a spooled temporary file (in memory while small, then on disk in
$TMPDIR, deleted when the store is; in memory still where $TMPDIR cannot be written) and keeps,
per flow, only its id, its place in the file and its worst severity. Readers get a
`Sequence[FlowResult]` in flow-id order; each access builds a fresh object from the file, so a
long report holds one flow at a time.

What a report needs about all flows at once (problem count, findings per name, worst severity,
problems-first order) comes from the per-flow facts kept in memory, without reading the file.
So does what lets a capture-level rule read only the flows it can concern instead of all of
them: which flows carry a finding of a given name, and the server of each flow that completed a
handshake (an index into the store's list of servers, each "addr:port" kept once).
Capture-level rules may replace or add findings of a stored flow after it was written: those
are `amend`ed by flow id and applied on every read (and to the facts, when `seal`ed).
"""

from __future__ import annotations

import contextlib
import io
import marshal
import os
import tempfile
from array import array
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, overload

from tcpdiag.result import Finding, FlowResult, Severity, flow_from_plain, flow_to_plain
from tcpdiag.storeindex import SEVERITY_SLOTS, StoreIndex, worst_severity

# marshal format 2: without the back-references of formats 3 and 4, whose bookkeeping made
# writing a flow ~40% slower to save ~10% of bytes in a temporary file.
MARSHAL_VERSION = 2

# Stored flows kept in memory before the store moves to a temporary file (~4,000 flows).
SPOOL_BYTES = 8 << 20

# The write buffer of a shard's store file. Flows are appended ~2-3 KB at a time: with the
# default 8 KB buffer, a write system call every few flows (19,500 appends of 2.7 KB: 40 ms;
# with 1 MB, 12 ms). (A full disk still surfaces as an error of the worker, at the latest when
# `detach` closes the file. The temporary file of one process keeps the default buffer: there
# a full disk sends the store back to memory, which it can only do for a failed `write`.)
WRITE_BUFFER = 1 << 20

# What `seal` hands each flow read from the store (with the packed timeline stored beside it,
# None when there is none or the reader wants no timeline): the last touches of the analysis
# (verdict, timeline built or dropped).
Finisher = Callable[[FlowResult, bytes | None], None]


class FlowStore(Sequence[FlowResult]):
    """Append `FlowResult`s in any order, `seal()`, then read them in flow-id order."""

    def __init__(self, spool_bytes: int = SPOOL_BYTES, path: str | None = None) -> None:
        # In memory up to `spool_bytes`, then an anonymous temporary file that lives as long as
        # the store (the report reads it after the analysis) and is deleted with it. With
        # `path`, that file from the start (a shard's store, handed over by `detach`).
        self._path = path
        self._file: BinaryIO = (
            io.BytesIO() if path is None else open(path, "xb+", buffering=WRITE_BUFFER)  # noqa: SIM115
        )
        self._spool_bytes = spool_bytes
        self.on_disk = path is not None
        self.disk_error: str | None = None  # why the flows stayed in memory, if they did
        # The facts kept per record (`storeindex`: appended by compiled code).
        self._index = StoreIndex()
        # The file's position stays at its end: a seek on a buffered file flushes its buffer (a
        # write system call per flow, and one more for the seek), so `_write` appends without
        # one, and `_load` reads with `os.pread` on disk (one system call, the position
        # untouched: flows are read in id order, not in the order written) or slices the memory
        # buffer.
        self._unflushed = False  # appended bytes may still be in the file object's buffer
        self._order: list[int] | None = None  # record positions in flow-id order, once sealed
        self._amended: dict[int, tuple[set[str], list[Finding]]] = {}
        self._finisher: Finisher | None = None

    # -- writing -------------------------------------------------------------------------------

    def add(
        self,
        flow: FlowResult,
        packed_timeline: bytes | None = None,
        finished: tuple[int, int] = (0, 0),
        problem: bool = False,
    ) -> None:
        if self._order is not None:
            raise RuntimeError("the flow store is sealed")
        blob = marshal.dumps((flow_to_plain(flow), packed_timeline), MARSHAL_VERSION)
        self._write(blob)
        self._index.add(flow, len(blob), finished, problem)

    def _server_number(self, server: str) -> int:
        return self._index.server_number(server)

    def amend(self, flow_id: int, finding: Finding, drop: Iterable[str] = ()) -> None:
        """A capture-level rule's finding for a stored flow: remove that flow's findings named
        in `drop`, then add `finding` (before `seal`)."""
        dropped, added = self._amended.setdefault(flow_id, (set(), []))
        dropped.update(drop)
        added.append(finding)

    def seal(self, finisher: Finisher | None = None) -> None:
        """No more flows: order them by id, fold the amendments into the facts, and remember
        `finisher` for every read."""
        ids = self._index.ids
        self._order = sorted(range(len(ids)), key=ids.__getitem__)
        self._finisher = finisher
        if not self._amended:
            return
        position = {ids[i]: i for i in range(len(ids)) if ids[i] in self._amended}
        for flow_id in self._amended:
            i = position.get(flow_id)
            if i is None:
                continue
            flow, _ = self._load(i)
            severities = self._index.severities
            self._index.names.subtract(f.name for f in flow.findings)
            for f in flow.findings:
                severities[f.severity] -= 1
            self._apply(flow)
            self._index.names.update(f.name for f in flow.findings)
            for f in flow.findings:
                severities[f.severity] += 1
            self._index.severity[i] = worst_severity(flow.findings)
        self._index.names = +self._index.names  # drop names whose count fell to zero

    # -- reading -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._index.ids)

    @overload
    def __getitem__(self, index: int) -> FlowResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[FlowResult]: ...

    def __getitem__(self, index: int | slice) -> FlowResult | list[FlowResult]:
        order = self._sealed_order()
        if isinstance(index, slice):
            return [self._read(i) for i in order[index]]
        return self._read(order[index])

    def __iter__(self) -> Iterator[FlowResult]:
        for i in self._sealed_order():
            yield self._read(i)

    def view(self, positions: list[int]) -> StoreView:
        """The flows at these record positions, in this order (see `problems_first`)."""
        return StoreView(self, positions)

    def without_timelines(self) -> StoreView:
        """The flows in id order, for a reader that shows no timeline: the finisher gets no
        packed timeline, so it builds none (for a problem flow, as costly as the rest of the
        reading)."""
        return StoreView(self, self._sealed_order(), timelines=False)

    def problems_first(self) -> StoreView:
        """Flows with a warning or an error first (most severe first), then the rest; flow id
        within each group — `report.options.problem_order` without reading a flow."""
        sev = self._index.severity
        ids = self._index.ids

        def key(i: int) -> tuple[int, int]:
            s = sev[i]
            return (-s if s >= Severity.WARNING else 0, ids[i])

        return StoreView(self, sorted(self._sealed_order(), key=key))

    def with_finding(self, name: str) -> StoreView:
        """The flows that were added with a finding named `name` (amendments aside)."""
        return StoreView(self, list(self._index.with_name.get(name, ())))

    def handshake_servers(self) -> Iterator[tuple[int, int, str]]:
        """(record position, flow id, its server "addr:port") of every flow that completed a
        handshake, without reading any (`view` reads those at chosen positions)."""
        ids = self._index.ids
        servers = self._index.servers
        for position, number in enumerate(self._index.handshake_servers):
            if number >= 0:
                yield position, ids[position], servers[number]

    def problem_count(self) -> int:
        """Flows whose worst finding is a warning or an error."""
        return sum(1 for s in self._index.severity if s >= Severity.WARNING)

    def finding_names(self) -> Counter[str]:
        """Findings of all flows per name."""
        return Counter(self._index.names)

    def finding_severities(self) -> Counter[Severity]:
        """Findings of all flows per severity."""
        return Counter({Severity(s): n for s, n in enumerate(self._index.severities) if s and n})

    def worst(self) -> Severity | None:
        top = max(self._index.severity, default=0)
        return Severity(top) if top else None

    def close(self) -> None:
        self._file.close()

    def detach(self) -> StoredFlows:
        """A store made with a `path`, handed to another process: its file, complete and
        closed, and the facts kept per record (`split.merge_stored`)."""
        if self._path is None or not self.on_disk:
            raise RuntimeError("only a store on a named file can be detached")
        self._file.close()
        return StoredFlows(
            path=self._path,
            ids=self._index.ids,
            offsets=self._index.offsets,
            lengths=self._index.lengths,
            severity=bytes(self._index.severity),
            names=self._index.names,
            severities=self._index.severities,
            with_name=self._index.with_name,
            handshake_servers=self._index.handshake_servers,
            servers=self._index.servers,
            first_frames=self._index.first_frames,
            finished_at=self._index.finished_at,
            finish_rank=self._index.finish_rank,
            problems=bytes(self._index.problems),
        )

    def __reduce__(self) -> tuple[type[list[FlowResult]], tuple[list[FlowResult]]]:
        # Crossing a process boundary (`analyze --jobs`): the receiver gets a plain list.
        return (list, (list(self),))

    # -- internals -----------------------------------------------------------------------------

    def _write(self, blob: bytes) -> None:
        if self._path is not None:  # a shard's store: on its named file, whatever happens
            self._file.write(blob)
            self._unflushed = True
            return
        if (
            not self.on_disk
            and self.disk_error is None
            and self._index.size + len(blob) > self._spool_bytes
        ):
            self._spill()
        try:
            self._file.write(blob)
        except OSError as exc:  # disk full: carry on in memory, as without a store
            if not self.on_disk:
                raise
            self._back_to_memory(exc)
            self._file.seek(self._index.size)
            self._file.write(blob)
        self._unflushed = True

    def _spill(self) -> None:
        memory = self._file
        assert isinstance(memory, io.BytesIO)
        try:
            disk = tempfile.TemporaryFile(prefix="tcpdiag-flows-")  # noqa: SIM115 - see __init__
            disk.write(memory.getbuffer()[: self._index.size])
        except OSError as exc:  # $TMPDIR read-only or full: stay in memory
            self.disk_error = f"{tempfile.gettempdir()}: {exc.strerror or exc}"
            return
        self._file = disk
        self.on_disk = True

    def _back_to_memory(self, exc: OSError) -> None:
        self._file.seek(0)
        memory = io.BytesIO(self._file.read(self._index.size))
        self._file.close()
        self._file = memory
        self.on_disk = False
        self.disk_error = f"{tempfile.gettempdir()}: {exc.strerror or exc}"

    def _sealed_order(self) -> list[int]:
        if self._order is None:
            self.seal()
        assert self._order is not None
        return self._order

    def _load(self, i: int) -> tuple[FlowResult, bytes | None]:
        offset, length = self._index.offsets[i], self._index.lengths[i]
        file = self._file
        if isinstance(file, io.BytesIO):
            with file.getbuffer() as view:  # released at once: the next add may grow the buffer
                values, packed = marshal.loads(view[offset : offset + length])
        else:
            if self._unflushed:
                file.flush()
                self._unflushed = False
            values, packed = marshal.loads(os.pread(file.fileno(), length, offset))
        return flow_from_plain(values), packed

    def _apply(self, flow: FlowResult) -> None:
        amendment = self._amended.get(flow.id)
        if amendment is None:
            return
        dropped, added = amendment
        flow.findings = [f for f in flow.findings if f.name not in dropped] + added

    def _read(self, i: int, timeline: bool = True) -> FlowResult:
        flow, packed = self._load(i)
        if self._amended:
            self._apply(flow)
        if self._finisher is not None:
            self._finisher(flow, packed if timeline else None)
        return flow


# Merged stores opened when first read (`MergedStore(open_now=False)`) that keep their files
# open, least recently read first: beyond `MAX_OPEN_STORES`, the oldest closes them (and opens
# them again if read again), so a report of thousands of captures stays within the process's
# limit of open files.
MAX_OPEN_STORES = 64
_open_lazily: OrderedDict[int, MergedStore] = OrderedDict()


@dataclass
class StoredFlows:
    """A detached store (`FlowStore.detach`): its named file and, per record (in the order
    added), the facts the store keeps in memory. Small enough to pass between processes."""

    path: str
    ids: array[int]
    offsets: array[int]
    lengths: array[int]
    severity: bytes
    names: Counter[str]
    severities: list[int]  # findings per severity, by its value (`StoreIndex.severities`)
    with_name: dict[str, array[int]]
    handshake_servers: array[int]  # per record: an index into `servers`, or -1
    servers: list[str]
    first_frames: array[int]
    finished_at: array[int]
    finish_rank: array[int]
    problems: bytes


def read_stored(stored: StoredFlows, positions: Iterable[int]) -> Iterator[FlowResult]:
    """The flows at these record positions of a detached store, as written (ids unchanged)."""
    fd = os.open(stored.path, os.O_RDONLY)
    try:
        for i in positions:
            values, _ = marshal.loads(os.pread(fd, stored.lengths[i], stored.offsets[i]))
            yield flow_from_plain(values)
    finally:
        os.close(fd)


class MergedStore(FlowStore):
    """Records of several detached stores (the flow shards of one capture) read as one sealed
    store: `records` lists (flow id in the whole capture, shard, record position in that
    shard's store) of the records to keep, in the order they count as added; `released` are
    the findings (per name) of the records left out. Each flow read gets its new id, and so do
    its findings.

    `released_severities`: the findings of the records left out, per severity (by value).

    With `open_now`, the shards' files are opened at once, and the caller may delete them then.
    Without, they are opened when first read, and must stay until the store is read (a report
    of many captures: at most `MAX_OPEN_STORES` such stores keep their files open at once)."""

    def __init__(
        self,
        shards: Sequence[StoredFlows],
        records: Iterable[tuple[int, int, int]],
        released: Counter[str],
        open_now: bool = True,
        released_severities: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.on_disk = True
        self._paths = [shard.path for shard in shards]
        self._lazy = not open_now
        self._fds: list[int] = [] if self._lazy else self._open()
        # Column by column, each in one comprehension (a record at a time took ~12 appends: this
        # runs in the parent while no worker does: the 2M capture's records in ~28 ms, now ~19).
        records = list(records)

        def column(values: Sequence[Sequence[int]]) -> list[int]:
            return [values[index][position] for _, index, position in records]

        self._index.ids = array("q", [flow_id for flow_id, _, _ in records])
        self._source = array("i", [index for _, index, _ in records])  # shard of each record
        self._index.offsets = array("q", column([shard.offsets for shard in shards]))
        self._index.lengths = array("q", column([shard.lengths for shard in shards]))
        self._index.severity = bytearray(column([shard.severity for shard in shards]))
        numbers = column([shard.handshake_servers for shard in shards])
        self._index.handshake_servers = array(
            "q",
            [
                -1 if number < 0 else self._server_number(shards[index].servers[number])
                for number, (_, index, _) in zip(numbers, records, strict=True)
            ],
        )
        self._index.first_frames = array("q", column([shard.first_frames for shard in shards]))
        self._index.finished_at = array("q", column([shard.finished_at for shard in shards]))
        self._index.finish_rank = array("q", column([shard.finish_rank for shard in shards]))
        self._index.problems = bytearray(column([shard.problems for shard in shards]))
        merged_at = [array("q", [-1]) * len(shard.ids) for shard in shards]
        for merged, (_, index, position) in enumerate(records):
            merged_at[index][position] = merged
        names: Counter[str] = Counter()
        with_name: dict[str, list[int]] = {}
        for index, shard in enumerate(shards):
            names.update(shard.names)
            for name, positions in shard.with_name.items():
                kept = [merged_at[index][p] for p in positions]
                with_name.setdefault(name, []).extend(i for i in kept if i >= 0)
        names.subtract(released)
        self._index.names = +names
        severities = [0] * SEVERITY_SLOTS
        for shard in shards:
            for value, count in enumerate(shard.severities):
                severities[value] += count
        for value, count in enumerate(released_severities):
            severities[value] -= count
        self._index.severities = severities
        # in the order the records count as added, as in a store filled by one process
        self._index.with_name = {name: array("i", sorted(at)) for name, at in with_name.items()}
        self._index.size = sum(self._index.lengths)

    def add(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("a merged flow store takes no more flows")

    def close(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)
        _open_lazily.pop(id(self), None)

    def _open(self) -> list[int]:
        return [os.open(path, os.O_RDONLY) for path in self._paths]

    def _descriptors(self) -> list[int]:
        if not self._lazy:
            return self._fds
        if self._fds:
            _open_lazily.move_to_end(id(self))
            return self._fds
        self._fds = self._open()
        _open_lazily[id(self)] = self
        if len(_open_lazily) > MAX_OPEN_STORES:
            _, oldest = _open_lazily.popitem(last=False)
            oldest.close()
        return self._fds

    def _load(self, i: int) -> tuple[FlowResult, bytes | None]:
        index = self._index
        blob = os.pread(self._descriptors()[self._source[i]], index.lengths[i], index.offsets[i])
        values, packed = marshal.loads(blob)
        return flow_from_plain(values, index.ids[i]), packed

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # (at interpreter exit, module globals may be gone)
            self.close()


class StoreView(Sequence[FlowResult]):
    """Some of a store's flows in a given order, read on access like the store itself."""

    def __init__(self, store: FlowStore, positions: list[int], timelines: bool = True) -> None:
        self._store = store
        self._positions = positions
        self._timelines = timelines  # False: see `FlowStore.without_timelines`

    def __len__(self) -> int:
        return len(self._positions)

    @overload
    def __getitem__(self, index: int) -> FlowResult: ...

    @overload
    def __getitem__(self, index: slice) -> StoreView: ...

    def __getitem__(self, index: int | slice) -> FlowResult | StoreView:
        if isinstance(index, slice):
            return StoreView(self._store, self._positions[index], self._timelines)
        return self._store._read(self._positions[index], self._timelines)

    def __iter__(self) -> Iterator[FlowResult]:
        read = self._store._read
        timelines = self._timelines
        for i in self._positions:
            yield read(i, timelines)

    def with_findings(self) -> StoreView:
        """The flows of this view that have a finding, in its order, read without their
        timelines — from the store's facts, without reading a flow."""
        severity = self._store._index.severity
        return StoreView(self._store, [i for i in self._positions if severity[i]], False)

    def excluding(self, flow_ids: set[int]) -> StoreView:
        """This view without the flows of these ids (from the store's facts)."""
        ids = self._store._index.ids
        kept = [i for i in self._positions if ids[i] not in flow_ids]
        return StoreView(self._store, kept, self._timelines)


class LazyFlows(Sequence[FlowResult]):
    """Flows of another sequence, each read when accessed: those at `positions` in that order
    (all, by default), each passed through `adjust` (unchanged, by default). A reordering or a
    per-flow change of a `FlowStore` then keeps its flows on disk."""

    def __init__(
        self,
        flows: Sequence[FlowResult],
        positions: list[int] | None = None,
        adjust: Callable[[FlowResult], FlowResult] | None = None,
    ) -> None:
        self._flows = flows
        self._positions = positions
        self._adjust = adjust

    def __len__(self) -> int:
        return len(self._flows) if self._positions is None else len(self._positions)

    @overload
    def __getitem__(self, index: int) -> FlowResult: ...

    @overload
    def __getitem__(self, index: slice) -> LazyFlows: ...

    def __getitem__(self, index: int | slice) -> FlowResult | LazyFlows:
        positions = self._positions if self._positions is not None else range(len(self._flows))
        if isinstance(index, slice):
            return LazyFlows(self._flows, list(positions[index]), self._adjust)
        flow = self._flows[positions[index]]
        return flow if self._adjust is None else self._adjust(flow)

    def __iter__(self) -> Iterator[FlowResult]:
        flows = self._flows
        adjust = self._adjust
        source = flows if self._positions is None else (flows[i] for i in self._positions)
        for flow in source:
            yield flow if adjust is None else adjust(flow)

    def without_timelines(self) -> LazyFlows:
        """The same flows, read without their timelines when a store holds them."""
        return LazyFlows(flows_without_timelines(self._flows), self._positions, self._adjust)


def flows_without_timelines(flows: Sequence[FlowResult]) -> Sequence[FlowResult]:
    """The flows, for a reader that shows no timeline: a store's (also beneath `LazyFlows`,
    such as a policy's) then skip building them (`FlowStore.without_timelines`), for a problem
    flow as costly as the rest of the reading."""
    if isinstance(flows, FlowStore):
        return flows.without_timelines()
    if isinstance(flows, LazyFlows):
        return flows.without_timelines()
    return flows


def finding_severities(flows: Sequence[FlowResult]) -> Counter[Severity]:
    """The findings of the flows per severity: from a store's facts without reading it, else
    by looking at every flow."""
    if isinstance(flows, FlowStore):
        return flows.finding_severities()
    return Counter(f.severity for flow in flows for f in flow.findings)


def flow_facts(flows: Sequence[FlowResult]) -> tuple[int, Counter[str], Severity | None]:
    """(problem flows, findings per name, worst severity) of the flows — from a store's facts
    without reading it, else by looking at every flow."""
    if isinstance(flows, FlowStore):
        return flows.problem_count(), flows.finding_names(), flows.worst()
    problems = 0
    names: Counter[str] = Counter()
    worst: Severity | None = None
    for flow in flows:
        sev = flow.max_severity
        if sev is not None:
            if sev >= Severity.WARNING:
                problems += 1
            if worst is None or sev > worst:
                worst = sev
        for finding in flow.findings:
            names[finding.name] += 1
    return problems, names, worst
