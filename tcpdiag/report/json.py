"""JSON and JSON Lines reports, exactly per the contract (spec/report.md), plus extras.

The result dataclasses mirror the contract but some names differ (`TlsMessage.sender` is
`"from"`, `packets_client/server` is `"packets": {...}`, `duration` is computed); this module is
the one place that knows the mapping. Output is strict JSON (non-finite floats become null,
`allow_nan=False` proves it), ASCII-only, with lone surrogates replaced: any strict parser reads
it whatever bytes the capture held. Key order is fixed, so the same input gives the same bytes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from tcpdiag._native import pure_requested
from tcpdiag.report.options import ReportOptions, flow_matches, without_timelines
from tcpdiag.report.parallel import flow_texts
from tcpdiag.report.summary import summarize_captures
from tcpdiag.result import (
    AnalysisResult,
    CaptureResult,
    Finding,
    FlowResult,
    TlsSummary,
)
from tcpdiag.surrogates import no_surrogates

JsonObject = dict[str, Any]


def _num(value: float | None) -> float | None:
    # x - x is 0 for every finite x, NaN for an infinity or NaN: arithmetic the compiled module
    # does in place, where `math.isfinite` is a call through the math module (~500
    # instructions, ten times a flow).
    if value is None or value - value != 0.0:
        return None
    return value


def _text(value: str) -> str:
    # ASCII text (most strings of a report: addresses, names, states) has no lone surrogate:
    # skip the regular expression of `no_surrogates` for it.
    return value if value.isascii() else no_surrogates(value)


def _str(value: str | None) -> str | None:
    return None if value is None else _text(value)


def finding_json(f: Finding) -> JsonObject:
    return {
        "name": f.name,
        "severity": f.severity.label,
        "message": _text(f.message),
        "frames": list(f.frames),
        "time": _num(f.time),
        "flow": f.flow,
        "count": f.count,
    }


def tls_json(tls: TlsSummary) -> JsonObject:
    return {
        "versions_offered": [_text(v) for v in tls.versions_offered],
        "version": _str(tls.version),
        "sni": _str(tls.sni),
        "alpn": [_text(a) for a in tls.alpn],
        "cipher_suite": _str(tls.cipher_suite),
        "handshake_complete": tls.handshake_complete,
        "records": {"client": tls.records_client, "server": tls.records_server},
        "messages": [
            {"from": m.sender, "frame": m.frame, "type": _text(m.type), "length": m.length}
            for m in tls.messages
        ],
        "alerts": [
            {
                "from": a.sender,
                "frame": a.frame,
                "level": _str(a.level),
                "description": _str(a.description),
                "encrypted": a.encrypted,
            }
            for a in tls.alerts
        ],
        # Extras beyond the contract.
        "ja3": _str(tls.ja3),
        "ja4": _str(tls.ja4),
        "starttls": _str(tls.starttls),
        "certificates": list(tls.certificates),
    }


def flow_json(flow: FlowResult) -> JsonObject:
    hs = flow.handshake
    tcp = flow.tcp
    out: JsonObject = {
        "id": flow.id,
        "client": _text(flow.client),
        "server": _text(flow.server),
        "ip_version": flow.ip_version,
        "client_inferred": flow.client_inferred,
        "first_frame": flow.first_frame,
        "last_frame": flow.last_frame,
        "start": _num(flow.start),
        "end": _num(flow.end),
        # Times near the epoch carry ~0.2 us of float noise; a duration is honest to 1 us.
        "duration": _num(round(flow.duration, 6)),
        "packets": {"client": flow.packets_client, "server": flow.packets_server},
        "bytes": {"client": flow.bytes_client, "server": flow.bytes_server},
        "state": flow.state,
        "history": _text(flow.history),
        "handshake": {
            "syn": hs.syn,
            "syn_ack": hs.syn_ack,
            "ack": hs.ack,
            "rtt": _num(hs.rtt),
            "syn_retransmissions": hs.syn_retransmissions,
            "syn_ack_retransmissions": hs.syn_ack_retransmissions,
            # Extras: the evidence behind the handshake facts.
            "syn_frames": list(hs.syn_frames),
            "syn_ack_frames": list(hs.syn_ack_frames),
        },
        "close": {"kind": flow.close.kind, "by": flow.close.by, "frame": flow.close.frame},
        "tcp": {
            "retransmissions": tcp.retransmissions,
            "fast_retransmissions": tcp.fast_retransmissions,
            "spurious_retransmissions": tcp.spurious_retransmissions,
            "out_of_order": tcp.out_of_order,
            "lost_segments": tcp.lost_segments,
            "acked_unseen": tcp.acked_unseen,
            "duplicate_acks": tcp.duplicate_acks,
            "zero_windows": tcp.zero_windows,
            "zero_window_probes": tcp.zero_window_probes,
            "window_full": tcp.window_full,
            "keep_alives": tcp.keep_alives,
            "rtt": None
            if tcp.rtt is None
            else {
                "min": _num(tcp.rtt.min),
                "median": _num(tcp.rtt.median),
                "max": _num(tcp.rtt.max),
                "samples": tcp.rtt.samples,
            },
        },
        "tls": None if flow.tls is None else tls_json(flow.tls),
        "findings": [finding_json(f) for f in flow.findings],
        "verdict": _text(flow.verdict),
    }
    return out


def capture_json(cap: CaptureResult, flows: list[FlowResult] | None = None) -> JsonObject:
    selected = cap.flows if flows is None else flows
    out: JsonObject = {
        "path": _text(cap.path),
        "format": cap.format,
        "link_types": [_text(t) for t in cap.link_types],
        "packets": cap.packets,
        "tcp_packets": cap.tcp_packets,
        "first_time": _num(cap.first_time),
        "last_time": _num(cap.last_time),
        "damaged": cap.damaged,
        "compression": cap.compression,
        "flows": [flow_json(f) for f in selected],
        "findings": [finding_json(f) for f in cap.findings],
    }
    if cap.incomplete:
        out["incomplete"] = True  # interrupted: only the packets read before Ctrl-C
    if cap.flows_released:
        # Live capture only: healthy flows reported while running, then released.
        out["flows_released"] = cap.flows_released
    return out


def _filtered(cap: CaptureResult, options: ReportOptions) -> list[FlowResult]:
    return [f for f in cap.flows if flow_matches(f, options)]


def _filtered_captures(result: AnalysisResult, options: ReportOptions) -> list[CaptureResult]:
    """Captures with only the flows the `--flow/--host/--port` filters keep (same objects when
    no filter is set)."""
    if options.flow_filter is None and options.host_filter is None and options.port_filter is None:
        return result.captures
    out: list[CaptureResult] = []
    for cap in result.captures:
        copy = CaptureResult(
            path=cap.path,
            format=cap.format,
            link_types=cap.link_types,
            packets=cap.packets,
            tcp_packets=cap.tcp_packets,
            first_time=cap.first_time,
            last_time=cap.last_time,
            damaged=cap.damaged,
            compression=cap.compression,
            flows=_filtered(cap, options),
            findings=cap.findings,
        )
        out.append(copy)
    return out


def result_json(result: AnalysisResult, options: ReportOptions | None = None) -> JsonObject:
    captures = _filtered_captures(result, options or ReportOptions())
    return {
        "tcpdiag": result.version,
        "captures": [capture_json(c) for c in captures],
        "summary": summarize_captures(captures).to_json(),
    }


# No check for circular references (a set of the ids of the containers being written, for
# every dict and list): the documents are built here, as trees.
_COMPACT = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, separators=(",", ":"), check_circular=False
)


def _native_dumps() -> Callable[[object], object] | None:
    """The C writer of `_COMPACT`'s text (`_compact.c`, built by `pip install .`; it writes a
    flow's line in a third of the time), or None when it is not built or under TCPDIAG_PURE=1."""
    if pure_requested():
        return None
    try:
        from tcpdiag.report import _compact  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _compact.dumps  # type: ignore[no-any-return]


_C_DUMPS: Final = _native_dumps()


def dumps(obj: object) -> str:
    """Strict, deterministic, ASCII-only, compact JSON (raises ValueError on a non-finite float
    that slipped past `_num`, rather than writing `NaN`, which no strict parser accepts).

    `_COMPACT.encode(obj)`'s text, written in C when the module is built: it returns
    NotImplemented for anything but exact dicts (str keys), lists, tuples, strs, ints, finite
    floats, booleans and None, which then go to `_COMPACT` (same text, or json's own error)."""
    if _C_DUMPS is not None:
        text = _C_DUMPS(obj)
        if text is not NotImplemented:
            return text  # type: ignore[return-value]
    return _COMPACT.encode(obj)


def dumps_outline(obj: object, depth: int = 4, _level: int = 0) -> str:
    """Indented down to `depth` levels, compact below: with the default, the document's outline
    is indented and every flow and finding is one line. Readable, grep- and diff-friendly, and
    fast (the C encoder does the bulk; `indent=` would force the pure-Python one: 8 s instead
    of 1 s for 100k flows)."""
    if _level >= depth or not isinstance(obj, dict | list) or not obj:
        return dumps(obj)
    pad = "  " * (_level + 1)
    if isinstance(obj, dict):
        items = [
            f"{pad}{dumps(str(k))}: {dumps_outline(v, depth, _level + 1)}" for k, v in obj.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + "  " * _level + "}"
    items = [pad + dumps_outline(v, depth, _level + 1) for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + "  " * _level + "]"


class LazyList:
    """A JSON array whose items are produced while writing (one flow object at a time), so a
    report of a million flows never holds a million dicts or one giant string."""

    __slots__ = ("count", "make", "texts")

    def __init__(
        self,
        count: int,
        make: Callable[[], Iterator[object]],
        texts: Callable[[int, int], Iterator[str]] | None = None,
    ) -> None:
        self.count = count
        self.make = make
        # Or the items' text, as `iter_outline(item, depth, level)` writes it, each item's
        # after what separates it from the one before: texts(depth, level), made elsewhere
        # (`parallel.flow_texts`) and written as they come.
        self.texts = texts


def iter_outline(obj: object, depth: int = 4, _level: int = 0) -> Iterator[str]:
    """`dumps_outline`, as chunks; `LazyList` values are expanded item by item."""
    if isinstance(obj, LazyList):
        if not obj.count:
            yield "[]"
            return
        pad = "  " * (_level + 1)
        yield "[\n"
        if obj.texts is not None:
            yield from obj.texts(depth, _level + 1)
        else:
            for i, item in enumerate(obj.make()):
                yield (",\n" if i else "") + pad
                yield from iter_outline(item, depth, _level + 1)
        yield "\n" + "  " * _level + "]"
        return
    if _level >= depth or not isinstance(obj, dict | list) or not obj:
        yield dumps(obj)
        return
    pad = "  " * (_level + 1)
    if isinstance(obj, dict):
        yield "{\n"
        for i, (key, value) in enumerate(obj.items()):
            yield (",\n" if i else "") + f"{pad}{dumps(str(key))}: "
            yield from iter_outline(value, depth, _level + 1)
        yield "\n" + "  " * _level + "}"
        return
    yield "[\n"
    for i, item in enumerate(obj):
        yield (",\n" if i else "") + pad
        yield from iter_outline(item, depth, _level + 1)
    yield "\n" + "  " * _level + "]"


def _flow_objects(flows: Sequence[FlowResult]) -> Iterator[JsonObject]:
    # A generator function, not a generator expression in the lambda: compiled (mypyc), that
    # expression held every flow's dict at once (a 2M-packet report peaked at 252 MB, not 50).
    for flow in flows:
        yield flow_json(flow)


def _lazy_capture(cap: CaptureResult, jobs: int = 1) -> JsonObject:
    doc = capture_json(cap, flows=[])
    flows = without_timelines(cap.flows)

    def texts(depth: int, level: int) -> Iterator[str]:
        pad = "  " * level

        def text(i: int, flow: FlowResult) -> str:
            # (as the LazyList branch of `iter_outline` separates its items)
            return "".join(
                ((",\n" if i else "") + pad, *iter_outline(flow_json(flow), depth, level))
            )

        return flow_texts(flows, text, jobs)

    doc["flows"] = LazyList(len(flows), lambda: _flow_objects(flows), texts if jobs > 1 else None)
    return doc


def iter_json(result: AnalysisResult, options: ReportOptions) -> Iterator[str]:
    """The `--format json` document in chunks (identical to `render_json`'s text)."""
    captures = _filtered_captures(result, options)
    doc: JsonObject = {
        "tcpdiag": result.version,
        "captures": [_lazy_capture(c, options.jobs) for c in captures],
        "summary": summarize_captures(captures).to_json(),
    }
    yield from iter_outline(doc)
    yield "\n"


def iter_jsonl(result: AnalysisResult, options: ReportOptions) -> Iterator[str]:
    """`--format jsonl` line by line."""
    captures = _filtered_captures(result, options)
    for cap in captures:
        line = functools.partial(_jsonl_line, cap.path)
        yield from flow_texts(without_timelines(cap.flows), line, options.jobs)
    yield jsonl_summary_line(result.version, captures) + "\n"


def render_json(result: AnalysisResult, options: ReportOptions) -> str:
    return "".join(iter_json(result, options))


def render_jsonl(result: AnalysisResult, options: ReportOptions) -> str:
    """One flow object per line, each with `"capture": path`, then one summary line:
    `{"tcpdiag": version, "captures": [capture objects without "flows"], "summary": {...}}`
    (so capture-level findings and headers are not lost)."""
    return "".join(iter_jsonl(result, options))


def _jsonl_line(capture_path: str, _position: int, flow: FlowResult) -> str:
    return jsonl_flow_line(capture_path, flow) + "\n"


def jsonl_flow_line(capture_path: str, flow: FlowResult) -> str:
    """One JSON Lines flow record (live capture streams these as flows finish)."""
    return dumps({"capture": _text(capture_path), **flow_json(flow)})


def jsonl_summary_line(version: str, captures: list[CaptureResult]) -> str:
    """The closing JSON Lines record: the captures without their flows, and the summary."""
    headers: list[JsonObject] = []
    for cap in captures:
        header = capture_json(cap, flows=[])
        del header["flows"]
        headers.append(header)
    summary = summarize_captures(captures).to_json()
    return dumps({"tcpdiag": version, "captures": headers, "summary": summary})
