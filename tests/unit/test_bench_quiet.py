"""The quiet-capture generator (benchmarks/quiet.py): what it writes is what the analysis sees."""

from __future__ import annotations

from pathlib import Path

from tcpdiag.config import AnalysisOptions, Limits
from tcpdiag.engine import analyze_capture
from tests.modules import load_file

quiet = load_file(Path(__file__).resolve().parents[2] / "benchmarks" / "quiet.py", "bench_quiet")


def test_quiet_connections_wait_for_the_idle_timeout_while_the_trickle_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "quiet.pcap"
    assert quiet.main(["--connections", "300", "--seconds", "90", "-o", str(path)]) == 0
    options = AnalysisOptions(limits=Limits(idle_timeout=60.0), keep_all_timelines=True)
    result = analyze_capture(str(path), options)
    assert result.packets == 300 * 5 + 90 * 2
    flows = sorted(result.flows, key=lambda f: f.id)
    assert len(flows) == 301
    quiet_flows, trickle = flows[:300], flows[300]
    assert {(f.packets_client, f.packets_server) for f in quiet_flows} == {(3, 2)}
    assert {(f.bytes_client, f.bytes_server, f.state) for f in quiet_flows} == {(100, 300, "S1")}
    assert len({f.client for f in quiet_flows}) == 300
    assert (trickle.packets_client, trickle.packets_server, trickle.bytes_client) == (90, 90, 900)
    # ends at the last trickle packet, 90 s (and its ACK's 1 ms) after the quiet ones
    assert round(trickle.end - quiet_flows[-1].end, 3) == 90.001


def test_client_addresses_are_distinct_for_a_million_connections() -> None:
    addresses = {quiet.client_address(i) for i in range(0, 1_000_000, 997)}
    assert len(addresses) == len(range(0, 1_000_000, 997))
