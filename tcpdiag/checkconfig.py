"""Finding and validating the configuration of `tcpdiag check` (and the analysis thresholds).

Where it comes from, first match wins (like ruff): `--config FILE`; else, from the current
directory upward, the first `tcpdiag.toml`, or `pyproject.toml` that has a `[tool.tcpdiag]`
table (a pyproject.toml without one is passed over). No file: the defaults.

Every problem is a `ConfigError` with one line naming the file and the key, so the CLI can
print it as `tcpdiag: error: ...` and exit 2. The policy keys are documented in
`tcpdiag.findings.policy`; `[thresholds]` and `[limits]` take the fields of `tcpdiag.config`.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcpdiag.config import AnalysisOptions, Limits, Thresholds, field_names
from tcpdiag.errors import ConfigError
from tcpdiag.findings.policy import (
    HANDSHAKE_STATES,
    TLS_STATES,
    ZEEK_STATES,
    Expectation,
    Override,
    Policy,
    Rules,
    known_finding_names,
    parse_expectation,
)
from tcpdiag.result import Severity

CONFIG_NAMES = ("tcpdiag.toml", "pyproject.toml")
_RULE_KEYS = ("fail-on", "ignore", "severity", "expect")
_TOP_KEYS = (*_RULE_KEYS, "overrides", "thresholds", "limits")
_EXPECT_KEYS = (
    "name",
    "port",
    "host",
    "sni",
    "flow",
    "tls",
    "tcp-handshake",
    "state",
    "no-findings-above",
    "no-finding",
    "finding",
    "min-flows",
    "max-flows",
)


@dataclass(slots=True)
class CheckConfig:
    path: Path | None = None
    policy: Policy = field(default_factory=Policy)
    options: AnalysisOptions = field(default_factory=AnalysisOptions)


def find_config(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "tcpdiag.toml"
        if candidate.is_file():
            return candidate
        pyproject = directory / "pyproject.toml"
        if (
            pyproject.is_file()
            and "tool" in (data := _read(pyproject))
            and isinstance(data["tool"], dict)
            and "tcpdiag" in data["tool"]
        ):
            return pyproject
    return None


def load_config(path: str | Path | None = None, *, cwd: Path | None = None) -> CheckConfig:
    """Load `path` (it must exist) or the first config found from `cwd` upward."""
    if path is not None:
        found = Path(path)
        if not found.is_file():
            raise ConfigError(f"{found}: config file not found")
    else:
        maybe = find_config(cwd)
        if maybe is None:
            return CheckConfig()
        found = maybe
    data = _read(found)
    if found.name == "pyproject.toml":
        tool = data.get("tool", {})
        table = tool.get("tcpdiag", {}) if isinstance(tool, dict) else {}
        where = "[tool.tcpdiag]"
    else:
        table = data
        where = ""
    if not isinstance(table, dict):
        raise ConfigError(f"{found}: [tool.tcpdiag] must be a table")
    return parse_config(
        table, source=str(found), where=where, root=str(found.resolve().parent), path=found
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def parse_config(
    table: Mapping[str, Any],
    *,
    source: str = "config",
    where: str = "",
    root: str | None = None,
    path: Path | None = None,
) -> CheckConfig:
    p = _Parser(source, frozenset(known_finding_names()))
    p.keys(table, _TOP_KEYS, where)
    base = p.rules(table, where)
    overrides: list[Override] = []
    raw_overrides = table.get("overrides", [])
    if not isinstance(raw_overrides, list):
        p.fail(f"{where}overrides", "must be an array of tables ([[overrides]])")
    for i, item in enumerate(raw_overrides):
        at = f"{where}overrides[{i}]."
        if not isinstance(item, dict):
            p.fail(at.rstrip("."), "must be a table")
        p.keys(item, ("path", *_RULE_KEYS), at)
        paths = item.get("path")
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not paths or not all(isinstance(x, str) for x in paths):
            p.fail(f"{at}path", "must be a glob or a list of globs")
        overrides.append(Override(tuple(paths), p.rules(item, at)))
    options = AnalysisOptions()
    p.dataclass_table(table.get("thresholds", {}), options.thresholds, f"{where}thresholds")
    p.dataclass_table(table.get("limits", {}), options.limits, f"{where}limits")
    policy = Policy(base=base, overrides=tuple(overrides), root=root)
    return CheckConfig(path=path, policy=policy, options=options)


class _Parser:
    def __init__(self, source: str, names: frozenset[str]) -> None:
        self.source = source
        self.names = names

    def fail(self, key: str, why: str) -> None:
        raise ConfigError(f"{self.source}: {key.lstrip('.')}: {why}")

    def keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], at: str) -> None:
        for key in table:
            if key.replace("_", "-") not in allowed:
                self.fail(f"{at}{key}", f"unknown key (known: {', '.join(allowed)})")

    @staticmethod
    def get(table: Mapping[str, Any], key: str) -> Any:
        return table.get(key, table.get(key.replace("-", "_")))

    def severity(self, value: Any, key: str) -> Severity:
        if not isinstance(value, str):
            self.fail(key, "must be one of info, warning, error")
        try:
            return Severity.parse(value)
        except ValueError:
            self.fail(key, f"unknown severity {value!r} (info, warning, error)")
        raise AssertionError  # unreachable: fail() raises

    def finding_name(self, name: Any, key: str) -> str:
        if not isinstance(name, str) or not name:
            self.fail(key, "finding names must be strings")
        if self.names and not any(fnmatch.fnmatchcase(n, name) for n in self.names):
            self.fail(key, f"unknown finding {name!r} (see `tcpdiag explain`)")
        return str(name)

    def names_list(self, value: Any, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.fail(key, "must be a list of finding names")
        return tuple(self.finding_name(v, key) for v in value)

    def rules(self, table: Mapping[str, Any], at: str) -> Rules:
        fail_on = self.get(table, "fail-on")
        level = None if fail_on is None else self.severity(fail_on, f"{at}fail-on")
        ignore = self.names_list(table.get("ignore", []), f"{at}ignore")
        sev_table = table.get("severity", {})
        if not isinstance(sev_table, dict):
            self.fail(f"{at}severity", 'must be a table like {retransmission = "warning"}')
        severity = {
            self.finding_name(name, f"{at}severity"): self.severity(v, f"{at}severity.{name}")
            for name, v in sev_table.items()
        }
        expect_raw = table.get("expect", [])
        if not isinstance(expect_raw, list):
            self.fail(f"{at}expect", "must be a list of expectations")
        expect = tuple(self.expectation(e, f"{at}expect[{i}]") for i, e in enumerate(expect_raw))
        return Rules(fail_on=level, ignore=ignore, severity=severity, expect=expect)

    def expectation(self, value: Any, key: str) -> Expectation:
        if isinstance(value, str):
            try:
                e = parse_expectation(value)
            except ValueError as exc:
                self.fail(key, str(exc))
                raise  # unreachable
            for name in (*e.finding, *e.no_finding):
                self.finding_name(name, key)
            return e
        if not isinstance(value, dict):
            self.fail(key, "must be a string or a table")
        self.keys(value, _EXPECT_KEYS, f"{key}.")
        g = value.get
        ports_raw = g("port", [])
        ports_list = [ports_raw] if isinstance(ports_raw, int) else ports_raw
        if not isinstance(ports_list, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 65535 for x in ports_list
        ):
            self.fail(f"{key}.port", "must be a port number (0-65535) or a list of them")
        host = g("host")
        if host is not None:
            try:
                host = str(ipaddress.ip_address(host))
            except ValueError:
                self.fail(f"{key}.host", f"{host!r} is not an IP address")
        sni = g("sni")
        if sni is not None and not isinstance(sni, str):
            self.fail(f"{key}.sni", "must be a string (a glob)")
        flow = g("flow")
        if flow is not None and (not isinstance(flow, int) or flow < 1):
            self.fail(f"{key}.flow", "must be a flow id (>= 1)")
        tls = g("tls")
        if tls is not None and tls not in TLS_STATES:
            self.fail(f"{key}.tls", f"must be one of {', '.join(TLS_STATES)}")
        hs = self.get(value, "tcp-handshake")
        if hs is not None and hs not in HANDSHAKE_STATES:
            self.fail(f"{key}.tcp-handshake", f"must be one of {', '.join(HANDSHAKE_STATES)}")
        states_raw = g("state", [])
        states = [states_raw] if isinstance(states_raw, str) else states_raw
        if not isinstance(states, list) or not all(s in ZEEK_STATES for s in states):
            self.fail(f"{key}.state", f"must be Zeek conn_state(s): {' '.join(ZEEK_STATES)}")
        above_raw = self.get(value, "no-findings-above")
        above = None if above_raw is None else self.severity(above_raw, f"{key}.no-findings-above")
        counts: dict[str, int | None] = {}
        for name in ("min-flows", "max-flows"):
            n = self.get(value, name)
            if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
                self.fail(f"{key}.{name}", "must be a number >= 0")
            counts[name] = n
        label = g("name")
        if label is not None and not isinstance(label, str):
            self.fail(f"{key}.name", "must be a string")
        shown = label or ", ".join(f"{k}={v!r}" for k, v in value.items())
        e = Expectation(
            label=str(shown),
            ports=tuple(ports_list),
            host=host,
            sni=sni,
            flow=flow,
            tls=tls,
            tcp_handshake=hs,
            states=tuple(states),
            no_findings_above=above,
            no_finding=self.names_list(self.get(value, "no-finding") or [], f"{key}.no-finding"),
            finding=self.names_list(g("finding") or [], f"{key}.finding"),
            min_flows=counts["min-flows"],
            max_flows=counts["max-flows"],
        )
        asserts = (e.tls, e.tcp_handshake, e.no_findings_above, e.min_flows, e.max_flows)
        if not (e.states or e.no_finding or e.finding or any(a is not None for a in asserts)):
            self.fail(key, "asserts nothing (add tls, tcp-handshake, state, finding, ...)")
        return e

    def dataclass_table(self, table: Any, target: Thresholds | Limits, at: str) -> None:
        if not isinstance(table, dict):
            self.fail(at, "must be a table")
        allowed = field_names(type(target))
        for key, value in table.items():
            attr = key.replace("-", "_")
            if attr not in allowed:
                self.fail(f"{at}.{key}", f"unknown key (known: {', '.join(allowed)})")
            current = getattr(target, attr)
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(f"{at}.{key}", "must be a number")
            if isinstance(current, int) and not isinstance(value, int):
                self.fail(f"{at}.{key}", "must be a whole number")
            if value < 0:
                self.fail(f"{at}.{key}", "must be >= 0")
            setattr(target, attr, type(current)(value))
