"""The recording tier: every lab scenario re-recorded from scratch, its ground truth checked.

Runs only as root (network namespaces, nft, tcpdump); `tests/scenarios/install-deps.sh` installs
the tools on a fresh machine. Fresh recordings differ on every run (ports, ISNs, timing), so these
checks assert structure — errno, packet counts by kind, alert codes, gaps with tolerance — never
bytes. When tcpdiag's engine is importable, the capture must also give the expected findings and
none of the near-miss ones.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tcpdiag.lab.scenarios import SCENARIOS, record_and_save

pytestmark = [
    pytest.mark.recording,
    pytest.mark.skipif(os.geteuid() != 0, reason="the recording tier needs root"),
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in ("tcpdump", "nft", "ethtool", "ip", "openssl")),
        reason="run tests/scenarios/install-deps.sh (tcpdump, nftables, ethtool)",
    ),
]

Truth = dict[str, Any]
CHECKS: dict[str, Callable[[Truth], None]] = {}


def check(*names: str) -> Callable[[Callable[[Truth], None]], Callable[[Truth], None]]:
    def deco(fn: Callable[[Truth], None]) -> Callable[[Truth], None]:
        for name in names:
            CHECKS[name] = fn
        return fn

    return deco


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


@check("tcp-keepalive")
def _keepalive(t: Truth) -> None:
    w = t["wire"]
    # Two idle seconds with a 1 s keep-alive timer: probes and their ACKs beyond the
    # handshake (3), one request and response (2 + ACKs) and the close.
    assert t["app"]["bytes_received"] == t["app"]["server"]["bytes_sent"]
    assert w["tcp_packets"] >= 3 + 4 + 4 + 2, w
    assert w["rst"] == {"client": 0, "server": 0}


@check("tcp-snaplen-truncated")
def _snaplen(t: Truth) -> None:
    # The application received every byte; the capture holds only the first bytes of each.
    assert t["app"]["bytes_received"] == 65536 and t["app"]["snaplen"] == 96
    assert t["wire"]["payload_bytes"]["server"] < 65536


@check("capture-loss")
def _capture_loss(t: Truth) -> None:
    # The application received everything; the file lacks one of the server's segments.
    assert t["app"]["bytes_received"] == t["app"]["server"]["bytes_sent"] == 65536
    assert t["app"]["frame_removed"] > 3
    assert t["wire"]["payload_bytes"]["server"] < 65536


@check("capture-damaged")
def _capture_damaged(t: Truth) -> None:
    assert t["app"]["bytes_received"] == t["app"]["server"]["bytes_sent"]
    assert t["app"]["bytes_cut"] > 0
    assert t["wire"]["packets"] == t["app"]["records_recorded"] - 1


@check("tls-garbage-after-hello")
def _tls_garbage(t: Truth) -> None:
    app = t["app"]
    assert app["server"]["bytes_received"] == app["client_hello_bytes"] + app["garbage_bytes"]
    assert t["wire"]["payload_bytes"]["client"] == app["server"]["bytes_received"]


@check("tcp-refused-ipv4", "tcp-refused-ipv6")
def _refused(t: Truth) -> None:
    assert t["app"]["errno"] == "ECONNREFUSED"
    w = t["wire"]
    assert (w["syn"], w["syn_ack"], w["rst"]["server"]) == (1, 0, 1)
    if t["scenario"].endswith("ipv6"):
        assert t["linktype"] == "linux-sll2"


@check("tcp-syn-dropped")
def _syn_dropped(t: Truth) -> None:
    assert t["app"]["errno"] == "ETIMEDOUT"
    w = t["wire"]
    assert w["syn"] >= 2 and w["syn_ack"] == 0 and w["rst"] == {"client": 0, "server": 0}
    assert all(g > 0.7 for g in gaps(w["syn_times"]))


@check("tcp-icmp-admin-prohibited")
def _icmp(t: Truth) -> None:
    assert t["app"]["errno"] == "EHOSTUNREACH"
    assert t["wire"]["icmp"] >= 1 and t["wire"]["syn_ack"] == 0


@check("tcp-firewall-reset")
def _fw_reset(t: Truth) -> None:
    assert t["app"]["errno"] == "ECONNREFUSED" and t["app"]["server_listening"]
    assert t["wire"]["rst"]["server"] == 1
    assert t["timestamp_precision"] == "ns"


@check("arp-host-down")
def _arp(t: Truth) -> None:
    assert t["app"]["errno"] == "EHOSTUNREACH"
    w = t["wire"]
    assert w["tcp_packets"] == 0 and w["arp_requests"] >= 2 and w["arp_replies"] == 0


@check("tcp-backlog-full")
def _backlog(t: Truth) -> None:
    clients = t["app"]["clients"]
    accepted = [c for c in clients if c["connected"]]
    assert len(accepted) == 2 and all(c["response_bytes"] == 0 for c in accepted)
    assert [c["errno"] for c in clients if not c["connected"]] == ["ETIMEDOUT"] * 2
    assert t["wire"]["syn_ack"] == 2 and t["wire"]["syn"] >= 6


@check("tcp-synack-lost")
def _synack(t: Truth) -> None:
    assert t["app"]["connected"] and t["app"]["latency_ms"] > 700
    assert t["wire"]["syn_ack"] >= 2 and t["linktype"] == "raw"


@check("tcp-handshake-aborted")
def _aborted(t: Truth) -> None:
    assert t["app"]["connected"] is False and t["app"]["exception"].startswith("TimeoutError")
    w = t["wire"]
    assert w["syn_ack"] >= 1 and w["rst"]["client"] >= 1 and t["linktype"] == "raw"


@check("tcp-capture-mid-flow")
def _mid_flow(t: Truth) -> None:
    w = t["wire"]
    assert w["syn"] == 0 and w["syn_ack"] == 0 and w["fin"] == {"client": 1, "server": 1}
    assert t["timestamp_precision"] == "ns"


@check("tcp-orderly-close")
def _orderly(t: Truth) -> None:
    w = t["wire"]
    assert w["fin"] == {"client": 1, "server": 1} and w["rst"] == {"client": 0, "server": 0}
    assert t["format"] == "pcapng"
    assert t["app"]["bytes_received"] == t["app"]["server"]["bytes_sent"]


@check("tcp-linger0-abort")
def _linger(t: Truth) -> None:
    assert t["wire"]["rst"]["client"] == 1 and t["wire"]["fin"]["client"] == 0
    assert t["app"]["server"]["next_recv_errno"] == "ECONNRESET"


@check("tcp-close-unread")
def _unread(t: Truth) -> None:
    assert t["app"]["errno"] == "ECONNRESET"
    assert t["wire"]["rst"]["server"] >= 1 and t["wire"]["fin"]["server"] == 0


@check("tcp-half-close")
def _half(t: Truth) -> None:
    assert t["linktype"] == "linux-sll"
    assert t["wire"]["fin"] == {"client": 1, "server": 1}
    assert t["app"]["bytes_received"] == t["app"]["server"]["bytes_sent"] > 0


@check("tcp-close-wait")
def _close_wait(t: Truth) -> None:
    assert t["app"]["close_after_eof_ms"] > 2500
    assert t["wire"]["fin"] == {"client": 1, "server": 1}


@check("tcp-close-wait-never")
def _close_wait_never(t: Truth) -> None:
    assert t["wire"]["fin"] == {"client": 0, "server": 1} and t["wire"]["rst"]["client"] == 0


@check("tcp-zero-window")
def _zero(t: Truth) -> None:
    assert t["wire"]["zero_window_packets"] >= 1
    assert t["app"]["server"]["bytes_received"] == t["app"]["bytes_sent"]
    assert t["app"]["transfer_ms"] > 1500


@check("tcp-nagle-delayed-ack")
def _nagle(t: Truth) -> None:
    lat = sorted(t["app"]["latencies_ms"][1:])
    assert lat[len(lat) // 2] > 25, lat


@check("tcp-nagle-nodelay")
def _nodelay(t: Truth) -> None:
    assert max(t["app"]["latencies_ms"]) < 20


@check("tcp-retransmissions")
def _retrans(t: Truth) -> None:
    assert t["linktype"] == "raw"
    assert t["app"]["server"]["bytes_received"] == t["app"]["bytes_sent"]
    assert t["wire"]["payload_bytes"]["client"] > t["app"]["bytes_sent"]  # resent data


@check("tcp-any-bridge-duplicates")
def _bridge_duplicates(t: Truth) -> None:
    app, w = t["app"], t["wire"]
    assert t["linktype"] == "linux-sll2"
    assert app["server"]["bytes_received"] == app["bytes_sent"] and app["bytes_received"] == 3
    # Every packet twice: in on the client's bridge port, out on the server's; nothing lost.
    assert (w["syn"], w["syn_ack"]) == (2, 2) and w["tcp_packets"] % 2 == 0
    assert w["fin"] == {"client": 2, "server": 2} and w["rst"] == {"client": 0, "server": 0}
    assert w["payload_bytes"] == {"client": 2 * app["bytes_sent"], "server": 6}


@check("tcp-router-reset")
def _router_reset(t: Truth) -> None:
    app, w = t["app"], t["wire"]
    assert app["answer_1"] == "response-1\n"
    assert app["request_2_error"].startswith("ConnectionResetError")
    # The server never got the second request: the router answered it with the reset.
    assert app["server"]["requests"] == ["request-1\n"]
    assert w["rst"] == {"client": 0, "server": 1} and w["fin"] == {"client": 0, "server": 0}
    assert w["payload_bytes"] == {"client": 20, "server": 11}


@check("tcp-late-response")
def _late(t: Truth) -> None:
    assert t["app"]["request_1"].startswith("TimeoutError")
    assert t["app"]["answer_taken_for_request_2"] == "response-1\n"


@check("tcp-port-reuse", "tcp-stale-segment")
def _reuse(t: Truth) -> None:
    w = t["wire"]
    assert (w["syn"], w["syn_ack"], w["rst"]["client"]) == (2, 2, 1)
    if t["scenario"] == "tcp-stale-segment":
        assert t["app"]["replayed"]["payload_bytes"] > 0


@check("tls12-ok", "tls13-ok", "tls12-no-close-notify")
def _tls_ok(t: Truth) -> None:
    app = t["app"]
    assert app["version"] == ("TLSv1.3" if t["scenario"] == "tls13-ok" else "TLSv1.2")
    assert app["bytes_received"] == app["server"]["bytes_sent"] > 0
    if app["close_notify_sent"]:
        assert t["wire"]["rst"] == {"client": 0, "server": 0}


def _client_alert(t: Truth, reason: str) -> None:
    assert not t["app"]["handshake_ok"] and reason in t["app"]["exception"]


@check("tls-unknown-ca")
def _unknown_ca(t: Truth) -> None:
    _client_alert(t, "CERTIFICATE_VERIFY_FAILED")
    assert "UNKNOWN_CA" in t["app"]["server"]["exception"]


@check("tls-version-mismatch")
def _version(t: Truth) -> None:
    _client_alert(t, "PROTOCOL_VERSION")
    assert t["wire"]["payload_bytes"]["server"] == 7


@check("tls-no-shared-cipher")
def _cipher(t: Truth) -> None:
    _client_alert(t, "HANDSHAKE_FAILURE")
    assert t["wire"]["payload_bytes"]["server"] == 7


def _flight(t: Truth, code: int | None) -> None:
    """`code`: the server's fatal alert; None when the first record it reads is the encrypted
    Finished, whose first byte (OpenSSL's random GCM explicit nonce) it takes for a message
    type: mostly unexpected_message (10), now and then illegal_parameter (47) or another."""
    app = t["app"]
    assert [r["type"] for r in app["second_flight"]] == [
        "handshake",
        "change_cipher_spec",
        "handshake",
    ]
    assert [r["bytes"] for r in app["second_flight"]][1:] == [6, 45]
    assert app["reply_bytes"] == 7
    (alert,) = app["reply_alerts"]
    assert alert["level"] == "fatal"
    if code is not None:
        assert alert["code"] == code


@check("tls-truncated-flight")
def _truncated(t: Truth) -> None:
    _flight(t, None)
    assert t["app"]["records_on_wire"] == [{"type": "handshake", "bytes": 45}]
    assert t["app"]["reply_hex"].startswith("15 03 03 00 02 02 ")


@check("tls-flight-reversed")
def _reversed(t: Truth) -> None:
    _flight(t, None)
    assert len(t["app"]["records_on_wire"]) == 3


@check("tls-ccs-first")
def _ccs_first(t: Truth) -> None:
    _flight(t, 10)  # a plaintext ChangeCipherSpec where the ClientKeyExchange was due
    assert len(t["app"]["records_on_wire"]) == 3


@check("tls-half-record")
def _half_record(t: Truth) -> None:
    _flight(t, 50)
    assert t["wire"]["fin"]["client"] == 1


@check("tls-rst-mid-record", "tls-fin-mid-record")
def _mid_record(t: Truth) -> None:
    app = t["app"]
    assert app["handshake_ok"] and 0 < app["sent_of_record"] < app["record_bytes"]
    side = "rst" if app["close"] == "RST" else "fin"
    assert t["wire"][side]["client"] == 1


@check("tls-no-server-hello")
def _no_server_hello(t: Truth) -> None:
    assert not t["app"]["handshake_ok"]
    assert t["app"]["server"]["records"][0]["type"] == "handshake"
    assert t["wire"]["payload_bytes"]["server"] == 0 and t["wire"]["rst"]["server"] == 1


@check("tls-client-gives-up")
def _gives_up(t: Truth) -> None:
    assert not t["app"]["second_flight_sent"] and t["wire"]["fin"]["client"] == 1
    assert [a["code"] for a in t["app"]["reply_alerts"]] == [50]


@check("tls-server-stalls")
def _stalls(t: Truth) -> None:
    assert not t["app"]["handshake_ok"] and "timed out" in t["app"]["exception"]
    assert t["app"]["server"]["unprocessed_bytes"] > 0
    assert t["app"]["latency_ms"] > 800


def test_every_scenario_has_a_check() -> None:
    assert sorted(CHECKS) == sorted(SCENARIOS)


def _engine_findings(path: Path) -> set[str] | None:
    try:
        from tcpdiag.config import AnalysisOptions
        from tcpdiag.engine import analyze_capture
    except ModuleNotFoundError:
        return None
    result = analyze_capture(str(path), AnalysisOptions())
    return {f.name for f in result.all_findings()}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_recording(name: str, tmp_path: Path) -> None:
    truth = record_and_save(name, tmp_path)
    assert (tmp_path / f"{name}.truth.json").is_file()
    assert truth["size"] < 256 * 1024, "keep lab captures small"
    assert truth["expect"]["findings"] or truth["expect"]["absent"]
    CHECKS[name](truth)
    found = _engine_findings(tmp_path / truth["capture"])
    if found is None:
        return
    missing = set(truth["expect"]["findings"]) - found
    unexpected = set(truth["expect"]["absent"]) & found
    assert not missing and not unexpected, f"engine found {sorted(found)}"
