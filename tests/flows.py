"""A capture through tcpdiag's reader, decoder and flow table only (no engine, no TLS): the TCP
analysis as the differential checks against tshark compare it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tcpdiag.capture import open_capture
from tcpdiag.decode import Decoder
from tcpdiag.flow import Flow, FlowTable
from tcpdiag.model import Segment


def run_flow_table(
    path: Path | str,
    on_close: Callable[[Flow], None],
    on_open: Callable[[Flow], None] | None = None,
) -> None:
    """Every TCP segment of the capture into a `FlowTable` with default limits; `on_close` gets
    each flow as it is finalised (a large capture need not keep them), `on_open` each new one
    (to attach a stream consumer)."""
    table = FlowTable(on_open=on_open, on_close=on_close)
    decoder = Decoder()
    with open_capture(str(path)) as reader:
        for raw in reader:
            rec = decoder.decode(raw)
            if isinstance(rec, Segment):
                table.add(rec)
    table.finish()


def flows_of(path: Path | str) -> list[Flow]:
    done: list[Flow] = []
    run_flow_table(path, done.append)
    return done
