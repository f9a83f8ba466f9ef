"""Fuzz target: the whole analysis (reader, decoder, flows, TLS, rules, JSON report) on mutated
real captures. Seeds are the public and project captures, read from their place at run time
(`common.capture_seeds`), so mutations start from real traffic (bad-inputs F5 under a fuzzer).
"""

from __future__ import annotations

import io
import json

import common

with common.instrumented():
    from tcpdiag.capture import open_capture
    from tcpdiag.config import AnalysisOptions
    from tcpdiag.engine import Engine
    from tcpdiag.errors import TcpdiagError
    from tcpdiag.report.json import render_json
    from tcpdiag.report.options import ReportOptions
    from tcpdiag.result import AnalysisResult


def _reject(name: str) -> None:
    raise ValueError(f"non-JSON constant {name} in the report")


def analyse(data: bytes, max_flows: int = 64) -> AnalysisResult | None:
    options = AnalysisOptions()
    options.limits.max_flows = max_flows
    options.limits.max_flow_buffer = 64 << 10
    options.limits.max_input_bytes = 8 << 20
    try:
        with open_capture("-", options.limits.max_input_bytes, stdin=io.BytesIO(data)) as cap:
            engine = Engine(options, path="fuzz.pcap")
            for raw in cap:
                engine.feed(raw)
            result = engine.finish(cap)
    except TcpdiagError:
        return None
    return AnalysisResult("0", [result])


def test_one_input(data: bytes) -> None:
    result = analyse(data)
    if result is None:
        return
    cap = result.captures[0]
    assert cap.packets >= cap.tcp_packets >= 0
    ids = [f.id for f in cap.flows]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), ids
    for flow in cap.flows:
        assert flow.duration >= 0 and flow.first_frame <= flow.last_frame
    report = json.loads(render_json(result, ReportOptions(color=False)), parse_constant=_reject)
    assert report["captures"][0]["packets"] == cap.packets


def seeds() -> list[bytes]:
    return common.capture_seeds()


if __name__ == "__main__":
    common.main(test_one_input, seeds)
