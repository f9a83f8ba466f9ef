"""Options and output plumbing shared by `analyze`, `check` and `live`."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

from tcpdiag.config import AnalysisOptions, Limits
from tcpdiag.errors import CaptureError
from tcpdiag.sanitize import clean

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[Any], Any]


def _limit_decorators(
    *, input_limit: bool, linger: float | None, from_config: bool = False
) -> list[Decorator]:
    """With `from_config`, a flag left unset keeps the config file's value (default None)."""
    limits = Limits()

    def option(*decls: str, help: str, value: object, type: Any) -> Decorator:
        if from_config:
            text = f"{help} [default: the config's, else {value}]"
            return click.option(*decls, type=type, default=None, help=text)
        return click.option(*decls, type=type, default=value, show_default=True, help=help)

    decorators: list[Decorator] = [
        option(
            "--max-flows",
            type=click.IntRange(1),
            value=limits.max_flows,
            help="Flows tracked at once; the oldest embryonic, then idle, are evicted beyond it.",
        ),
        option(
            "--max-flow-buffer",
            type=click.IntRange(1024),
            value=limits.max_flow_buffer,
            help="Bytes buffered per flow direction for reassembly.",
        ),
        option(
            "--max-report-flows",
            type=click.IntRange(2),
            value=limits.max_report_flows,
            help="Flows the report lists (half healthy, half with problems); the rest are "
            "analysed and counted, not kept.",
        ),
        option(
            "--max-closed-flows",
            type=click.IntRange(1),
            value=limits.max_closed_flows,
            help="Closed flows kept waiting for late packets at once, 1/64 of them (rounded "
            "up) in each of 64 buckets of flows by 4-tuple; beyond a bucket's share, its flow "
            "closed longest ago is finalised.",
        ),
        option(
            "--idle-timeout",
            type=click.FloatRange(0.001),
            value=limits.idle_timeout,
            help="Seconds of silence (capture time) after which a flow is finalised.",
        ),
    ]
    if input_limit:
        decorators.append(
            option(
                "--max-input-bytes",
                type=click.IntRange(1),
                value=limits.max_input_bytes,
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


def check_limit_options(func: F) -> F:
    """The limits for `check`: a flag given on the command line overrides the config file."""
    return _apply(func, _limit_decorators(input_limit=True, linger=None, from_config=True))


def apply_limit_flags(options: AnalysisOptions, flags: Mapping[str, object]) -> None:
    """Set the limits given on the command line (None: not given) on `options`."""
    lim = options.limits
    for name in (
        "max_flows",
        "max_flow_buffer",
        "max_input_bytes",
        "max_report_flows",
        "max_closed_flows",
    ):
        value = flags.get(name)
        if value is not None:
            setattr(lim, name, int(str(value)))
    for name in ("idle_timeout", "close_linger"):
        value = flags.get(name)
        if value is not None:
            setattr(lim, name, float(str(value)))


def live_limit_options(func: F) -> F:
    """The limits that mean something for live capture, and a short close linger so flows are
    reported promptly (a file keeps TIME_WAIT's 60 s: nobody waits for it)."""
    return _apply(func, _limit_decorators(input_limit=False, linger=3.0))


def analysis_options(
    limits: Mapping[str, object], keep_all: bool = False, timelines: bool = True
) -> AnalysisOptions:
    """The analysis options of the command line: `keep_all` timelines (--all, --flow), or
    none at all (`timelines` False: a report format or --no-timeline that shows none)."""
    options = AnalysisOptions(keep_all_timelines=keep_all, timelines=timelines)
    apply_limit_flags(options, limits)
    return options


def say(kind: str, message: object) -> None:
    """One line on stderr, `tcpdiag: KIND: message`: whitespace folded, and control and bidi
    characters escaped, since messages quote file names and packet data (a file named
    `x\x1b[2J.pcap` must not clear the terminal)."""
    text = clean(" ".join(str(message).split()), max_len=2000)
    click.echo(f"tcpdiag: {kind}: {text}", err=True)


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
            say("note", note)
    else:
        say(
            "note",
            f"skipped {len(skipped)} files that are not captures "
            f"(first: {skipped[0].removeprefix('skipped ')})",
        )
    if not paths:
        raise CaptureError("no capture files found in " + ", ".join(captures))
    return paths


def use_color(no_color: bool, to_file: bool) -> bool:
    """Colour only on a terminal, never with --no-color or NO_COLOR (any value)."""
    if no_color or to_file or "NO_COLOR" in os.environ:
        return False
    return sys.stdout.isatty()
