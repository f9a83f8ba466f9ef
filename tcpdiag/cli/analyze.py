"""`tcpdiag analyze CAPTURE...`: read captures, print the diagnosis. Exit 0 whenever read."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

import click

from tcpdiag import __version__
from tcpdiag.capture import expand_inputs
from tcpdiag.cli.common import analysis_options, limit_options, output_options, write_report
from tcpdiag.config import AnalysisOptions
from tcpdiag.engine import analyze_capture
from tcpdiag.errors import CaptureError
from tcpdiag.result import AnalysisResult, CaptureResult, FlowResult

FORMATS = ("text", "json", "jsonl", "sarif", "junit", "html")


@click.command()
@click.argument("captures", nargs=-1, required=True)
@click.option("--flow", "flow_id", type=int, help="Show only this flow (id), with its timeline.")
@click.option("--host", help="Show only flows with this address at either end.")
@click.option("--port", type=int, help="Show only flows with this port at either end.")
@click.option("--all", "show_all", is_flag=True, help="Timelines for every flow, not only problems.")
@click.option("--timeline/--no-timeline", default=True, help="Annotated timelines (text, html).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report here.")
@click.option("--jobs", "-j", type=click.IntRange(1, 256), default=1, help="Captures in parallel.")
@click.option("--cluster", help="Run on a local Dask cluster: local[:N] (needs tcpdiag[dask]).")
@click.option("--scheduler", help="Run on a Dask scheduler at ADDRESS (needs tcpdiag[dask]).")
@click.option("--no-color", is_flag=True, help="Plain text even on a terminal (also NO_COLOR).")
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
    no_color: bool,
    **limits: object,
) -> None:
    """Analyse captures and explain every failed TCP connection and TLS handshake.

    CAPTURE is a pcap or pcapng file (gzip/zstd detected by content), a directory (every
    capture below it, sorted), or - for standard input.
    """
    if host is not None:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise click.BadParameter(f"{host!r} is not an IP address", param_hint="--host") from None
    options = analysis_options(limits, keep_all=show_all or flow_id is not None)
    inputs = _inputs(captures)
    if cluster or scheduler:
        from tcpdiag.cli.distributed import analyze_distributed

        results = analyze_distributed(inputs, options, cluster=cluster, scheduler=scheduler)
    else:
        results = list(_analyze_all(inputs, options, jobs))
    result = AnalysisResult(version=__version__, captures=results)
    _filter(result, flow_id, host, port)
    report_options = output_options(
        fmt=fmt,
        show_all=show_all,
        flow_id=flow_id,
        timeline=timeline,
        no_color=no_color,
        to_file=output is not None,
    )
    write_report(result, fmt, report_options, output, inputs)


def _inputs(captures: Sequence[str]) -> list[str]:
    specs = expand_inputs(list(captures))
    paths: list[str] = []
    for spec in specs:
        if spec.note:
            click.echo(f"tcpdiag: note: {spec.note}", err=True)
        if spec.path is not None:
            paths.append(spec.path)
    if not paths:
        raise CaptureError("no capture files found in " + ", ".join(captures))
    return paths


def _analyze_one(path: str, options: AnalysisOptions) -> CaptureResult:
    return analyze_capture(path, options)


def _analyze_all(paths: list[str], options: AnalysisOptions, jobs: int) -> Iterator[CaptureResult]:
    if jobs <= 1 or len(paths) <= 1 or "-" in paths:
        for path in paths:
            yield analyze_capture(path, options)
        return
    # Separate processes (the GIL would serialise threads); map() keeps the input order, so the
    # output is identical to a sequential run.
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
        yield from pool.map(_analyze_one, paths, [options] * len(paths))


def _matches(flow: FlowResult, host: str | None, port: int | None) -> bool:
    ends = (flow.client, flow.server)
    if port is not None and not any(e.rsplit(":", 1)[1] == str(port) for e in ends):
        return False
    if host is not None:
        want = ipaddress.ip_address(host)
        addrs = [ipaddress.ip_address(e.rsplit(":", 1)[0].strip("[]")) for e in ends]
        if want not in addrs:
            return False
    return True


def _filter(result: AnalysisResult, flow_id: int | None, host: str | None, port: int | None) -> None:
    if flow_id is None and host is None and port is None:
        return
    for capture in result.captures:
        capture.flows = [
            f
            for f in capture.flows
            if (flow_id is None or f.id == flow_id) and _matches(f, host, port)
        ]
    if flow_id is not None and not any(c.flows for c in result.captures):
        click.echo(f"tcpdiag: note: no flow with id {flow_id}", err=True)
