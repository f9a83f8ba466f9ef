"""Glue between `tcpdiag analyze|check --cluster/--scheduler` and `tcpdiag.distributed`.

`analyze_distributed` returns the results in input order, like a local run, as a list that also
carries the exit code the command should end with (`FleetCaptures.exit_code`): a capture that
cannot be read is one `tcpdiag: error:` line on stderr, the others are still reported, and the
command then exits 2 (3 when a worker failed). When no capture at all could be analysed it
raises, as a local run does (exit 2, or 3 for worker failures).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

import click

from tcpdiag.cli.common import say
from tcpdiag.config import AnalysisOptions
from tcpdiag.distributed import (
    DEFAULT_SPLIT_SIZE,
    DistributedError,
    Progress,
    analyze_fleet,
    parse_size,
    require_dask,
)
from tcpdiag.errors import CaptureError
from tcpdiag.result import CaptureResult

__all__ = [
    "DEFAULT_SPLIT_SIZE",
    "SIZE",
    "FleetCaptures",
    "ProgressLine",
    "analyze_distributed",
]


class SizeParam(click.ParamType):  # type: ignore[type-arg]
    """A byte size for click options: 268435456, 256M, 256MiB, 1G (binary units)."""

    name = "size"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


SIZE = SizeParam()


class FleetCaptures(list[CaptureResult]):
    """The results, in input order, plus the exit code the command should end with."""

    exit_code: int = 0


class ProgressLine:
    """One self-overwriting line on a terminal: captures done, packets, packets/s."""

    def __init__(self, stream: TextIO, every: float = 0.2) -> None:
        self._stream = stream
        self._every = every
        self._last = 0.0
        self._width = 0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if p.done < p.total and now - self._last < self._every:
            return
        self._last = now
        failed = f", {p.failed:,} failed" if p.failed else ""
        line = (
            f"tcpdiag: {p.done:,}/{p.total:,} captures, {p.packets:,} packets, "
            f"{p.packets_per_second:,.0f} packets/s{failed}"
        )
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()
        self._width = len(line)

    def end(self) -> None:
        if self._width:
            self._stream.write("\n")
            self._stream.flush()
            self._width = 0


def analyze_distributed(
    paths: Sequence[str],
    options: AnalysisOptions,
    cluster: str | None = None,
    scheduler: str | None = None,
    split_size: int = DEFAULT_SPLIT_SIZE,
) -> FleetCaptures:
    """Analyse `paths` on Dask (see the module docstring); notes and errors go to stderr."""
    require_dask("--cluster" if cluster else "--scheduler")
    progress = ProgressLine(sys.stderr) if sys.stderr.isatty() else None
    try:
        fleet = analyze_fleet(
            paths,
            options,
            cluster=cluster,
            scheduler=scheduler,
            split_size=split_size,
            progress=progress,
        )
    finally:
        if progress is not None:
            progress.end()
    for note in fleet.notes:
        say("note", note)
    for failure in fleet.failures:
        say("error", failure.message)
    if not fleet.captures:
        if not fleet.failures:
            raise CaptureError("no capture files found in " + ", ".join(paths))
        summary = f"no capture could be analysed ({len(fleet.failures):,} failed)"
        if fleet.exit_code == 3:
            say("error", summary)
            raise SystemExit(3)
        raise DistributedError(summary)
    out = FleetCaptures(fleet.captures)
    out.exit_code = fleet.exit_code
    return out
