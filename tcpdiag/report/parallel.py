"""Each flow of a long report made into text by several processes, handed back in order.

Why: writing a flow's JSON (reading it from the flow store, building its timeline when it is a
problem flow, the dict, the text) costs ~40 us, and a report lists up to 40,000 flows: over a
second and a half, after the analysis, in one process. With `--jobs N` the report's flows are
cut into batches that N forked processes turn into text; the parent writes the texts in flow
order. Each text is made by the very function the one-process report calls, so the report is
the same, byte for byte (`tests/unit/test_report_parallel.py`). A child hands back a batch's
texts as one string, so the parent, which shares the CPUs with its children, unpickles and
writes one object per batch, not one per flow (a flow's text carries what separates it from
the one before: the text function is given the flow's position).

Fork, not spawn: the children inherit the flows (a store reading its file, or a list) and the
function as they are; nothing goes to them and text comes back. Where fork is not available,
or for a few flows, the text is made here.

Child `k` of N makes batches k, k + N, k + 2N... and sends each down its own pipe, so the
parent reads batch b from child b mod N: no shared task queue and no lock. A pipe that is full
makes its child wait, which bounds the memory to a batch or two per child. When the reader
stops early (`| head` closed the output, Ctrl-C), the parent kills the children: a
`multiprocessing.Pool` could deadlock there, its task thread blocked on a queue lock while
`terminate()` joined it.
"""

from __future__ import annotations

import math
import multiprocessing
import signal
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection

from tcpdiag.result import FlowResult

# Fewer flows than this are not worth starting processes for.
MIN_PARALLEL_FLOWS = 2_000
# Flows per batch: large enough that passing a batch costs little against making it, small
# enough that the first text comes soon and the parent holds few batches.
BATCH_FLOWS = 256

# A flow's text, given its position in the list and the flow.
FlowText = Callable[[int, FlowResult], str]

# What the forked children read (set just before they are started, cleared after).
_flows: Sequence[FlowResult] = ()
_text: FlowText | None = None


def flow_texts(flows: Sequence[FlowResult], text: FlowText, jobs: int) -> Iterator[str]:
    """`text(i, flows[i])` for every flow, in order, in chunks to be concatenated: one per
    flow when made here, one per batch of flows when made by `jobs` processes (when it
    pays)."""
    if jobs < 2 or len(flows) < MIN_PARALLEL_FLOWS or not _can_fork():
        for i, flow in enumerate(flows):
            yield text(i, flow)
        return
    global _flows, _text
    _flows, _text = flows, text
    batches = -(-len(flows) // BATCH_FLOWS)
    jobs = min(jobs, children_for(batches))
    context = multiprocessing.get_context("fork")
    children: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    try:
        for first in range(jobs):
            receiver, sender = context.Pipe(duplex=False)
            started = context.Process(target=_child, args=(sender, first, jobs, batches))
            started.daemon = True
            started.start()
            sender.close()
            children.append((started, receiver))
        for batch in range(batches):
            maker, receiver = children[batch % jobs]
            try:
                joined = receiver.recv()
            except EOFError:
                maker.join()
                raise RuntimeError(
                    f"a report process ended early (exit code {maker.exitcode})"
                ) from None
            if isinstance(joined, BaseException):
                raise joined
            yield joined
    finally:
        _flows, _text = (), None
        for child, receiver in children:
            receiver.close()
            if child.is_alive():
                child.kill()
            child.join()


def _child(conn: Connection, first: int, step: int, batches: int) -> None:
    # Ctrl-C at a terminal reaches the children too: the parent stops them, and they print
    # nothing.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for batch in range(first, batches, step):
            try:
                joined: str | Exception = _batch(batch * BATCH_FLOWS)
            except Exception as exc:  # raised again by the parent, in flow order
                joined = exc
            conn.send(joined)
            if isinstance(joined, Exception):
                break
    except OSError:
        pass  # the parent stopped reading
    finally:
        conn.close()


def _batch(start: int) -> str:
    """The texts of the batch of flows from `start`, joined."""
    assert _text is not None
    text = _text
    flows = _flows
    return "".join([text(i, flows[i]) for i in range(start, min(start + BATCH_FLOWS, len(flows)))])


def children_for(batches: int) -> int:
    """The most children worth starting for `batches` batches (at least 1).

    A child takes ~1.5-3 ms of the parent's time (its fork and pipe) and makes its share of
    batches of ~10 ms each (256 flows at ~40 us): the sum is least at ~2 * sqrt(batches)
    children (4 for 2,000 flows, 24 for 40,000), not one per CPU of a large machine."""
    return min(batches, max(2, 2 * math.isqrt(batches)))


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()
