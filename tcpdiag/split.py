"""One capture analysed by several local processes, each following a shard of its flows; and
several captures, one per process, with their flows kept on disk.

Theory of operation
-------------------
`analyze --jobs N` with fewer captures than N splits each large local capture by flow, never by
bytes (the Dask path, `distributed.py`, does the same across machines). N worker processes
each read the whole file with `Engine(shard=(i, N))`: the C block reader decodes every record
but makes objects only for the TCP segments of the flows whose canonical 4-tuple hashes to `i`
(`engine.shard_of`), so no flow is cut and each lives and dies exactly as in one process. A
worker writes the flows it keeps to its own store file (`FlowStore(path=...)`) and sends back
only what the merge needs: its `PartialCapture` without flows, the store's per-record facts
(`StoredFlows`), and the first frame of each of its flows by id. The parent then:

* numbers the flows and applies the report quota (`Limits.max_report_flows`) to the whole
  capture as one process would (`shards.py`: each worker kept at most the quota of its own
  flows, which includes every flow the whole capture keeps);
* merges the capture contexts (`distributed.merge_contexts`), and reads the flows from the
  workers' files through a `MergedStore`, which gives each flow (and its findings) its new id;

then `engine.conclude` runs the capture-level rules once, as for any capture. Memory stays
bounded by the flows open at once in each worker, plus, in the parent, the records kept by
the quota and eight bytes per flow of the first-frame lists.

The limits of the flow table bound memory, and the processes together stay near what one
process would use. The limits on closed flows and tombs (`max_closed_flows`) are kept per bucket
of flows (`flow/buckets.py`) and a shard is a set of whole buckets, so a worker finalises early
exactly the flows one process would. The limit on all flows (`max_flows`, 200,000 by default)
is shared, each table getting 1/N rounded down (`worker_options`): while no worker evicts a
flow, neither would one process. Which flow a full table evicts depends on every flow it
follows, so at a worker's first eviction the workers stop and one process analyses the
capture. The report is therefore one process's, byte for byte, whatever N is
(`tests/unit/test_split.py`).

Ctrl-C: every worker stops where it is and sends what it has read; the report covers that,
marked incomplete, as in one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import os
import signal
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from tcpdiag.capture import open_capture
from tcpdiag.config import AnalysisOptions
from tcpdiag.distributed import merge_contexts
from tcpdiag.engine import (
    AnalysisInterrupted,
    Engine,
    FlowTableOverflow,
    PartialCapture,
    Shard,
    analyze_capture,
    conclude,
    gc_tuned,
)
from tcpdiag.errors import CaptureError
from tcpdiag.model import FLOW_BUCKETS
from tcpdiag.result import CaptureResult
from tcpdiag.shards import (
    FinishRecord,
    Numbering,
    apply_quota,
    check_same_reading,
    merged_partial,
)
from tcpdiag.store import FlowStore, MergedStore, StoredFlows, read_stored
from tcpdiag.storeindex import SEVERITY_SLOTS

# Below this size a capture is analysed in one process: starting workers and merging costs
# more than the work they would share. On 2 cores, measured with the benchmark generator's
# captures: even at ~12 MB (mixed traffic, 15k packets: 0.18 s either way), 5-15% faster at
# ~16 MB (mixed 0.20 -> 0.19 s, web 0.28 -> 0.24 s, failures 0.28 -> 0.24 s at 12 MB).
CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"
MIN_SPLIT_BYTES = 16 << 20
WORKER_BYTES = 256 << 10  # see `workers_for`


@dataclass
class ShardResult:
    """What a worker sends back: everything but the flows, which stay in its store file."""

    part: PartialCapture
    stored: StoredFlows
    interrupted: bool


def usable_cpus() -> int:
    """The CPUs this process may use (`--jobs auto`): those it may run on, and no more than a
    cgroup v2 CPU quota allows (a container started with `--cpus 2` on a host of 64 still sees
    64 CPUs, and 64 workers there would each read the whole capture for a share of 2)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    try:
        with open(CGROUP_CPU_MAX, encoding="ascii") as limits:
            quota, period = limits.read().split()[:2]
        if quota != "max":
            count = min(count, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota
    return max(1, count)


def split_jobs(path: str, jobs: int) -> int:
    """The processes that share one capture file, given `jobs`: 1 (no split) for standard
    input, a file under MIN_SPLIT_BYTES or `jobs` below 2; otherwise `jobs`, but no more
    than `workers_for(size)`."""
    if jobs < 2 or path == "-":
        return 1
    try:
        size = os.path.getsize(path)
    except OSError:
        return 1  # let the ordinary path report it
    return min(jobs, workers_for(size)) if size >= MIN_SPLIT_BYTES else 1


def workers_for(size: int) -> int:
    """The most workers worth starting for a capture of `size` bytes (at least 2).

    A worker takes ~1.5-3 ms of the parent's time that no other CPU can take over (its fork,
    its pipe, its shard in the merge), and saves a share of the flows' work: the workers'
    time is about W * size / N for N of them, W ~8.5 ns a byte for the benchmark's `mixed`
    traffic and ~17 for `failures` (2 cores, compiled). The sum f * N + W * size / N is least
    at N = sqrt(size / (f / W)), f / W being ~150-350 KB: 8 workers at 16 MB, 32 at 256 MB,
    64 from 1 GB. Without this, `--jobs auto` on a machine of 64 CPUs started 64 workers for
    a capture of 16 MB, ~0.1-0.2 s of forks for ~0.15 s of work."""
    return max(2, math.isqrt(size // WORKER_BYTES))


def analyze_split(path: str, options: AnalysisOptions, jobs: int) -> CaptureResult:
    """`engine.analyze_capture(path, options)` by `jobs` processes (see the module docstring).
    Raises CaptureError as it does; AnalysisInterrupted, with the merged result so far, on
    Ctrl-C."""
    try:
        directory = tempfile.TemporaryDirectory(prefix="tcpdiag-split-")
    except OSError:  # no writable temporary directory: one process keeps its flows in memory
        return analyze_capture(path, options)
    # A shard is a set of whole buckets (`engine.shard_of`), and holds at least one flow.
    jobs = min(jobs, FLOW_BUCKETS, options.limits.max_flows)
    if jobs < 2:
        directory.cleanup()
        return analyze_capture(path, options)
    try:
        with directory:
            files = [os.path.join(directory.name, f"shard-{i}.flows") for i in range(jobs)]
            results = _run_workers(path, worker_options(options, jobs), jobs, files)
            # No automatic collection while the parent alone merges and concludes, one CPU
            # idle: both make tens of thousands of small objects, which the collector walked
            # again and again (the 2M-packet capture's ~160 ms took ~28 ms more). A cycle they
            # leave is collected once the collector is back.
            with gc_tuned():
                part = merge_stored(results, options)  # opens the files: they may go now
    except FlowTableOverflow:
        # The flows open at once overflow `max_flows`: which one a table evicts depends on
        # all the flows it follows, so only one process reproduces one process's report.
        return analyze_capture(path, options)
    with gc_tuned():
        result = conclude(part, options)
    if any(r.interrupted for r in results):
        result.incomplete = True
        raise AnalysisInterrupted(result)
    return result


def analyze_each(
    paths: Sequence[str], options: AnalysisOptions, jobs: int, spool: str
) -> Iterator[CaptureResult]:
    """Several captures, `jobs` at a time in worker processes, in input order: each the result
    of `engine.analyze_capture`. A worker keeps its capture's flows in a file under `spool`
    and sends back only its counters and per-flow facts (a whole capture is shard 0 of 1), so
    this process holds no flow until the report reads it from there: `spool` must outlive the
    results. Where worker processes cannot be made (no working semaphores, as in some
    sandboxes), one capture after the other in this process."""
    try:
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(paths)))
    except (ImportError, NotImplementedError, OSError):
        yield from (analyze_capture(path, options) for path in paths)
        return
    with pool:
        futures = [
            pool.submit(
                analyze_shard, path, options, (0, 1), os.path.join(spool, f"capture-{i}.flows")
            )
            for i, path in enumerate(paths)
        ]
        try:
            for future in futures:
                shard = future.result()
                if shard.interrupted:  # Ctrl-C reached the workers (and this process)
                    raise KeyboardInterrupt
                yield conclude(merge_stored([shard], options, open_now=False), options)
        except BaseException:  # the caller stopped reading, Ctrl-C, or an error
            _stop_pool(pool, futures)
            raise


def _stop_pool(pool: ProcessPoolExecutor, futures: list[Future[ShardResult]]) -> None:
    """Cancel what has not started and kill what is running: leaving the pool would wait for
    every capture's analysis to end, minutes of work whose results nobody will read."""
    for future in futures:
        future.cancel()
    # No public way to stop work that has started: the pool's processes, by its attribute.
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(OSError):
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


# -- the workers ----------------------------------------------------------------------------------


def worker_options(options: AnalysisOptions, jobs: int) -> AnalysisOptions:
    """A worker's options: the limit on the flows of its table shared by the workers, rounded
    down, so that together they stay within the memory one process would use, and so that when
    no worker had to evict a flow, neither would one process (the workers' flows open at once
    never added up to `max_flows`). The limits on closed flows and tombs are kept per bucket of
    flows, and a worker holds whole buckets: it keeps them as given, and holds its buckets'
    share. (Each worker keeps the whole report quota: the merge applies it to the capture.)"""
    limits = options.limits
    return dataclasses.replace(
        options, limits=dataclasses.replace(limits, max_flows=max(1, limits.max_flows // jobs))
    )


def analyze_shard(
    path: str,
    options: AnalysisOptions,
    shard: Shard,
    store_path: str,
    stop_on_eviction: bool = False,
) -> ShardResult:
    """One worker's part: the flows of `shard`, kept in a store on `store_path`. With
    `stop_on_eviction`, raises FlowTableOverflow at the table's first eviction."""
    with gc_tuned(), open_capture(path, max_input_bytes=options.limits.max_input_bytes) as reader:
        store = FlowStore(path=store_path)
        engine = Engine(
            options, path=path, shard=shard, store=store, stop_on_eviction=stop_on_eviction
        )
        interrupted = False
        try:
            engine.feed_capture(reader)
        except KeyboardInterrupt:
            # Ctrl-C reaches a worker twice at a terminal (from the terminal, and passed on by
            # the parent): the second must not cut short the result of the first.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            interrupted = True
        part = engine.close(reader)
    part.flows = []
    return ShardResult(part, store.detach(), interrupted)


def _worker(
    conn: Connection, path: str, options: AnalysisOptions, shard: Shard, store: str
) -> None:
    try:
        conn.send(analyze_shard(path, options, shard, store, stop_on_eviction=True))
    except Exception as exc:  # raised again by the parent: an unreadable capture, a full disk
        try:
            conn.send(exc)
        except Exception:  # an exception that does not pickle
            conn.send(RuntimeError(f"shard {shard[0]}: {exc!r}"))
    finally:
        conn.close()


def _run_workers(
    path: str, options: AnalysisOptions, jobs: int, files: list[str]
) -> list[ShardResult]:
    context = multiprocessing.get_context()
    workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    try:
        for index in range(jobs):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker,
                args=(sender, path, options, (index, jobs), files[index]),
                name=f"tcpdiag-shard-{index}",
                daemon=True,
            )
            process.start()
            sender.close()
            workers.append((process, receiver))
        return _receive_all(workers)
    finally:
        for worker, conn in workers:
            conn.close()
            if worker.is_alive():
                worker.kill()
            worker.join()


Workers = Sequence[tuple[multiprocessing.process.BaseProcess, Connection]]


def _receive_all(workers: Workers) -> list[ShardResult]:
    """The workers' results in shard order, taken as they come: a worker's error (such as
    FlowTableOverflow) is raised as soon as it arrives, not after the workers before it end."""
    results: dict[int, ShardResult] = {}
    pending = {conn: index for index, (_, conn) in enumerate(workers)}
    while pending:
        try:
            ready = wait(list(pending))
        except KeyboardInterrupt:
            _pass_on_interrupt(workers)
            continue
        for conn, index in list(pending.items()):
            if conn in ready:
                del pending[conn]
                results[index] = _receive(workers[index][0], conn, workers)
    return [results[index] for index in range(len(workers))]


def _pass_on_interrupt(workers: Workers) -> None:
    """Ctrl-C at a terminal reaches the workers too; a signal sent to this process only is
    passed on. Each worker then sends what it has read."""
    for other, _ in workers:
        if other.is_alive() and other.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(other.pid, signal.SIGINT)


def _receive(
    process: multiprocessing.process.BaseProcess, conn: Connection, workers: Workers
) -> ShardResult:
    while True:
        try:
            message = conn.recv()
            break
        except KeyboardInterrupt:
            _pass_on_interrupt(workers)
        except EOFError:
            process.join()
            raise CaptureError(
                f"a worker process ended without a result (exit code {process.exitcode})"
            ) from None
    if isinstance(message, Exception):
        raise message
    assert isinstance(message, ShardResult)
    return message


# -- the merge ------------------------------------------------------------------------------------


def merge_stored(
    results: Sequence[ShardResult], options: AnalysisOptions, open_now: bool = True
) -> PartialCapture:
    """The shards of one capture (in shard order) as one `PartialCapture` whose flows are a
    `MergedStore` over the shards' files (opened now, or when first read)."""
    parts = [r.part for r in results]
    base = _base(results)
    number = Numbering([part.first_frames or () for part in parts])
    stores = [r.stored for r in results]
    kept, released = apply_quota(
        _finished(stores), [store.problems for store in stores], options.limits.max_report_flows
    )
    released_names, released_severities = _released_findings(stores, released)
    records = [
        (number.of(stores[index].first_frames[position]), index, position)
        for index, position in kept
    ]
    ids: list[dict[int, int]] = [{} for _ in stores]
    for flow_id, index, position in records:
        ids[index][stores[index].ids[position]] = flow_id
    context = merge_contexts([part.context for part in parts], ids)
    # The limits the user gave, which the workers shared (`worker_options`).
    if context.max_flows is not None:
        context.max_flows = options.limits.max_flows
    if context.max_closed_flows is not None:
        context.max_closed_flows = options.limits.max_closed_flows
    flows = MergedStore(stores, records, released_names, open_now, released_severities)
    return merged_partial(parts, base, flows, context, len(released), released_names)


def _base(results: Sequence[ShardResult]) -> PartialCapture:
    """The shard whose reading stands for the capture's: any, when all read the same packets;
    after Ctrl-C, the one that read furthest."""
    parts = [r.part for r in results]
    if any(r.interrupted for r in results):
        return max(parts, key=lambda p: p.packets)
    check_same_reading(parts)
    return parts[0]


def _finished(stores: Sequence[StoredFlows]) -> Iterator[FinishRecord]:
    for index, store in enumerate(stores):
        ranks = store.finish_rank
        for position, frame in enumerate(store.finished_at):
            yield frame, ranks[position], index, position


def _released_findings(
    stores: Sequence[StoredFlows], records: list[tuple[int, int]]
) -> tuple[Counter[str], list[int]]:
    """The findings, per name and per severity, of these records (shard, position): read from
    the files."""
    positions: list[list[int]] = [[] for _ in stores]
    for index, position in records:
        if stores[index].severity[position]:  # (0: no finding)
            positions[index].append(position)
    names: Counter[str] = Counter()
    severities = [0] * SEVERITY_SLOTS
    for store, chosen in zip(stores, positions, strict=True):
        for flow in read_stored(store, sorted(chosen)):
            names.update(f.name for f in flow.findings)
            for finding in flow.findings:
                severities[finding.severity] += 1
    return names, severities
