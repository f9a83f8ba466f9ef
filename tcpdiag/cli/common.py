"""Options and output plumbing shared by `analyze`, `check` and `live`."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

from tcpdiag.config import AnalysisOptions, Limits
from tcpdiag.errors import CaptureError

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[Any], Any]


def _limit_decorators(*, input_limit: bool, linger: float | None) -> list[Decorator]:
    defaults = Limits()
    decorators: list[Decorator] = [
        click.option(
            "--max-flows",
            type=click.IntRange(1),
            default=defaults.max_flows,
            show_default=True,
            help="Flows tracked at once; the oldest embryonic, then idle, are evicted beyond it.",
        ),
        click.option(
            "--max-flow-buffer",
            type=click.IntRange(1024),
            default=defaults.max_flow_buffer,
            show_default=True,
            help="Bytes buffered per flow direction for reassembly.",
        ),
        click.option(
            "--idle-timeout",
            type=click.FloatRange(0.001),
            default=defaults.idle_timeout,
            show_default=True,
            help="Seconds of silence (capture time) after which a flow is finalised.",
        ),
    ]
    if input_limit:
        decorators.append(
            click.option(
                "--max-input-bytes",
                type=click.IntRange(1),
                default=defaults.max_input_bytes,
                show_default=True,
                help="Decompressed bytes read from one capture (stops decompression bombs).",
            )
        )
    if linger is not None:
        decorators.append(
            click.option(
                "--linger",
                "close_linger",
                type=click.FloatRange(0.0),
                default=linger,
                show_default=True,
                help="Seconds a closed flow waits for retransmitted FINs/RSTs before it is "
                "reported.",
            )
        )
    return decorators


def _apply(func: F, decorators: list[Decorator]) -> F:
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def limit_options(func: F) -> F:
    """Resource limits as flags; defaults are `config.Limits`' documented ones."""
    return _apply(func, _limit_decorators(input_limit=True, linger=None))


def live_limit_options(func: F) -> F:
    """The limits that mean something for live capture, and a short close linger so flows are
    reported promptly (a file keeps TIME_WAIT's 60 s: nobody waits for it)."""
    return _apply(func, _limit_decorators(input_limit=False, linger=3.0))


def analysis_options(limits: Mapping[str, object], keep_all: bool = False) -> AnalysisOptions:
    options = AnalysisOptions(keep_all_timelines=keep_all)
    lim = options.limits
    lim.max_flows = int(str(limits.get("max_flows", lim.max_flows)))
    lim.max_flow_buffer = int(str(limits.get("max_flow_buffer", lim.max_flow_buffer)))
    lim.max_input_bytes = int(str(limits.get("max_input_bytes", lim.max_input_bytes)))
    lim.idle_timeout = float(str(limits.get("idle_timeout", lim.idle_timeout)))
    lim.close_linger = float(str(limits.get("close_linger", lim.close_linger)))
    return options


def expand_captures(captures: Sequence[str]) -> list[str]:
    """Files, directories (every capture below, sorted) and `-`; skipped files noted on stderr."""
    from tcpdiag.capture import expand_inputs

    paths: list[str] = []
    skipped: list[str] = []
    for spec in expand_inputs(list(captures)):
        if spec.note:
            skipped.append(spec.note)
        else:
            paths.append(spec.path)
    # A directory of captures usually holds notes and scripts too: say so once, not per file.
    if len(skipped) <= 3:
        for note in skipped:
            click.echo(f"tcpdiag: note: {note}", err=True)
    else:
        click.echo(
            f"tcpdiag: note: skipped {len(skipped)} files that are not captures "
            f"(first: {skipped[0].removeprefix('skipped ')})",
            err=True,
        )
    if not paths:
        raise CaptureError("no capture files found in " + ", ".join(captures))
    return paths


def use_color(no_color: bool, to_file: bool) -> bool:
    """Colour only on a terminal, never with --no-color or NO_COLOR (any value)."""
    if no_color or to_file or "NO_COLOR" in os.environ:
        return False
    return sys.stdout.isatty()
