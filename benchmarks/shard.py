"""Run one worker's share of `tcpdiag analyze` (one shard of the flows) in this process.

    valgrind --tool=callgrind python benchmarks/shard.py capture.pcap --index 0 --count 2
    (add --no-timelines for the workers of `analyze --format json`)

What the default command's workers each do (`split.analyze_shard`: read the whole capture,
follow the flows of one shard, store every finished flow in a file), without the parent's merge
and report, so that a profiler or an instruction counter sees one worker alone. The instruction
counts in `benchmarks/README.md` ("shard 0 of 2") come from this, run with a compiled install.
Prints the shard's wall time (meaningless under valgrind) and the flows it stored.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from tcpdiag.config import AnalysisOptions
from tcpdiag.split import analyze_shard, worker_options


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", help="capture to analyse")
    ap.add_argument("--index", type=int, default=0, help="the shard to follow (default 0)")
    ap.add_argument("--count", type=int, default=2, help="shards in all, as --jobs (default 2)")
    ap.add_argument(
        "--no-timelines",
        action="store_true",
        help="keep no timelines, as `analyze --format json` (and jsonl, sarif, junit) does",
    )
    args = ap.parse_args()
    options = worker_options(AnalysisOptions(timelines=not args.no_timelines), args.count)
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        result = analyze_shard(
            args.capture, options, (args.index, args.count), os.path.join(tmp, "shard"), True
        )
        took = time.perf_counter() - began
    print(f"shard {args.index} of {args.count}: {took:.3f} s, {len(result.stored.ids)} flows")


if __name__ == "__main__":
    main()
