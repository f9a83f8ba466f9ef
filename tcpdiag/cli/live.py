"""`tcpdiag live -i IFACE`: capture on an interface, diagnose flows as they finish.

Theory of operation: one thread, one loop. The packet source (`capture.live.LiveSource`, an
AF_PACKET socket; or `TsharkSource` with `--engine tshark`) is polled with a timeout of at most
one second; every packet goes to the pcap writer (`-w`) and to the same `Engine` as `analyze`
(through a receive ring, a block of pcap records at a time, decoded in C: `capture/ring.py`).
The engine calls back with each flow as it is finalised (closed and quiet, or idle in capture
time); its findings are printed then. Once a second, when the socket has been drained, the
engine is ticked with the wall clock (packets carry kernel timestamps from the same clock), so
flows that went silent still finish while no packet arrives; the pcap is flushed and the status
line (a TTY only) redrawn. SIGINT/SIGTERM, `--duration` and `--count` all end the loop the same
way: the engine finishes and the final report is printed (exit 0, or 1 with `--fail-on`). A
second SIGINT aborts at once (exit 130).

This command keeps no per-packet state: memory is the engine's (concurrent flows, plus one
summary per finished flow; timelines are dropped as soon as a flow is known to be healthy).
"""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, BinaryIO, NoReturn, Protocol

import click

from tcpdiag import __version__
from tcpdiag.capture.live import (
    DEFAULT_SNAPLEN,
    LiveCaptureError,
    LiveSource,
    LiveStats,
    TsharkSource,
)
from tcpdiag.cli.common import live_limit_options, say, use_color
from tcpdiag.model import RawPacket
from tcpdiag.result import Severity

if TYPE_CHECKING:
    from tcpdiag.capture.writer import PcapWriter
    from tcpdiag.config import AnalysisOptions
    from tcpdiag.engine import Engine
    from tcpdiag.result import CaptureResult, FlowResult

FORMATS = ("text", "json", "jsonl")
EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
# Seconds between ticks (engine expiry, pcap flush, kernel statistics) while traffic is quiet.
TICK = 1.0
# Seconds between status line redraws (a TTY only).
STATUS_EVERY = 0.5


class PacketSource(Protocol):
    linktype: int
    snaplen: int
    stats: LiveStats

    def poll(self, timeout: float | None = None, max_packets: int = ...) -> list[RawPacket]: ...
    def stop(self) -> None: ...
    def drain(self, max_packets: int = ..., max_seconds: float = ...) -> list[RawPacket]: ...
    @property
    def stopped(self) -> bool: ...
    def update_stats(self) -> LiveStats: ...
    def close(self) -> None: ...


def _fail(message: str) -> NoReturn:
    say("error", message)
    raise SystemExit(EXIT_USAGE)


@click.command()
@click.option("-i", "--interface", required=True, help="Interface to capture on (`any`: all).")
@click.option("-f", "--filter", "bpf", help="Capture filter, tcpdump syntax (needs libpcap).")
@click.option("--duration", type=click.FloatRange(0, min_open=True), help="Stop after S seconds.")
@click.option("-c", "--count", type=click.IntRange(1), help="Stop after COUNT packets.")
@click.option(
    "-w", "--write", "write_path", type=click.Path(dir_okay=False), help="Also write a pcap."
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option(
    "--fail-on",
    type=click.Choice(["info", "warning", "error"]),
    help="Exit 1 when a finding at or above this severity was found.",
)
@click.option(
    "--snaplen",
    type=click.IntRange(64, DEFAULT_SNAPLEN),
    default=DEFAULT_SNAPLEN,
    show_default=True,
    help="Bytes kept per packet.",
)
@click.option(
    "-B",
    "--buffer-size",
    "buffer_kib",
    type=click.IntRange(256),
    default=32768,
    show_default=True,
    help="Kernel receive buffer, KiB (as tcpdump's -B).",
)
@click.option(
    "--engine",
    "engine_name",
    type=click.Choice(["af_packet", "tshark"]),
    default="af_packet",
    show_default=True,
    help="Packet source: an AF_PACKET socket, or tshark through pyshark (tcpdiag[pyshark]).",
)
@click.option("--all", "show_all", is_flag=True, help="Timelines for every flow in the report.")
@click.option("--no-color", is_flag=True, help="Plain text even on a terminal (also NO_COLOR).")
@live_limit_options
def live(
    interface: str,
    bpf: str | None,
    duration: float | None,
    count: int | None,
    write_path: str | None,
    fmt: str,
    fail_on: str | None,
    snaplen: int,
    buffer_kib: int,
    engine_name: str,
    show_all: bool,
    no_color: bool,
    **limits: object,
) -> None:
    """Capture on an interface and diagnose TCP/TLS flows as they finish.

    Findings are printed as each flow ends or goes idle; Ctrl-C, --duration or --count stop the
    capture and print the final report (exit 0, or 1 with --fail-on). Needs root or
    CAP_NET_RAW (or --engine tshark with a dumpcap allowed to capture).
    """
    from tcpdiag.cli.common import analysis_options

    if write_path == "-":
        _fail("-w - is not supported: the report goes to standard output; name a file")
    options = analysis_options(limits, keep_all=show_all)
    source: PacketSource
    try:
        if engine_name == "tshark":
            source = TsharkSource(interface, bpf, snaplen=snaplen).open()
        else:
            source = LiveSource(
                interface, bpf, snaplen=snaplen, buffer_size=buffer_kib * 1024
            ).open()
    except LiveCaptureError as exc:
        _fail(str(exc))
    out_file: BinaryIO | None = None
    if write_path is not None:
        try:
            out_file = open(write_path, "wb")  # noqa: SIM115 (closed in run's finally)
        except OSError as exc:
            source.close()
            _fail(f"cannot write {write_path}: {exc.strerror or exc}")
    session = LiveSession(
        source,
        options,
        interface=interface,
        fmt=fmt,
        out_file=out_file,
        color=use_color(no_color, to_file=False),
        status=sys.stderr.isatty(),
    )
    filter_text = bpf if bpf else "none"
    ready = f"tcpdiag: capturing on {interface} (filter: {filter_text})"
    result = session.run(duration=duration, count=count, ready_message=ready)
    session.print_report(result, show_all=show_all)
    if fail_on is not None:
        threshold = Severity.parse(fail_on)
        if any(f.severity >= threshold for f in result.all_findings()):
            raise SystemExit(EXIT_FINDINGS)


class LiveSession:
    """The capture loop: source -> (writer, engine) -> streamed findings, then the result."""

    def __init__(
        self,
        source: PacketSource,
        options: AnalysisOptions,
        *,
        interface: str,
        fmt: str = "text",
        out_file: BinaryIO | None = None,
        color: bool = False,
        status: bool = False,
    ) -> None:
        from tcpdiag.engine import Engine

        self.source = source
        self.options = options
        self.path = f"live:{interface}"
        self.fmt = fmt
        self.color = color
        self.status_enabled = status
        self._out_file = out_file
        self._writer: PcapWriter | None = None
        self._finishing = False
        self._status_shown = False
        self.flows_done = 0
        self.findings_seen = 0
        # Hours of capture: the engine's report quota (--max-report-flows) bounds the flows the
        # final report keeps; the healthy ones were printed as they finished and are counted.
        self.engine: Engine = Engine(options, path=self.path, on_flow=self._on_flow)

    # -- the loop ------------------------------------------------------------------------------

    def run(
        self, duration: float | None = None, count: int | None = None, ready_message: str = ""
    ) -> CaptureResult:
        """Capture until stopped; `ready_message` goes to stderr once Ctrl-C/SIGTERM would
        stop the capture normally (scripts send those as soon as they read it)."""
        from tcpdiag.engine import gc_tuned

        # As for a capture file: no automatic cyclic GC, which re-walked every open flow and
        # kept result again and again (40% of a busy capture's time); the engine collects
        # when the heap has grown enough for it to matter.
        with gc_tuned():
            return self._run(duration, count, ready_message)

    def _run(self, duration: float | None, count: int | None, ready_message: str) -> CaptureResult:
        source = self.source
        stopping = [False]

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if stopping[0]:
                # Second Ctrl-C: the user wants out now.
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt
            stopping[0] = True
            source.stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        if ready_message:
            click.echo(ready_message, err=True)
        start = time.monotonic()
        deadline = start + duration if duration is not None else None
        next_tick = start + TICK
        next_status = start + STATUS_EVERY
        delivered = 0
        engine = self.engine
        ring = source.ring if isinstance(source, LiveSource) else None
        try:
            while not source.stopped:
                now = time.monotonic()
                wait = min(next_tick, next_status if self.status_enabled else next_tick) - now
                if deadline is not None:
                    wait = min(wait, deadline - now)
                if ring is not None:
                    assert isinstance(source, LiveSource)
                    delivered = self._take_records(source, max(0.0, wait), count, delivered)
                    drained = not source.backlog()
                else:
                    limit = 256 if count is None else min(256, count - delivered)
                    batch = source.poll(max(0.0, wait), limit)
                    for raw in batch:
                        self._write(raw)
                        engine.feed(raw)
                    delivered += len(batch)
                    drained = len(batch) < limit
                if count is not None and delivered >= count:
                    break
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if now >= next_tick:
                    if drained:
                        # The socket is drained: no packet older than "now" is still queued
                        # (with a ring: older than the block the kernel has not handed over
                        # yet), so expiring in wall-clock time cannot cut a flow short. (Under
                        # constant traffic the engine expires in packet time by itself.)
                        engine.tick(time.time() - (ring.lag if ring is not None else 0.0))
                    source.update_stats()
                    if self._out_file is not None:
                        self._out_file.flush()
                    next_tick = now + TICK
                if self.status_enabled and now >= next_status:
                    self._show_status()
                    next_status = now + STATUS_EVERY
            if count is None or delivered < count:
                # Stopped by a signal or the clock: take what the kernel had already queued.
                limit = (1 << 20) if count is None else count - delivered
                if ring is not None:
                    assert isinstance(source, LiveSource)
                    for records in source.drain_records(limit):
                        self._feed_records(records, delivered, source.linktype)
                        delivered = source.stats.packets
                else:
                    for raw in source.drain(limit):
                        self._write(raw)
                        engine.feed(raw)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            source.close()
            self._clear_status()
            self._close_writer()
        stats = source.update_stats()
        error = getattr(source, "error", None)
        if error:
            say("warning", error)
        self._finishing = True
        result = engine.finish()
        self._add_capture_findings(result, stats)
        click.echo(
            f"tcpdiag: {stats.packets} packets captured, "
            f"{stats.kernel_drops} dropped by the kernel",
            err=True,
        )
        return result

    def _take_records(
        self, source: LiveSource, wait: float, count: int | None, delivered: int
    ) -> int:
        """One poll of a ring source: its records written and analysed; the packets
        delivered so far."""
        limit = (1 << 30) if count is None else count - delivered
        records = source.poll_records(wait, limit)
        if records:
            self._feed_records(records, delivered, source.linktype)
        return source.stats.packets

    def _feed_records(self, records: bytes, delivered: int, linktype: int) -> None:
        if self._out_file is not None:
            if self._writer is None:
                from tcpdiag.capture.writer import PcapWriter

                self._writer = PcapWriter(
                    self._out_file, linktype, nanosecond=True, snaplen=self.source.snaplen
                )
            self._writer.write_records(records)
        self.engine.feed_records(records, delivered, linktype)

    def _write(self, raw: RawPacket) -> None:
        if self._out_file is None:
            return
        if self._writer is None:
            from tcpdiag.capture.writer import PcapWriter

            self._writer = PcapWriter(
                self._out_file, raw.linktype, nanosecond=True, snaplen=self.source.snaplen
            )
        self._writer.write(raw.ts_ns, raw.data, raw.orig_len)

    def _close_writer(self) -> None:
        if self._out_file is None:
            return
        if self._writer is None:
            # No packet: still a valid (empty) pcap.
            from tcpdiag.capture.writer import PcapWriter

            self._writer = PcapWriter(
                self._out_file, self.source.linktype, nanosecond=True, snaplen=self.source.snaplen
            )
        self._out_file.close()
        self._out_file = None

    def _add_capture_findings(self, result: CaptureResult, stats: LiveStats) -> None:
        if not stats.kernel_drops:
            return
        from tcpdiag.findings.registry import make_finding
        from tcpdiag.result import Finding

        result.findings.append(
            make_finding(
                "capture-packet-loss",
                f"the kernel dropped {stats.kernel_drops} packets (the capture could not keep "
                "up; try a narrower -f filter or a bigger -B buffer)",
                frames=(),
                count=stats.kernel_drops,
            )
        )
        result.findings.sort(key=Finding.sort_key)

    # -- streaming output ----------------------------------------------------------------------

    def _on_flow(self, flow: FlowResult) -> None:
        from tcpdiag.report.options import is_problem

        self.flows_done += 1
        self.findings_seen += len(flow.findings)
        if not self.options.keep_all_timelines and not is_problem(flow):
            # A healthy flow's timeline is never shown: free it now, not at the end.
            flow.timeline = None
        if self.fmt == "jsonl":
            from tcpdiag.report.json import jsonl_flow_line

            self._emit(jsonl_flow_line(self.path, flow))
        elif self.fmt == "text" and not self._finishing and flow.findings:
            self._emit(_flow_text(flow))

    def _emit(self, text: str) -> None:
        self._clear_status()
        click.echo(text)
        sys.stdout.flush()

    def _show_status(self) -> None:
        stats = self.source.stats
        line = (
            f"tcpdiag: {stats.packets} packets, {self.flows_done} flows done, "
            f"{self.findings_seen} findings, {stats.kernel_drops} dropped by the kernel"
        )
        sys.stderr.write("\r" + line + "\x1b[K")
        sys.stderr.flush()
        self._status_shown = True

    def _clear_status(self) -> None:
        if self._status_shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._status_shown = False

    # -- the final report ----------------------------------------------------------------------

    def print_report(self, result: CaptureResult, show_all: bool = False) -> None:
        from tcpdiag.report.options import ReportOptions
        from tcpdiag.result import AnalysisResult

        full = AnalysisResult(version=__version__, captures=[result])
        options = ReportOptions(show_all_timelines=show_all, color=self.color)
        if self.fmt == "json":
            from tcpdiag.report.json import render_json

            sys.stdout.write(render_json(full, options))
        elif self.fmt == "jsonl":
            from tcpdiag.report.json import jsonl_summary_line

            sys.stdout.write(jsonl_summary_line(full.version, full.captures) + "\n")
        else:
            from tcpdiag.report.text import render_text

            sys.stdout.write(render_text(full, options))
        sys.stdout.flush()


def _flow_text(flow: FlowResult) -> str:
    """A finished flow with findings, as streamed in text mode (plain, escaped)."""
    from tcpdiag.sanitize import clean

    head = f"flow {flow.id}  {flow.client} -> {flow.server}  {flow.state}"
    if flow.verdict:
        head += f"  {flow.verdict}"
    lines = [clean(head, max_len=400)]
    for f in flow.findings:
        frames = ", ".join(str(n) for n in f.frames[:8])
        if len(f.frames) > 8:
            frames += ", ..."
        count = f" x{f.count}" if f.count > 1 else ""
        where = f" (frames {frames})" if frames else ""
        lines.append(
            clean(f"  {f.severity.label:<7} {f.name}{count}: {f.message}{where}", max_len=400)
        )
    return "\n".join(lines)
