"""`tcpdiag check CAPTURE...`: the analysis shaped for CI, with a pass/fail exit code.

Exit 1 when any finding is at or above `--fail-on` (else the config's `fail-on`, per capture
overrides included; default error) after the config's ignores and severity overrides and with
failed expectations counted as `expectation-failed` findings; 0 otherwise; 2 for an unreadable
input or a bad config (one line on stderr).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence

import click

from tcpdiag import __version__
from tcpdiag.checkconfig import load_config
from tcpdiag.cli.analyze import jobs_option, spool_for
from tcpdiag.cli.common import apply_limit_flags, check_limit_options, expand_captures
from tcpdiag.cli.distributed import DEFAULT_SPLIT_SIZE, SIZE
from tcpdiag.cli.output import emit
from tcpdiag.config import AnalysisOptions
from tcpdiag.findings.policy import apply_policy, failing_findings
from tcpdiag.report import ReportOptions, render
from tcpdiag.result import AnalysisResult, CaptureResult, Severity

FORMATS = ("text", "json", "jsonl", "junit", "sarif", "github")
EXIT_OK = 0
EXIT_FINDINGS = 1


def _analyze(path: str, options: AnalysisOptions) -> CaptureResult:
    from tcpdiag.engine import analyze_capture

    return analyze_capture(path, options)


def _analyze_local(
    paths: list[str], options: AnalysisOptions, jobs: int, stack: contextlib.ExitStack
) -> Iterator[CaptureResult]:
    """The captures on this machine, in order, as `analyze` runs them (the same results):
    several, `jobs` at a time in worker processes, their flows left in a spool directory that
    `stack` removes; one, split by flow when it is a local file of 16 MB or more; else in
    this process."""
    from tcpdiag.split import analyze_each, analyze_split, split_jobs

    spool = spool_for(stack, paths, jobs)
    if spool is not None:
        yield from analyze_each(paths, options, jobs, spool)
        return
    for path in paths:
        workers = split_jobs(path, jobs)
        yield analyze_split(path, options, workers) if workers > 1 else _analyze(path, options)


def run_check(
    captures: Sequence[str],
    *,
    fail_on: str | None = None,
    config: str | None = None,
    fmt: str = "text",
    output: str | None = None,
    color: bool = False,
    cluster: str | None = None,
    scheduler: str | None = None,
    split_size: int = DEFAULT_SPLIT_SIZE,
    limits: Mapping[str, object] | None = None,
    jobs: int = 1,
) -> int:
    """The whole command without click: returns the exit code (0, 1, or 2/3 when a Dask run
    could not read some captures: those are reported on stderr, the others still checked)."""
    cfg = load_config(config)
    apply_limit_flags(cfg.options, limits or {})
    paths = expand_captures(captures)
    if output is not None:
        # Refuse a bad -o before spending time on the analysis.
        from tcpdiag.cli.output import check_output_path

        if output != "-":
            check_output_path(output, paths)
    level = Severity.parse(fail_on) if fail_on else None
    result = AnalysisResult(__version__)
    thresholds: dict[str, Severity] = {}
    failed = 0
    unreadable = 0
    analysed: Iterable[CaptureResult]
    # The report may read flows that parallel workers left on disk: it is written before they go.
    with contextlib.ExitStack() as stack:
        if cluster or scheduler:
            from tcpdiag.cli.distributed import analyze_distributed

            fleet = analyze_distributed(
                paths, cfg.options, cluster=cluster, scheduler=scheduler, split_size=split_size
            )
            analysed, unreadable = fleet, fleet.exit_code
        else:
            analysed = _analyze_local(paths, cfg.options, jobs, stack)
        for raw in analysed:
            cap = apply_policy(raw, cfg.policy)
            result.captures.append(cap)
            configured = cfg.policy.for_capture(cap.path).fail_on
            thresholds[cap.path] = level or configured or Severity.ERROR
            failed += len(failing_findings(cap, cfg.policy, level))
        options = ReportOptions(
            color=color and output is None,
            fail_on=level or cfg.policy.base.fail_on or Severity.ERROR,
            fail_on_by_path=thresholds,
        )
        emit(render("check" if fmt == "text" else fmt, result, options), output, paths)
    if unreadable:
        return unreadable
    return EXIT_FINDINGS if failed else EXIT_OK


@click.command()
@click.argument("captures", nargs=-1, required=True)
@click.option(
    "--fail-on",
    type=click.Choice(["info", "warning", "error"]),
    help="Fail (exit 1) on findings at or above this severity [default: config's, else error].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config file (default: tcpdiag.toml or [tool.tcpdiag] in pyproject.toml, "
    "searched from the current directory upward).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report here.")
@click.option("--no-color", is_flag=True, help="Plain text even on a terminal (also NO_COLOR).")
@jobs_option(
    "Processes (1-256, or auto: the CPUs this process may use): captures in parallel; one "
    "capture of 16 MB or more split by flow across them, as with analyze. The result is the "
    "same for any N."
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
@check_limit_options
def check(
    captures: tuple[str, ...],
    fail_on: str | None,
    config_path: str | None,
    fmt: str,
    output: str | None,
    no_color: bool,
    jobs: int,
    cluster: str | None,
    scheduler: str | None,
    split_size: int,
    **limits: object,
) -> None:
    """Analyse captures for CI: exit 1 when a finding is at or above the threshold.

    Applies the config's ignores, severity overrides, per-capture overrides and expectations
    (see `tcpdiag.findings.policy` for the language).
    """
    import os
    import sys

    color = not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()
    code = run_check(
        captures,
        fail_on=fail_on,
        config=config_path,
        fmt=fmt,
        output=output,
        color=color,
        cluster=cluster,
        scheduler=scheduler,
        split_size=split_size,
        limits=limits,
        jobs=jobs,
    )
    raise SystemExit(code)
