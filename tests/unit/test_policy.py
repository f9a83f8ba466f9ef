"""The check policy (ignores, severities, overrides, expectations) and its config loading."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from report_fixtures import healthy_tls_flow, refused_flow, seed_capture, truncated_tls_flow

from tcpdiag.checkconfig import find_config, load_config, parse_config
from tcpdiag.errors import ConfigError
from tcpdiag.findings.policy import (
    EXPECTATION_FAILED,
    Expectation,
    Policy,
    PolicyFlows,
    Rules,
    apply_policy,
    evaluate,
    evaluate_all,
    failing_findings,
    parse_expectation,
    path_matches,
)
from tcpdiag.report.options import problem_order
from tcpdiag.result import CaptureResult, Severity
from tcpdiag.store import FlowStore, LazyFlows


def _names(cap: CaptureResult) -> list[str]:
    return sorted(f.name for f in cap.all_findings())


def _policy(toml: str, tmp_path: Path) -> Policy:
    (tmp_path / "tcpdiag.toml").write_text(toml)
    return load_config(tmp_path / "tcpdiag.toml").policy


def test_ignore_and_severity_override(tmp_path: Path) -> None:
    policy = _policy(
        'ignore = ["capture-*", "reset-mid-stream"]\n'
        'severity = {connection-refused = "info", "tls-*" = "warning"}\n',
        tmp_path,
    )
    cap = seed_capture()
    out = apply_policy(cap, policy)
    assert _names(out) == [
        "connection-refused",
        "retransmission",
        "tls-alert",
        "tls-flight-incomplete",
    ]
    sev = {f.name: f.severity for f in out.all_findings()}
    assert sev["connection-refused"] == Severity.INFO
    assert sev["tls-alert"] == Severity.WARNING
    # The input is untouched.
    assert len(cap.all_findings()) == 6
    assert failing_findings(out, policy, None) == []
    assert len(failing_findings(out, policy, Severity.WARNING)) == 2


def test_fail_on_from_config_and_override(tmp_path: Path) -> None:
    policy = _policy(
        'fail-on = "warning"\n[[overrides]]\npath = "lab-*.pcap"\nfail-on = "error"\n'
        'ignore = ["connection-refused"]\n',
        tmp_path,
    )
    assert policy.for_capture("x.pcap").fail_on == Severity.WARNING
    lab = policy.for_capture("captures/lab-1.pcap")
    assert lab.fail_on == Severity.ERROR and lab.ignore == ("connection-refused",)
    cap = apply_policy(seed_capture("captures/lab-1.pcap"), policy)
    assert "connection-refused" not in _names(cap)
    # Command line wins over the config.
    assert len(failing_findings(cap, policy, Severity.INFO)) == 5


def test_path_matching() -> None:
    assert path_matches("captures/lab-1.pcap", "captures/lab-*.pcap")
    assert path_matches("./captures/lab-1.pcap", "captures/lab-*.pcap")
    assert path_matches("/abs/captures/lab-1.pcap", "lab-*.pcap")
    assert not path_matches("captures/prod.pcap", "captures/lab-*.pcap")
    assert path_matches("/proj/captures/a.pcap", "captures/*.pcap", root="/proj")


def test_string_expectations() -> None:
    assert parse_expectation("tls-handshake-complete") == Expectation(
        "tls-handshake-complete", tls="complete"
    )
    assert parse_expectation("no-findings-above:warning").no_findings_above == Severity.WARNING
    assert parse_expectation("min-flows:3").min_flows == 3
    for bad in ("tls-handshake", "no-findings-above:fatal", "min-flows:x", "finding:"):
        with pytest.raises(ValueError):
            parse_expectation(bad)


def test_tls_handshake_complete_expectation() -> None:
    cap = seed_capture()
    failed = evaluate(parse_expectation("tls-handshake-complete"), cap)
    assert failed is not None and failed.name == EXPECTATION_FAILED
    assert failed.message == (
        "expectation 'tls-handshake-complete' failed: flow 2 (192.168.1.10:40512 -> "
        "93.184.216.34:443): TLS handshake not complete"
    )
    assert failed.frames == (3,) and failed.flow == 2
    healthy = CaptureResult("ok.pcap", "pcap", flows=[healthy_tls_flow(), refused_flow()])
    # Without a selector only TLS flows count: the refused (non-TLS) flow does not break it.
    assert evaluate(parse_expectation("tls-handshake-complete"), healthy) is None
    no_tls = CaptureResult("x.pcap", "pcap", flows=[refused_flow()])
    failed = evaluate(parse_expectation("tls-handshake-complete"), no_tls)
    assert failed is not None and "no flow carries TLS" in failed.message


def test_other_string_expectations() -> None:
    cap = seed_capture()
    e = parse_expectation("no-findings-above:warning")
    failed = evaluate(e, cap)
    assert failed is not None and failed.count == 2
    assert evaluate(parse_expectation("no-findings-above:error"), cap) is None
    assert evaluate(parse_expectation("finding:tls-alert"), cap) is None
    missing = evaluate(parse_expectation("finding:zero-window"), cap)
    assert missing is not None and "no zero-window finding" in missing.message
    assert evaluate(parse_expectation("no-finding:zero-*"), cap) is None
    assert evaluate(parse_expectation("no-finding:capture-*"), cap) is not None
    assert evaluate(parse_expectation("min-flows:3"), cap) is None
    assert evaluate(parse_expectation("max-flows:2"), cap) is not None
    assert evaluate(parse_expectation("tcp-handshake-complete"), cap) is not None
    assert evaluate(parse_expectation("no-problem-flows"), cap) is not None


def test_table_expectations(tmp_path: Path) -> None:
    policy = _policy(
        "expect = [\n"
        '  {port = 443, tls = "complete", name = "https works"},\n'
        '  {host = "2001:db8::2", tls = "complete"},\n'
        '  {port = 8080, state = "REJ", finding = "connection-refused"},\n'
        '  {port = 9999, tls = "present"},\n'
        '  {sni = "*.example.org", no-findings-above = "info"},\n'
        "]\n",
        tmp_path,
    )
    out = apply_policy(seed_capture(), policy)
    failed = [f for f in out.findings if f.name == EXPECTATION_FAILED]
    assert sorted(f.message for f in failed) == sorted(
        [
            "expectation 'https works' failed: flow 2 (192.168.1.10:40512 -> 93.184.216.34:443): "
            "TLS handshake not complete",
            "expectation \"port=9999, tls='present'\" failed: 0 flows match the selector, "
            "expected at least 1",
        ]
    )
    assert all(f.severity == Severity.ERROR for f in failed)
    assert EXPECTATION_FAILED in {f.name for f in failing_findings(out, policy, None)}


def test_expectation_failures_take_severity_overrides(tmp_path: Path) -> None:
    policy = _policy(
        'expect = ["no-problem-flows"]\nseverity = {expectation-failed = "warning"}\n', tmp_path
    )
    out = apply_policy(CaptureResult("a.pcap", "pcap", flows=[truncated_tls_flow()]), policy)
    failed = [f for f in out.findings if f.name == EXPECTATION_FAILED]
    assert len(failed) == 1 and failed[0].severity == Severity.WARNING


def test_overrides_add_expectations(tmp_path: Path) -> None:
    policy = _policy(
        '[[overrides]]\npath = ["captures/refused-*.pcap"]\n'
        'expect = ["finding:connection-refused"]\n',
        tmp_path,
    )
    cap = CaptureResult("captures/refused-1.pcap", "pcap", flows=[healthy_tls_flow()])
    out = apply_policy(cap, policy)
    assert [f.name for f in out.findings] == [EXPECTATION_FAILED]
    other = apply_policy(CaptureResult("captures/x.pcap", "pcap"), policy)
    assert other.findings == []


# -- config loading ------------------------------------------------------------------------------


def test_find_config_walks_up_and_prefers_tcpdiag_toml(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_config(deep) is None or not str(find_config(deep)).startswith(str(tmp_path))
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    (tmp_path / "a" / "pyproject.toml").write_text('[tool.tcpdiag]\nfail-on = "warning"\n')
    assert find_config(deep) == tmp_path / "a" / "pyproject.toml"
    cfg = load_config(cwd=deep)
    assert cfg.policy.base.fail_on == Severity.WARNING
    (deep / "tcpdiag.toml").write_text('fail-on = "info"\n')
    assert load_config(cwd=deep).policy.base.fail_on == Severity.INFO


def test_thresholds_and_limits(tmp_path: Path) -> None:
    cfg = parse_config(
        {"thresholds": {"close-wait-delay": 2, "stall_min_count": 3}, "limits": {"max_flows": 10}}
    )
    assert cfg.options.thresholds.close_wait_delay == 2.0
    assert cfg.options.thresholds.stall_min_count == 3
    assert cfg.options.limits.max_flows == 10


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('fail-on = "fatal"', "tcpdiag.toml: fail-on: unknown severity 'fatal'"),
        ('ignore = ["no-such-thing"]', "ignore: unknown finding 'no-such-thing'"),
        ("ignore = 3", "ignore: must be a list of finding names"),
        ('severity = {tls-alert = "loud"}', "severity.tls-alert: unknown severity 'loud'"),
        ('colour = "red"', "colour: unknown key"),
        ('expect = ["tls-ok"]', "expect[0]: unknown expectation 'tls-ok'"),
        ('expect = [{port = 70000, tls = "complete"}]', "expect[0].port: must be a port"),
        ("expect = [{port = 443}]", "expect[0]: asserts nothing"),
        ('expect = [{port = 443, tls = "yes"}]', "expect[0].tls: must be one of"),
        ('expect = [{host = "example.com", tls = "complete"}]', "is not an IP address"),
        ('[[overrides]]\nignore = ["tls-alert"]', "overrides[0].path: must be a glob"),
        ("[thresholds]\nclose_wait_delay = -1", "thresholds.close_wait_delay: must be >= 0"),
        ("[limits]\nmax_flows = 1.5", "limits.max_flows: must be a whole number"),
        ("[thresholds]\nnope = 1", "thresholds.nope: unknown key"),
        ("fail-on = ", "invalid TOML"),
    ],
)
def test_config_errors_are_one_line(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "tcpdiag.toml").write_text(toml + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "tcpdiag.toml")
    text = str(info.value)
    assert message in text, text
    assert "\n" not in text


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_policy_rules_default() -> None:
    assert Policy().for_capture("x") == Rules()


def _stored(cap: CaptureResult, copies: int) -> CaptureResult:
    """`cap` with `copies` refused flows (ids 1..copies) in a FlowStore, as a long capture's
    flows are kept."""
    store = FlowStore()
    for i in range(1, copies + 1):
        store.add(refused_flow(fid=i, frame=2 * i + 1000 - 2 * (i % 7)))
    store.seal(lambda flow, packed: None)
    return dataclasses.replace(cap, flows=store)


def test_policy_applies_as_flows_are_read(tmp_path: Path) -> None:
    policy = _policy('severity = {connection-refused = "warning"}\n', tmp_path)
    cap = _stored(seed_capture(), 3)
    out = apply_policy(cap, policy)
    assert isinstance(out.flows, PolicyFlows)  # not a copy of every flow
    assert [f.findings[0].severity for f in out.flows] == [Severity.WARNING] * 3
    assert out.flows[1].findings[0].severity == Severity.WARNING
    assert cap.flows[1].findings[0].severity == Severity.ERROR  # the store is untouched
    assert [f.id for f in problem_order(out.flows)] == [1, 2, 3]


def test_a_failed_expectation_names_few_flows_of_many(tmp_path: Path) -> None:
    """One pass, bounded: the first five bad flows named, the smallest 50 first frames."""
    cap = _stored(seed_capture(), 120)
    failed = evaluate(parse_expectation("no-finding:connection-refused"), cap)
    assert failed is not None and failed.count == 120 and failed.flow is None
    assert "flow 1 (" in failed.message and "flow 5 (" in failed.message
    assert "flow 6 (" not in failed.message and "and 115 more flows" in failed.message
    frames = sorted({f.first_frame for f in cap.flows})
    assert list(failed.frames) == frames[:50]
    both = evaluate_all(
        [parse_expectation("min-flows:121"), parse_expectation("max-flows:120")], cap
    )
    assert both[0] is not None and "120 flows, expected at least 121" in both[0].message
    assert both[1] is None


def test_problem_order_of_flows_read_on_access() -> None:
    flows = [refused_flow(fid=1), healthy_tls_flow(fid=2), truncated_tls_flow()]
    listed = problem_order(flows)
    lazy = problem_order(PolicyFlows(flows, Rules()))
    assert isinstance(lazy, LazyFlows) and not isinstance(lazy, PolicyFlows)
    assert [f.id for f in lazy] == [f.id for f in listed]
    assert [f.id for f in lazy[1:]] == [f.id for f in listed[1:]]
