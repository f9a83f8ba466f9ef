"""Resource limits (issue 10, item 3): each limit is a `config.Limits` field with a documented
default and a flag of `analyze`, `check` and `live`; hitting it is reported as a
capture-quality finding, never silently."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import click
import pytest

from tcpdiag.cli.main import cli as tcpdiag_cli
from tcpdiag.config import Limits
from tests.craft import same_bucket_ports
from tests.hostile import packets as p
from tests.hostile.helpers import analyze, assert_read, cli

T0 = 1_700_000_000 * 10**9
BUFFERED_4K = re.compile(r"buffered more than (4,096 bytes|4\.1 KB) beyond a hole")
FLAGS = {
    "max_flows": "--max-flows",
    "max_flow_buffer": "--max-flow-buffer",
    "max_input_bytes": "--max-input-bytes",
    "idle_timeout": "--idle-timeout",
    "max_closed_flows": "--max-closed-flows",
}


@pytest.mark.parametrize("command", ["analyze", "check", "live"])
def test_limit_flags_exist_with_config_defaults(command: str) -> None:
    cmd = tcpdiag_cli.get_command(click.Context(tcpdiag_cli), command)
    assert cmd is not None
    params = {p.name: p for p in cmd.params if isinstance(p, click.Option)}
    defaults = Limits()
    for name, flag in FLAGS.items():
        if command == "live" and name == "max_input_bytes":
            continue  # no input file to bound
        opt = params.get(name)
        assert opt is not None, f"{command} has no {flag}"
        assert flag in opt.opts
        # `check` defaults to None: the config file's [limits], else config.Limits.
        allowed = (
            (None, getattr(defaults, name)) if command == "check" else (getattr(defaults, name),)
        )
        assert opt.default in allowed, (name, opt.default)


def _syns(n: int) -> bytes:
    frames = []
    for i in range(n):
        frames.append((T0 + i * 1000, p.tcp_frame(flags=p.SYN, sport=10000 + i, dport=80)))
    return p.pcap(frames)


def test_max_flows_hit_reported(write: Any) -> None:
    path = write("syns.pcap", _syns(30))
    run = analyze(path, "--max-flows", "10")
    assert_read(run)
    (hit,) = run.findings("flow-table-full")
    assert hit["count"] == 20
    assert "(10 flows): 20 flows were finalised early" in hit["message"], hit
    assert len(run.capture["flows"]) == 30  # evicted flows are still reported
    check = cli("check", str(path), "--max-flows", "10", "--format", "json", "--fail-on", "error")
    assert check.rc == 1 and "flow-table-full" in check.out, check.err


def _closed_then_late(late_after_ns: int) -> bytes:
    """Three connections closed one after the other, then the first one's last ACK again
    `late_after_ns` later (frame 25). All three in one bucket of flows (the limit on closed
    flows is kept per bucket)."""
    frames: list[tuple[int, bytes]] = []
    t0 = T0
    client, server = (str(ipaddress.ip_address(ip)) for ip in (p.CLIENT_IP, p.SERVER_IP))
    for sport in same_bucket_ports(3, client, f"{server}:443"):
        s = p.Session(sport=sport, t0_ns=t0)
        s.handshake()
        s.send("c", b"x" * 100)
        s.close()
        frames += s.packets
        t0 = s.t + 10**8
    late = frames[7][1]  # the first connection's final ACK
    frames.append((t0 + late_after_ns, late))
    return p.pcap(frames)


def test_max_closed_flows_hit_reported(write: Any) -> None:
    path = write("closed.pcap", _closed_then_late(late_after_ns=5 * 10**9))
    run = analyze(path, "--max-closed-flows", "1")
    assert_read(run)
    (hit,) = run.findings("flow-linger-limit")
    assert hit["count"] == 1 and hit["frames"] == [25], hit
    assert "(--max-closed-flows 1: at most 1 in each of the 64 groups" in hit["message"], hit
    assert len(run.capture["flows"]) == 4  # the late ACK became a flow of its own
    # Near misses: room for the closed flows to linger (the late ACK joins its connection),
    # and a packet after the linger would have ended anyway (60 s: a new flow either way).
    assert not analyze(path).findings("flow-linger-limit")
    assert len(analyze(path).capture["flows"]) == 3
    later = write("later.pcap", _closed_then_late(late_after_ns=61 * 10**9))
    assert not analyze(later, "--max-closed-flows", "1").findings("flow-linger-limit")


def _out_of_order(gap_first: bool = True, size: int = 20_000) -> bytes:
    s = p.Session(dport=80)
    s.handshake()
    base = s.next["c"]
    for off in range(1000 if gap_first else 0, size, 1000):
        s.raw("c", p.ACK | p.PSH, b"d" * 1000, seq=base + off, ack=s.next["s"])
    return p.pcap(s.packets)


def test_max_flow_buffer_hit_reported(write: Any) -> None:
    path = write("ooo.pcap", _out_of_order())
    run = analyze(path, "--max-flow-buffer", "4096")
    assert_read(run)
    (hit,) = run.findings("reassembly-limit")
    assert BUFFERED_4K.search(hit["message"]), hit
    assert not analyze(path).findings("reassembly-limit")  # the default (1 MiB) holds it all


def test_max_input_bytes_hit_reported(write: Any) -> None:
    data = _syns(50)
    run = analyze(write("syns.pcap", data), "--max-input-bytes", "1000")
    assert_read(run)
    (hit,) = run.findings("capture-damaged")
    assert "stopped after 1000 bytes" in hit["message"], hit
    assert 0 < run.capture["packets"] < 50
    exact = analyze(write("syns2.pcap", data), "--max-input-bytes", str(len(data)))
    assert exact.capture["packets"] == 50 and not exact.findings("capture-damaged")


def test_limits_flags_reject_nonsense(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(_syns(1))
    for flag, value in (
        ("--max-flows", "0"),
        ("--max-flow-buffer", "10"),
        ("--max-input-bytes", "-1"),
    ):
        run = analyze(path, flag, value)
        assert run.rc == 2 and "Traceback" not in run.err and flag in run.err, run.err
