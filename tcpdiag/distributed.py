"""Capture fleets on Dask: one task per capture, or per flow shard of a large capture.

Theory of operation
-------------------
The client expands the inputs (`expand_sources`: local files and directories, globs, fsspec URLs
such as `s3://bucket/prefix/`), then submits one task per capture to a `dask.distributed`
cluster. A worker opens the capture itself (a local path every worker can see, or a URL through
fsspec), runs the ordinary engine and returns the finished `CaptureResult`, exactly what
`engine.analyze_capture` returns in a local run. The client puts the results back in input
order, so the report is byte-identical to a local run's.

A capture larger than `split_size` is split by flow, never by bytes: `count` shard tasks each
read the whole file with `Engine(shard=(i, count))`, which decodes every packet but follows only
the flows whose canonical 4-tuple hashes to `i` (see `engine.py`). No flow is cut, and each flow
lives and dies exactly as in one process. A merge task (`merge_shards`, on a worker, so the
partial results travel between workers and only the final result reaches the client) then puts
the shards back together:

* flows: numbered as one process numbers them (by first frame, counting the flows each shard
  did not keep for the report) and limited by the report quota of the whole capture
  (`shards.py`); every `Finding.flow` and `CaptureContext.synack_time` key follows the
  renumbering;
* ICMP errors: kept by the shard that owns the 4-tuple they quote, so the shards' dicts are
  disjoint; the union is put back in first-arrival order and the `MAX_ICMP_TUPLES` cap applied
  again, which reproduces the single-process dict and drop count exactly;
* ARP state, capture notes, damage, decode counters, packet counts, times and link types: every
  shard sees every packet, so they come from shard 0 (the engine feeds ARP to shard 0 only);
* flow-table evictions: summed (each shard's table holds at most `max_flows` flows, so the limit
  is effectively `count * max_flows`: the one place where a split run can differ, and only on
  captures that overflow the table); likewise late packets of flows finalised early by the
  closed-flow cap, which is exact (it is kept per bucket of flows, `flow/buckets.py`, and a
  shard is a set of whole buckets);

then `engine.conclude` runs the capture-level rules once over the merged capture.

Everything a worker runs is a module-level function of this module, so workers unpickle it by
reference (tcpdiag must be installed on them). Dask and fsspec are imported lazily: without the
`tcpdiag[dask]` extra, importing this module works and `require_dask` explains what to install.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import tcpdiag.engine as engine_module
from tcpdiag.capture import Capture, expand_inputs, open_capture
from tcpdiag.capture.remote import INSTALL_HINT, expand_url, is_url
from tcpdiag.config import AnalysisOptions
from tcpdiag.engine import Engine, PartialCapture, Shard, analyze_partial, conclude
from tcpdiag.errors import CaptureError, TcpdiagError
from tcpdiag.findings.context import MAX_ICMP_TUPLES, CaptureContext, Tuple4
from tcpdiag.findings.verdict import problem_flow
from tcpdiag.model import FLOW_BUCKETS, IcmpError
from tcpdiag.result import CaptureResult, Finding, FlowResult
from tcpdiag.shards import (
    FinishRecord,
    Numbering,
    apply_quota,
    check_same_reading,
    merged_partial,
)

if TYPE_CHECKING:
    from distributed import Client, Future

DEFAULT_SPLIT_SIZE = 256 * 1024 * 1024

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class DaskUnavailable(TcpdiagError):
    """Dask (or fsspec) is not installed: the message says how to install it."""


class DistributedError(TcpdiagError):
    """A bad cluster specification, an unreachable scheduler, an input a cluster cannot read."""


# -- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """One capture to analyse on a worker."""

    name: str  # as the report shows it (as given, like a local run)
    location: str  # what the worker opens: an absolute local path or a URL
    size: int | None = None  # bytes on disk (compressed), None when unknown
    listed: bool = False  # found by a directory listing or glob: a non-capture is skipped


@dataclass(frozen=True, slots=True)
class Failure:
    """A capture that produced no result."""

    name: str
    message: str  # one line, starting with the capture's name
    kind: str  # "unreadable" (exit 2) | "skipped" (a listed non-capture: a note) | "internal" (3)


def require_dask(flag: str = "--cluster") -> None:
    """Raise `DaskUnavailable` ("--cluster needs Dask: pip install ...") without Dask."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise DaskUnavailable(f"{flag} needs Dask: {INSTALL_HINT}") from None


def parse_cluster(spec: str) -> int:
    """`local` (one worker per CPU) or `local:N` -> the number of worker processes."""
    text = spec.strip()
    if text == "local":
        return max(1, os.cpu_count() or 1)
    match = re.fullmatch(r"local:(\d+)", text)
    if match is None or int(match.group(1)) < 1:
        raise DistributedError(f"--cluster {spec!r}: expected local or local:N (N >= 1 workers)")
    return int(match.group(1))


def parse_size(text: str) -> int:
    """'268435456', '256M', '256MiB', '1.5G' -> bytes (binary units)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size (e.g. 256M, 1G, 1048576)")
    value = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if value < 1:
        raise ValueError(f"{text!r}: the size must be at least 1 byte")
    return int(value)


def expand_sources(paths: Sequence[str]) -> tuple[list[Source], list[str]]:
    """The capture arguments to sources, plus notes about skipped files.

    Local files and directories as `tcpdiag.capture.expand_inputs` does it (directories walked in
    sorted order, non-captures skipped with a note); a local path that does not exist but has
    glob characters is expanded (sorted). URLs (`s3://`, `gs://`, `file://`, `memory://`...)
    are expanded with fsspec: a glob or a directory lists its files in sorted order (a listed
    file that is not a capture is skipped on the worker, with a note).
    """
    sources: list[Source] = []
    notes: list[str] = []
    for given in paths:
        if given == "-":
            raise DistributedError(
                "standard input (-) cannot be analysed on a Dask cluster: save it to a file"
            )
        if is_url(given):
            sources.extend(_expand_url(given))
            continue
        for spec in expand_inputs([given]):
            if spec.note:
                notes.append(spec.note)
                continue
            try:
                size: int | None = os.path.getsize(spec.path)
            except OSError:
                size = None
            sources.append(Source(spec.path, os.path.abspath(spec.path), size))
    return sources, notes


def _expand_url(url: str) -> list[Source]:
    return [Source(f.url, f.url, f.size, listed=f.listed) for f in expand_url(url)]


# -- worker tasks (module level: workers import them by name) -------------------------------------


@contextlib.contextmanager
def open_source(source: Source, max_input_bytes: int) -> Iterator[Capture]:
    """`open_capture` for a source (URLs through fsspec). Errors name `source.name`."""
    try:
        reader = open_capture(source.location, max_input_bytes)
    except CaptureError as exc:
        raise CaptureError(_renamed(str(exc), source.location, source.name)) from None
    with reader:
        yield reader


def _renamed(message: str, old: str, new: str) -> str:
    return new + message[len(old) :] if message.startswith(old) else f"{new}: {message}"


def _read(source: Source, options: AnalysisOptions, shard: Shard | None) -> PartialCapture:
    if not is_url(source.location):
        # Exactly what a local run does (same reader, same engine set-up), named as given.
        try:
            part = analyze_partial(source.location, options, shard)
        except CaptureError as exc:
            raise CaptureError(_renamed(str(exc), source.location, source.name)) from None
        part.path = source.name
        return part
    with _batch_gc(), open_source(source, options.limits.max_input_bytes) as reader:
        engine = Engine(options, path=source.name, shard=shard)
        engine.feed_capture(reader)
        return engine.close(reader)


def _batch_gc() -> contextlib.AbstractContextManager[None]:
    """The engine's garbage-collector tuning for batch analyses, when it has one."""
    tuned: Callable[[], contextlib.AbstractContextManager[None]] | None = getattr(
        engine_module, "gc_tuned", None
    )
    return tuned() if tuned is not None else contextlib.nullcontext()


def _failure(source: Source, exc: CaptureError) -> Failure:
    return Failure(source.name, str(exc), "skipped" if source.listed else "unreadable")


def analyze_task(source: Source, options: AnalysisOptions) -> CaptureResult | Failure:
    """One whole capture: the same result as `engine.analyze_capture`."""
    try:
        return conclude(_read(source, options, None), options)
    except CaptureError as exc:
        return _failure(source, exc)


def shard_task(source: Source, options: AnalysisOptions, shard: Shard) -> PartialCapture | Failure:
    """The flows of one shard of a capture, before the capture-level rules."""
    try:
        return _read(source, options, shard)
    except CaptureError as exc:
        return _failure(source, exc)


def merge_task(
    options: AnalysisOptions, *parts: PartialCapture | Failure
) -> CaptureResult | Failure:
    """Merge the shards (in shard order) of one capture, or pass on the first failure."""
    partials: list[PartialCapture] = []
    for part in parts:
        if isinstance(part, Failure):
            return part
        partials.append(part)
    try:
        return merge_shards(partials, options)
    except CaptureError as exc:
        return Failure(partials[0].path, str(exc), "unreadable")


# -- merging shards -------------------------------------------------------------------------------


def merge_shards(parts: Sequence[PartialCapture], options: AnalysisOptions) -> CaptureResult:
    """Shards `(0, n) .. (n-1, n)` of one capture, in shard order -> the single-process result.

    See the module docstring for what comes from where. Raises `CaptureError` when the shards
    did not read the same packets (the file changed between the reads).
    """
    if not parts:
        raise ValueError("merge_shards needs at least one shard")
    check_same_reading(parts)
    base = parts[0]
    # Number as one process would, and apply the report quota to the whole capture
    # (`shards.py`).
    number = Numbering([part.first_frames or () for part in parts])
    problems = [[problem_flow(flow) for flow in part.flows] for part in parts]
    kept, released = apply_quota(_finished(parts), problems, options.limits.max_report_flows)
    released_names: Counter[str] = Counter()
    for index, position in released:
        released_names.update(f.name for f in parts[index].flows[position].findings)
    ids: list[dict[int, int]] = [{} for _ in parts]
    flows: list[FlowResult] = []
    for index, position in kept:
        flow = parts[index].flows[position]
        ids[index][flow.id] = number.of(flow.first_frame)
        flows.append(flow)
    for index, part in enumerate(parts):
        mapping = ids[index]
        for flow in part.flows:
            if flow.id in mapping:
                flow.findings = [_renumbered(f, mapping) for f in flow.findings]
                flow.id = mapping[flow.id]
    flows.sort(key=lambda flow: flow.id)

    context = merge_contexts([part.context for part in parts], ids)
    merged = merged_partial(parts, base, flows, context, len(released), released_names)
    return conclude(merged, options)


def _finished(parts: Sequence[PartialCapture]) -> Iterator[FinishRecord]:
    for index, part in enumerate(parts):
        for position, (frame, rank) in enumerate(part.finish_keys or ()):
            yield frame, rank, index, position


def _renumbered(finding: Finding, mapping: dict[int, int]) -> Finding:
    if finding.flow is None or finding.flow not in mapping:
        return finding
    return dataclasses.replace(finding, flow=mapping[finding.flow])


# The `CaptureContext` attributes `merge_contexts` knows how to merge (a test checks that this
# is all of them, so a new one cannot be forgotten silently).
MERGED_CONTEXT_FIELDS = frozenset(
    {
        "icmp",
        "icmp_dropped",
        "arp",
        "notes",
        "evicted_flows",
        "max_flows",
        "late_after_early_close",
        "late_after_early_close_frames",
        "max_closed_flows",
        "synack_time",
    }
)


def merge_contexts(
    contexts: Sequence[CaptureContext], ids: Sequence[dict[int, int]]
) -> CaptureContext:
    """The shards' capture contexts (shard order) as one; `ids[i]` maps shard i's flow ids."""
    out = CaptureContext()
    base = contexts[0]
    # ICMP: disjoint by shard. Put the tuples back in first-arrival order and re-apply the cap on
    # distinct tuples: the first MAX_ICMP_TUPLES of the whole capture are each among their
    # shard's first MAX_ICMP_TUPLES, so they are all here; errors of the tuples beyond the cap
    # count as dropped, as they would have in one process.
    tuples: list[tuple[int, Tuple4, list[IcmpError]]] = []
    dropped = 0
    for ctx in contexts:
        dropped += ctx.icmp_dropped
        tuples.extend((errs[0].frame, key, errs) for key, errs in ctx.icmp.items() if errs)
    tuples.sort(key=lambda item: item[0])
    for position, (_, key, errs) in enumerate(tuples):
        if position < MAX_ICMP_TUPLES:
            out.icmp[key] = errs
        else:
            dropped += len(errs)
    out.icmp_dropped = dropped
    # Every shard reads every packet: ARP (fed to shard 0 only) and the capture's notes (capture
    # reader and damage; decode counters are turned into notes later, by the capture rules).
    out.arp = base.arp
    out.notes = base.notes
    for ctx in contexts:
        out.evicted_flows += ctx.evicted_flows
        if ctx.max_flows is not None:
            out.max_flows = ctx.max_flows
        if ctx.max_closed_flows is not None:
            # the same count as one table's: each shard's table lingers at most that many
            out.add_late_after_early_close(
                ctx.late_after_early_close, ctx.late_after_early_close_frames, ctx.max_closed_flows
            )
    synack: list[tuple[int, float]] = []
    for ctx, mapping in zip(contexts, ids, strict=True):
        synack.extend((mapping[old], t) for old, t in ctx.synack_time.items() if old in mapping)
    out.synack_time = dict(sorted(synack))
    return out


# -- the client side ------------------------------------------------------------------------------


@dataclass(slots=True)
class Progress:
    """What the client knows so far (for a progress line)."""

    done: int
    total: int
    failed: int
    packets: int
    elapsed: float

    @property
    def packets_per_second(self) -> float:
        return self.packets / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(slots=True)
class FleetResult:
    """Results in input order; failures in input order; notes about skipped inputs."""

    captures: list[CaptureResult]
    failures: list[Failure]
    notes: list[str]

    @property
    def exit_code(self) -> int:
        """0; 2 when a capture could not be read; 3 when a worker failed (a bug or a crash)."""
        kinds = {f.kind for f in self.failures}
        if "internal" in kinds:
            return 3
        return 2 if "unreadable" in kinds else 0


ProgressCallback = Callable[[Progress], None]


def shard_count(size: int | None, split_size: int, workers: int) -> int:
    """How many flow shards a capture of `size` bytes gets: one per `split_size` bytes, at most
    one per worker thread (every shard reads the whole file, so more shards than workers only
    multiplies the reading), and at most `FLOW_BUCKETS` (a shard is a set of whole buckets).
    1 means: analyse it whole."""
    if size is None or size <= split_size or workers < 2:
        return 1
    return max(1, min(math.ceil(size / split_size), workers, FLOW_BUCKETS))


def cluster_threads(client: Client) -> int:
    """Worker threads in the cluster now (at least 1)."""
    workers = client.scheduler_info().get("workers", {})
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))


def run_fleet(
    client: Client,
    sources: Sequence[Source],
    options: AnalysisOptions,
    *,
    split_size: int = DEFAULT_SPLIT_SIZE,
    max_shards: int | None = None,
    progress: ProgressCallback | None = None,
) -> FleetResult:
    """Analyse `sources` on the client's cluster; see the module docstring.

    `max_shards` caps the shards per split capture (default: the cluster's worker threads).
    Ctrl-C (KeyboardInterrupt) cancels what is still queued or running, then propagates.
    """
    from distributed import as_completed

    workers = max_shards if max_shards is not None else cluster_threads(client)
    futures: dict[Future[Any], int] = {}  # the future of each capture's result -> its index
    live: dict[int, list[Future[Any]]] = {}  # every future of a capture not finished yet
    outcomes: dict[int, CaptureResult | Failure] = {}
    start = time.monotonic()
    packets = failed = 0
    try:
        for index, source in enumerate(sources):
            count = shard_count(source.size, split_size, workers)
            if count == 1:
                future = client.submit(analyze_task, source, options, pure=False)
                live[index] = [future]
            else:
                shards = [
                    client.submit(shard_task, source, options, (i, count), pure=False)
                    for i in range(count)
                ]
                future = client.submit(merge_task, options, *shards, pure=False)
                live[index] = [*shards, future]
            futures[future] = index

        for future in as_completed(list(futures)):  # type: ignore[no-untyped-call]
            index = futures[future]
            outcome = _outcome(future, sources[index])
            outcomes[index] = outcome
            # Let the cluster forget the shards' partial results and the result itself.
            for done in live.pop(index):
                done.release()  # type: ignore[no-untyped-call]
            if isinstance(outcome, Failure):
                failed += 1
            else:
                packets += outcome.packets
            if progress is not None:
                elapsed = time.monotonic() - start
                progress(Progress(len(outcomes), len(sources), failed, packets, elapsed))
    finally:
        # Interrupted (Ctrl-C) or failed: cancel whatever is still queued or running.
        leftover = [f for fs in live.values() for f in fs]
        if leftover:
            client.cancel(leftover)  # type: ignore[no-untyped-call]
    result = FleetResult([], [], [])
    for index in range(len(sources)):
        outcome = outcomes[index]
        if isinstance(outcome, Failure):
            if outcome.kind == "skipped":
                result.notes.append(f"skipped {outcome.message}")
            else:
                result.failures.append(outcome)
        else:
            result.captures.append(outcome)
    return result


def _outcome(future: Future[Any], source: Source) -> CaptureResult | Failure:
    try:
        value = future.result()
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a worker died, a bug in a task: that capture only
        message = " ".join(str(exc).split())
        return Failure(
            source.name,
            f"{source.name}: worker failed: {type(exc).__name__}: {message}",
            "internal",
        )
    if isinstance(value, CaptureResult | Failure):
        return value
    return Failure(source.name, f"{source.name}: unexpected task result {value!r}", "internal")


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Hold back SIGINT while the local cluster starts: a Ctrl-C pressed meanwhile is delivered
    when the mask is lifted, once the cluster exists and can be shut down in order (not from an
    atexit hook that trips over half-started workers). Worker processes do not inherit the mask
    (subprocesses start with an empty one): Ctrl-C reaches them too, and a worker still
    importing prints its own KeyboardInterrupt traceback."""
    block = getattr(signal, "pthread_sigmask", None)
    if block is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    block(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        block(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def dask_client(
    cluster: str | None = None,
    scheduler: str | None = None,
    *,
    processes: bool = True,
    connect_timeout: float = 20.0,
) -> Iterator[Client]:
    """A client on a new `LocalCluster` (`cluster="local[:N]"`: N worker processes, one thread
    each, no dashboard) or on the running scheduler at `scheduler`. Both are closed on the way
    out, whatever happens (Ctrl-C included). `processes=False` runs the workers as threads of
    this process (tests: fsspec's `memory://` is per process)."""
    if cluster and scheduler:
        raise DistributedError("use either --cluster or --scheduler, not both")
    if not cluster and not scheduler:
        raise DistributedError("a Dask run needs --cluster local[:N] or --scheduler ADDRESS")
    require_dask("--cluster" if cluster else "--scheduler")
    import logging

    import dask
    from distributed import Client, LocalCluster

    local: LocalCluster | None = None
    client: Client | None = None
    try:
        if cluster:
            workers = parse_cluster(cluster)
            # The workers' statistical profiler samples every thread's stack every 10 ms: a few
            # percent of the CPU of a pure-Python task. The nannies hand this config to their
            # worker processes.
            with _sigint_blocked(), dask.config.set({"distributed.worker.profile.enabled": False}):
                local = LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=processes,
                    dashboard_address=None,
                    # No dashboard; the scheduler's small HTTP server (health, metrics) on a
                    # free local port, so concurrent runs do not fight over (and warn about)
                    # port 8787.
                    scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                    silence_logs=logging.CRITICAL,  # worker trouble is reported per capture
                )
            client = Client(local)  # type: ignore[no-untyped-call]
        else:
            try:
                client = Client(scheduler, timeout=connect_timeout)  # type: ignore[no-untyped-call]
            except (OSError, TimeoutError) as exc:
                message = " ".join(str(exc).split())
                raise DistributedError(
                    f"cannot reach the Dask scheduler at {scheduler}: {message}"
                ) from None
        yield client
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()  # type: ignore[no-untyped-call]
        if local is not None:
            with contextlib.suppress(Exception):
                local.close()


def analyze_fleet(
    paths: Sequence[str],
    options: AnalysisOptions | None = None,
    *,
    cluster: str | None = None,
    scheduler: str | None = None,
    split_size: int = DEFAULT_SPLIT_SIZE,
    max_shards: int | None = None,
    progress: ProgressCallback | None = None,
    processes: bool = True,
) -> FleetResult:
    """Expand `paths`, start (or connect to) the cluster, analyse, shut down."""
    options = options or AnalysisOptions()
    require_dask("--cluster" if cluster else "--scheduler")
    sources, notes = expand_sources(paths)
    with dask_client(cluster, scheduler, processes=processes) as client:
        result = run_fleet(
            client,
            sources,
            options,
            split_size=split_size,
            max_shards=max_shards,
            progress=progress,
        )
    result.notes[:0] = notes
    return result
