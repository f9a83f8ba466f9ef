"""Synthetic captures of many flows for tests, made by the benchmark generator
(`benchmarks/gen.py`) with a short warm-up."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.cbuild import REPO
from tests.modules import load_file

gen = load_file(REPO / "benchmarks" / "gen.py", "bench_gen", register=True)


def short_connections(path: Path, packets: int, seed: int) -> Path:
    """`packets` packets of the `failures` pattern: short connections, most of them failing
    (thousands of flows in 10-30k packets)."""
    pattern = dataclasses.replace(gen.PATTERNS["failures"], warmup_s=0.2)
    gen.generate(str(path), packets, seed=seed, pattern=pattern)
    return path
