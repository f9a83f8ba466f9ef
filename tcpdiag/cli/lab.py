"""`tcpdiag lab [SCENARIO] [--list] [-o DIR]`: stage a scenario and record it with ground truth.

Each scenario is played with real sockets and the real kernel (loopback, or network namespaces
the lab creates and deletes), recorded with tcpdump or dumpcap, and written as
``DIR/<scenario>.pcap`` (or ``.pcapng``) plus ``DIR/<scenario>.truth.json``: what the application
saw, what the wire shows, and which findings tcpdiag must and must not report. Needs root.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from tcpdiag.cli.common import say

EXIT_USAGE = 2


@click.command("lab")
@click.argument("scenario", required=False)
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for the capture and its .truth.json.",
)
def lab(scenario: str | None, list_only: bool, out_dir: Path) -> None:
    """Record a failure scenario (or `all`) with real sockets, with its ground truth (root)."""
    from tcpdiag.lab import SCENARIOS

    if list_only or scenario is None:
        width = max(len(name) for name in SCENARIOS)
        for name, sc in SCENARIOS.items():
            click.echo(f"{name:<{width}}  {sc.description.split('. ')[0]}")
        return
    names = list(SCENARIOS) if scenario == "all" else [scenario]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise click.UsageError(f"unknown scenario {unknown[0]!r} (see tcpdiag lab --list)")
    if os.geteuid() != 0:
        click.echo(
            "tcpdiag: error: tcpdiag lab must run as root: it creates network namespaces, "
            "firewall rules and packet captures",
            err=True,
        )
        raise SystemExit(EXIT_USAGE)

    from tcpdiag.lab import LabError
    from tcpdiag.lab.scenarios import record_and_save

    for name in names:
        try:
            truth = record_and_save(name, out_dir)
        except LabError as exc:
            say("error", f"{name}: {exc}")
            raise SystemExit(EXIT_USAGE) from None
        expected = ", ".join(truth["expect"]["findings"]) or "no finding"
        click.echo(
            f"{out_dir / truth['capture']}: {truth['linktype']}, {truth['format']}, "
            f"{truth['size']} bytes; expect {expected}"
        )
