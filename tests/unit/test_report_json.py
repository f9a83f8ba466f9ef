"""JSON and JSONL per the contract, validated against the packaged JSON Schema."""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]
import pytest
from report_fixtures import hostile_result, seed_result

from tcpdiag.report.json import render_json, render_jsonl
from tcpdiag.report.options import ReportOptions
from tcpdiag.report.summary import summarize

OPTS = ReportOptions()


def _schema() -> dict[str, Any]:
    text = resources.files("tcpdiag.report").joinpath("schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _validator(ref: str | None = None) -> jsonschema.Draft202012Validator:
    schema = _schema()
    if ref is not None:
        schema = {**schema, "$ref": f"#/$defs/{ref}"}
        del schema["required"], schema["properties"]
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _strict_loads(text: str) -> Any:
    def bad_constant(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=bad_constant)


@pytest.mark.parametrize("make", [seed_result, hostile_result])
def test_json_validates_against_schema(make: Any) -> None:
    doc = _strict_loads(render_json(make(), OPTS))
    _validator().validate(doc)


def test_schema_rejects_a_broken_document() -> None:
    doc = _strict_loads(render_json(seed_result(), OPTS))
    del doc["captures"][0]["flows"][0]["tls"]
    with pytest.raises(jsonschema.ValidationError):
        _validator().validate(doc)


def test_contract_field_mapping() -> None:
    doc = _strict_loads(render_json(seed_result(), OPTS))
    assert doc["tcpdiag"] == "0.1.0"
    cap = doc["captures"][0]
    assert cap["path"] == "captures/seed-tls.pcap" and cap["format"] == "pcapng"
    flow = cap["flows"][1]
    assert flow["id"] == 2
    assert flow["packets"] == {"client": 5, "server": 7}
    assert flow["bytes"] == {"client": 290, "server": 4210}
    assert flow["duration"] == 0.0682
    assert flow["close"] == {"kind": "rst", "by": "server", "frame": 14}
    assert flow["handshake"]["rtt"] == pytest.approx(0.0212)
    assert flow["handshake"]["syn_frames"] == [3]  # extra
    tls = flow["tls"]
    assert tls["records"] == {"client": 2, "server": 5}
    assert tls["messages"][0] == {
        "from": "client",
        "frame": 6,
        "type": "ClientHello",
        "length": 240,
    }
    assert tls["alerts"] == [
        {
            "from": "server",
            "frame": 13,
            "level": "fatal",
            "description": "unexpected_message",
            "encrypted": False,
        }
    ]
    assert tls["ja3"] == "e7d705a3286e19ea42f587b344ee6865"
    f = flow["findings"][0]
    assert f == {
        "name": "tls-flight-incomplete",
        "severity": "error",
        "message": f["message"],
        "frames": [12],
        "time": pytest.approx(1_700_000_001.0467),
        "flow": 2,
        "count": 1,
    }
    assert cap["flows"][0]["tls"] is None
    assert doc["summary"] == {
        "flows": 3,
        "problem_flows": 2,
        "findings": {
            "capture-snaplen-truncated": 1,
            "connection-refused": 1,
            "reset-mid-stream": 1,
            "retransmission": 1,
            "tls-alert": 1,
            "tls-flight-incomplete": 1,
        },
        "max_severity": "error",
    }
    assert summarize(seed_result()).to_json() == doc["summary"]


def test_non_finite_numbers_become_null_and_output_is_ascii() -> None:
    text = render_json(hostile_result(), OPTS)
    assert text.isascii()
    assert "NaN" not in text and "Infinity" not in text
    doc = _strict_loads(text)
    flow = doc["captures"][0]["flows"][0]
    assert flow["handshake"]["rtt"] is None
    assert flow["tcp"]["rtt"] == {"min": None, "median": None, "max": None, "samples": 1}
    assert flow["duration"] == 0.0
    # Lone surrogates replaced; other characters kept (JSON escapes them).
    assert "\ufffd" in flow["tls"]["sni"] and "\x1b[2J" in flow["tls"]["sni"]
    for value in _strings(doc):
        value.encode("utf-8")  # strict: a lone surrogate would raise


def _strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in _strings(k) + _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    if isinstance(obj, float):
        assert math.isfinite(obj)
    return []


def test_output_is_deterministic() -> None:
    assert render_json(seed_result(), OPTS) == render_json(seed_result(), OPTS)
    assert render_jsonl(seed_result(), OPTS) == render_jsonl(seed_result(), OPTS)


def test_jsonl_one_flow_per_line_then_summary() -> None:
    lines = render_jsonl(seed_result(), OPTS).splitlines()
    assert len(lines) == 4
    flows = [_strict_loads(line) for line in lines[:3]]
    assert [f["id"] for f in flows] == [1, 2, 3]
    assert all(f["capture"] == "captures/seed-tls.pcap" for f in flows)
    for f in flows:
        _validator("jsonl_flow").validate(f)
    last = _strict_loads(lines[3])
    _validator("jsonl_summary").validate(last)
    assert last["summary"]["flows"] == 3
    assert last["captures"][0]["findings"][0]["name"] == "capture-snaplen-truncated"
    assert "flows" not in last["captures"][0]


def test_flow_filter_applies_to_json() -> None:
    doc = _strict_loads(render_json(seed_result(), ReportOptions(flow_filter=2)))
    assert [f["id"] for f in doc["captures"][0]["flows"]] == [2]
    assert doc["summary"]["flows"] == 1
