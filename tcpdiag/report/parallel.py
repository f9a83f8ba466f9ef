"""Each flow of a long report made into text by several processes, handed back in order.

Why: writing a flow's JSON (reading it from the flow store, building its timeline when it is a
problem flow, the dict, the text) costs ~40 us, and a report lists up to 40,000 flows: over a
second and a half, after the analysis, in one process. With `--jobs N` the report's flows are
cut into batches that N forked processes turn into text, in any order; the parent writes the
texts in flow order. Each text is made by the very function the one-process report calls, so
the report is the same, byte for byte (`tests/unit/test_report_parallel.py`).

Fork, not spawn: the children inherit the flows (a store reading its file, or a list) and the
function as they are; nothing but batch numbers goes to them and text comes back. Where fork is
not available, or for a few flows, the text is made here.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator, Sequence

from tcpdiag.result import FlowResult

# Fewer flows than this are not worth starting processes for.
MIN_PARALLEL_FLOWS = 2_000
# Flows per batch: large enough that passing a batch costs little against making it, small
# enough that the first text comes soon and the parent holds few batches.
BATCH_FLOWS = 256

FlowText = Callable[[FlowResult], str]

# What the forked children read (set just before they are started, cleared after).
_flows: Sequence[FlowResult] = ()
_text: FlowText | None = None


def flow_texts(flows: Sequence[FlowResult], text: FlowText, jobs: int) -> Iterator[str]:
    """`text(flow)` for every flow, in order; made by `jobs` processes when it pays."""
    if jobs < 2 or len(flows) < MIN_PARALLEL_FLOWS or not _can_fork():
        for flow in flows:
            yield text(flow)
        return
    global _flows, _text
    _flows, _text = flows, text
    try:
        context = multiprocessing.get_context("fork")
        batches = range(0, len(flows), BATCH_FLOWS)
        with context.Pool(jobs, initializer=_ignore_ctrl_c) as pool:
            for texts in pool.imap(_batch, batches):
                yield from texts
    finally:
        _flows, _text = (), None


def _batch(start: int) -> list[str]:
    assert _text is not None
    text = _text
    flows = _flows
    return [text(flows[i]) for i in range(start, min(start + BATCH_FLOWS, len(flows)))]


def _ignore_ctrl_c() -> None:
    # Ctrl-C at a terminal reaches the children too: the parent stops them (leaving the pool
    # terminates them), and they print nothing.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()
