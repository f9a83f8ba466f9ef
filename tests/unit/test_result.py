"""The result classes: their written-out `__init__` is the one the dataclasses module would make,
and `flow_to_plain` / `flow_from_plain` and pickling carry every field, in field order.

(`result.py` writes each class's `__init__` so that mypyc compiles it; a parameter out of step
with the fields would silently swap values, which these tests catch.)"""

from __future__ import annotations

import dataclasses
import marshal
import pickle
from typing import Any

import pytest

from tcpdiag.result import (
    Close,
    Finding,
    FlowResult,
    Handshake,
    RttStats,
    Severity,
    TcpCounters,
    TimelineRow,
    TlsAlert,
    TlsMessage,
    TlsSummary,
    flow_from_plain,
    flow_to_plain,
)
from tests.unit.report_fixtures import every_field_flow

WRITTEN_OUT = [
    Handshake,
    Close,
    RttStats,
    TcpCounters,
    TlsMessage,
    TlsAlert,
    TlsSummary,
    TimelineRow,
    FlowResult,
]


def _by_fields(value: Any) -> Any:
    """`value` as its field values in field order, read through `dataclasses.fields`, with
    tuples as lists and severities as numbers: the layout `flow_to_plain` writes."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [_by_fields(getattr(value, f.name)) for f in dataclasses.fields(value)]
    if isinstance(value, Severity):
        return int(value)
    if isinstance(value, list | tuple):
        return [_by_fields(v) for v in value]
    return value


def _examples() -> dict[type[Any], Any]:
    """One object of each written-out class, from `every_field_flow`."""
    flow = every_field_flow()
    assert flow.tls is not None and flow.timeline is not None and flow.tcp.rtt is not None
    nested = [flow.handshake, flow.close, flow.tcp, flow.tcp.rtt, flow.tls, flow.timeline[0]]
    nested += [flow.tls.messages[0], flow.tls.alerts[0], flow]
    return {type(obj): obj for obj in nested}


@pytest.mark.parametrize("cls", WRITTEN_OUT, ids=lambda c: c.__name__)
def test_init_takes_the_fields_in_order_by_position_and_by_name(cls: type[Any]) -> None:
    # (By behaviour, not by `inspect.signature`: a compiled `__init__` has none to read.)
    example = _examples()[cls]
    names = [f.name for f in dataclasses.fields(cls)]
    values = [getattr(example, name) for name in names]
    # Values that tell the fields apart (booleans: flipped one at a time below). Compared by
    # value and type: a compiled class keeps numbers unboxed, so not the same objects.
    plain = [v for v in values if not isinstance(v, bool)]
    assert all(a != b for i, a in enumerate(plain) for b in plain[i + 1 :]), plain
    by_position, by_name = cls(*values), cls(**dict(zip(names, values, strict=True)))
    for name, value in zip(names, values, strict=True):
        for made in (by_position, by_name):
            got = getattr(made, name)
            assert got == value and type(got) is type(value), name
    for i, value in enumerate(values):
        if isinstance(value, bool):
            flipped = cls(*values[:i], not value, *values[i + 1 :])
            assert [getattr(flipped, name) for name in names] == [
                *values[:i],
                not value,
                *values[i + 1 :],
            ], names[i]
    with pytest.raises(TypeError):
        cls(*values, None)  # no parameter beyond the fields


@pytest.mark.parametrize("cls", WRITTEN_OUT, ids=lambda c: c.__name__)
def test_init_gives_the_fields_their_dataclass_defaults(cls: type[Any]) -> None:
    example = _examples()[cls]
    fields = dataclasses.fields(cls)
    required = {f.name: getattr(example, f.name) for f in fields if _no_default(f)}
    a, b = cls(**required), cls(**required)
    for f in fields:
        value = getattr(a, f.name)
        if f.default_factory is not dataclasses.MISSING:
            assert value == f.default_factory(), f.name
            assert value is not getattr(b, f.name), f.name  # not shared between objects
        elif f.default is not dataclasses.MISSING:
            assert value == f.default, f.name
        else:
            assert value == required[f.name], f.name
    if required:
        with pytest.raises(TypeError):
            cls()


def _no_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def test_every_field_is_distinct_from_its_default() -> None:
    def check(obj: Any) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.default is not dataclasses.MISSING:
                assert value != f.default, f.name
            elif f.default_factory is not dataclasses.MISSING:
                assert value != f.default_factory(), f.name
            if dataclasses.is_dataclass(value):
                check(value)

    flow = every_field_flow()
    check(flow)
    assert flow.tls is not None and flow.timeline is not None
    for nested in (flow.tls.messages[0], flow.tls.alerts[0], flow.findings[0], flow.timeline[0]):
        check(nested)


def test_flow_to_plain_lists_every_field_in_field_order() -> None:
    flow = every_field_flow()
    assert _by_fields(flow_to_plain(flow)) == _by_fields(flow)


def test_plain_and_pickle_round_trips_keep_every_field() -> None:
    flow = every_field_flow()
    copy = flow_from_plain(marshal.loads(marshal.dumps(flow_to_plain(flow))))
    assert copy == flow
    assert type(copy.findings[0].severity) is Severity
    assert pickle.loads(pickle.dumps(flow)) == flow


def test_a_new_id_moves_the_flows_own_findings_with_it() -> None:
    flow = every_field_flow()
    other = Finding("retransmission", Severity.WARNING, "m", (9,), None, 3, 1)
    flow.findings.append(other)
    copy = flow_from_plain(marshal.loads(marshal.dumps(flow_to_plain(flow))), new_id=40)
    assert copy.id == 40
    assert [f.flow for f in copy.findings] == [40, 3]
