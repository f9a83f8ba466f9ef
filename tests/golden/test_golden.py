"""Golden tests: tcpdiag's findings and key fields on every capture, against committed output.

Covers the project's own recordings (`captures/`) and the public corpus (`../shared/captures/
public/`, read in place). Expected files live in `tests/golden/expected/`. When a change alters the
output on purpose, regenerate with `python -m pytest tests/golden --update-golden` and review the
diff (`git diff tests/golden/expected`) before committing it: every changed line is a changed
diagnosis.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tcpdiag.config import AnalysisOptions
from tcpdiag.engine import analyze_capture
from tcpdiag.errors import CaptureError
from tcpdiag.result import CaptureResult, Finding, FlowResult
from tests.conftest import PROJECT_CAPTURES, PUBLIC_CAPTURES

EXPECTED = Path(__file__).parent / "expected"
SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcap.zst", ".pcapng.gz", ".pcapng.zst")


def _captures() -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for prefix, folder in (("own", PROJECT_CAPTURES), ("public", PUBLIC_CAPTURES)):
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.name.endswith(SUFFIXES):
                    out.append((f"{prefix}-{path.name}", path))
    return out


def _finding(f: Finding) -> dict[str, Any]:
    return {
        "name": f.name,
        "severity": f.severity.label,
        "count": f.count,
        "frames": list(f.frames),
        "message": f.message,
    }


def _flow(flow: FlowResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": flow.id,
        "client": flow.client,
        "server": flow.server,
        "client_inferred": flow.client_inferred,
        "frames": [flow.first_frame, flow.last_frame],
        "packets": [flow.packets_client, flow.packets_server],
        "bytes": [flow.bytes_client, flow.bytes_server],
        "state": flow.state,
        "history": flow.history,
        "handshake": [
            flow.handshake.syn,
            flow.handshake.syn_ack,
            flow.handshake.ack,
            flow.handshake.syn_retransmissions,
            flow.handshake.syn_ack_retransmissions,
        ],
        "close": [flow.close.kind, flow.close.by, flow.close.frame],
        "verdict": flow.verdict,
        "findings": [_finding(f) for f in flow.findings],
    }
    if flow.tls is not None:
        tls = flow.tls
        out["tls"] = {
            "version": tls.version,
            "offered": tls.versions_offered,
            "sni": tls.sni,
            "alpn": tls.alpn,
            "cipher": tls.cipher_suite,
            "complete": tls.handshake_complete,
            "records": [tls.records_client, tls.records_server],
            "messages": [f"{m.sender[0]}{m.frame}:{m.type}:{m.length}" for m in tls.messages],
            "alerts": [
                [a.sender, a.frame, a.level, a.description, a.encrypted] for a in tls.alerts
            ],
        }
    return out


def golden_view(result: CaptureResult) -> dict[str, Any]:
    """The fields a golden file pins: everything a user reads, nothing run-dependent."""
    return {
        "packets": result.packets,
        "tcp_packets": result.tcp_packets,
        "format": result.format,
        "link_types": result.link_types,
        "damaged": result.damaged,
        "findings": [_finding(f) for f in result.findings],
        "flows": [_flow(f) for f in result.flows],
    }


@pytest.mark.parametrize(("name", "path"), _captures(), ids=[n for n, _ in _captures()])
def test_golden(name: str, path: Path, update_golden: bool) -> None:
    expected_file = EXPECTED / f"{name}.json"
    try:
        actual: dict[str, Any] = golden_view(analyze_capture(str(path), AnalysisOptions()))
    except CaptureError as exc:
        actual = {"error": str(exc).replace(str(path), path.name)}
    text = json.dumps(actual, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if update_golden or not expected_file.exists():
        if not update_golden:
            pytest.fail(f"no golden file {expected_file.name}; run with --update-golden")
        expected_file.write_text(text, encoding="utf-8")
        return
    expected = json.loads(expected_file.read_text(encoding="utf-8"))
    assert actual == expected, f"{name}: output changed; review and run --update-golden"
