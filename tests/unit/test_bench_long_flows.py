"""The long-connection memory benchmark (benchmarks/long_flows.py): its captures are the
traffic it describes, as tcpdiag reads them."""

from __future__ import annotations

from pathlib import Path

from tcpdiag.engine import analyze_capture
from tcpdiag.result import CaptureResult
from tests.modules import load_file

long_flows = load_file(
    Path(__file__).resolve().parents[2] / "benchmarks" / "long_flows.py", "bench_long_flows"
)


def _analyze(case: str, packets: int, tmp_path: Path) -> CaptureResult:
    path = tmp_path / f"{case}.pcap"
    long_flows.write(path, long_flows.CASES[case](), packets)
    result = analyze_capture(str(path))
    assert result.packets == packets
    return result


def _counts(result: CaptureResult) -> dict[str, int]:
    return {f.name: f.count for flow in result.flows for f in flow.findings}


def test_bulk_is_one_clean_transfer(tmp_path: Path) -> None:
    result = _analyze("bulk", 1_003, tmp_path)
    (flow,) = result.flows
    assert (flow.bytes_client, flow.bytes_server) == (0, 500 * 100) and not flow.findings


def test_dupack_flags_every_later_ack(tmp_path: Path) -> None:
    counts = _counts(_analyze("dupack", 1_003, tmp_path))
    assert counts.get("duplicate-ack") == 500 and counts.get("previous-segment-lost") == 1


def test_zerowin_opens_and_closes_the_window(tmp_path: Path) -> None:
    counts = _counts(_analyze("zerowin", 903, tmp_path))
    assert counts.get("zero-window") == 300


def test_tls_connections_complete_their_handshakes(tmp_path: Path) -> None:
    result = _analyze("tls", 300 * 7 + 2 * 300 * 3, tmp_path)
    assert len(result.flows) == 300
    assert all(f.tls is not None and f.tls.sni == "api.example" for f in result.flows)
    assert not _counts(result)
    assert all(f.verdict.startswith("ok: ") for f in result.flows)
