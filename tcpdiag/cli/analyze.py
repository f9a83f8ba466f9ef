"""`tcpdiag analyze CAPTURE...`: read captures, print the diagnosis. Exit 0 whenever read."""

from __future__ import annotations

import contextlib
import ipaddress
import tempfile
from collections.abc import Callable, Iterator

import click

from tcpdiag import __version__
from tcpdiag.cli.common import (
    F,
    analysis_options,
    expand_captures,
    limit_options,
    say,
    use_color,
)
from tcpdiag.cli.distributed import SIZE
from tcpdiag.cli.output import check_output_path, emit
from tcpdiag.config import AnalysisOptions
from tcpdiag.engine import AnalysisInterrupted, analyze_capture
from tcpdiag.report import ReportOptions, render
from tcpdiag.result import AnalysisResult, CaptureResult
from tcpdiag.split import analyze_each, analyze_split, split_jobs, usable_cpus

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
FORMATS = ("text", "json", "jsonl", "sarif", "junit", "html")
# The formats that show timelines; for the others the analysis keeps none.
TIMELINE_FORMATS = ("text", "html")


class JobsParam(click.ParamType):  # type: ignore[type-arg]
    """`--jobs`: a number of processes, 1 to 256, or `auto` (`split.usable_cpus`)."""

    name = "N|auto"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            jobs = value
        elif str(value).strip().lower() == "auto":
            return min(MAX_JOBS, usable_cpus())
        else:
            try:
                jobs = int(str(value))
            except ValueError:
                self.fail(f"{value!r} is not a number of processes or 'auto'", param, ctx)
        if not 1 <= jobs <= MAX_JOBS:
            self.fail(f"{jobs} is not in the range 1<=x<={MAX_JOBS}", param, ctx)
        return jobs


MAX_JOBS = 256
JOBS = JobsParam()


def jobs_option(help_text: str) -> Callable[[F], F]:
    """`--jobs N|auto` (`-j`), auto by default, for `analyze` and `check`."""
    option: Callable[[F], F] = click.option(
        "--jobs", "-j", type=JOBS, default="auto", show_default=True, help=help_text
    )
    return option


@click.command()
@click.argument("captures", nargs=-1, required=True)
@click.option("--flow", "flow_id", type=int, help="Show only this flow (id), with its timeline.")
@click.option("--host", help="Show only flows with this address at either end.")
@click.option("--port", type=click.IntRange(0, 65535), help="Show only flows with this port.")
@click.option(
    "--all", "show_all", is_flag=True, help="Timelines for every flow, not only problem flows."
)
@click.option("--timeline/--no-timeline", default=True, help="Annotated timelines (text, html).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report here.")
@jobs_option(
    "Processes (1-256, or auto: the CPUs this process may use): captures in parallel; "
    "one capture of 16 MB or more split by flow across up to N of them (8 at 16 MB, 32 at "
    "256 MB, 64 from 1 GB). The report is the same for any N."
)
@click.option("--cluster", help="Run on a local Dask cluster: local[:N] (needs tcpdiag[dask]).")
@click.option("--scheduler", help="Run on the Dask scheduler at ADDRESS (needs tcpdiag[dask]).")
@click.option(
    "--split-size",
    type=SIZE,
    default="256M",
    show_default=True,
    help="With --cluster/--scheduler: split captures larger than this by flow across workers.",
)
@click.option("--no-color", is_flag=True, help="Plain text even on a terminal (also NO_COLOR).")
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 2 when a capture is damaged part-way (its readable part is still reported).",
)
@limit_options
def analyze(
    captures: tuple[str, ...],
    flow_id: int | None,
    host: str | None,
    port: int | None,
    show_all: bool,
    timeline: bool,
    fmt: str,
    output: str | None,
    jobs: int,
    cluster: str | None,
    scheduler: str | None,
    split_size: int,
    no_color: bool,
    strict: bool,
    **limits: object,
) -> None:
    """Analyse captures and explain every failed TCP connection and TLS handshake.

    CAPTURE is a pcap or pcapng file (gzip/zstd detected by content), a directory (every
    capture below it, in sorted order), or - for standard input.
    """
    if host is not None:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise click.BadParameter(
                f"{host!r} is not an IP address", param_hint="--host"
            ) from None
    options = analysis_options(
        limits,
        keep_all=show_all or flow_id is not None,
        timelines=timeline and fmt in TIMELINE_FORMATS,
    )
    paths = expand_captures(captures)
    if output is not None and output != "-":
        check_output_path(output, paths)  # refuse a bad -o before the analysis, not after
    # The report may read flows that parallel workers left on disk (`spool_for`): it is written
    # before they go.
    with contextlib.ExitStack() as stack:
        exit_code = 0
        captured: list[CaptureResult]
        if cluster or scheduler:
            from tcpdiag.cli.distributed import analyze_distributed

            fleet = analyze_distributed(
                paths, options, cluster=cluster, scheduler=scheduler, split_size=split_size
            )
            exit_code = fleet.exit_code  # 2: some captures could not be read (said on stderr)
            captured = fleet
        else:
            captured = []
            spool = spool_for(stack, paths, jobs)
            try:
                captured.extend(_analyze_all(paths, options, jobs, spool))
            except AnalysisInterrupted as stop:
                # Ctrl-C: report what was read so far (marked incomplete), then exit 130.
                captured.append(stop.partial)
                exit_code = EXIT_INTERRUPTED
        result = AnalysisResult(version=__version__, captures=captured)
        report_options = ReportOptions(
            show_all_timelines=show_all,
            flow_filter=flow_id,
            host_filter=host,
            port_filter=port,
            timelines=timeline,
            color=use_color(no_color, to_file=output is not None),
            jobs=jobs,
        )
        emit(render(fmt, result, report_options), output, paths)
    damaged = [c.path for c in captured if c.damaged]
    if strict and damaged and not exit_code:
        say("error", f"{damaged[0]}: the capture is damaged (see capture-damaged); --strict")
        exit_code = EXIT_USAGE
    if exit_code == EXIT_INTERRUPTED:
        say("interrupted", "the report covers the packets read so far")
    if exit_code:
        raise SystemExit(exit_code)


def spool_for(stack: contextlib.ExitStack, paths: list[str], jobs: int) -> str | None:
    """Where parallel workers leave the flows of their captures (several captures with
    `--jobs`) until the report is written; None when there are none (or no writable $TMPDIR:
    then one capture at a time)."""
    if jobs <= 1 or len(paths) <= 1 or "-" in paths:
        return None
    try:
        return stack.enter_context(tempfile.TemporaryDirectory(prefix="tcpdiag-"))
    except OSError:
        return None


def _analyze_all(
    paths: list[str], options: AnalysisOptions, jobs: int, spool: str | None
) -> Iterator[CaptureResult]:
    workers = split_jobs(paths[0], jobs) if len(paths) == 1 else 1
    if workers > 1:
        # One large capture: its flows shared by up to `jobs` processes (the same report).
        yield analyze_split(paths[0], options, workers)
        return
    if spool is None:
        for path in paths:
            yield analyze_capture(path, options)
        return
    # Separate processes (threads would share one GIL), results in input order, so the report
    # is identical to a sequential run; the flows wait in `spool` until the report reads them.
    yield from analyze_each(paths, options, jobs, spool)
