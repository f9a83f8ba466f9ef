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


def _every_field_set() -> FlowResult:
    """A flow whose every field, nested ones included, holds a value of its own (none is a
    default), set by name."""
    return FlowResult(
        id=7,
        client="10.0.0.1:40000",
        server="10.0.0.2:443",
        ip_version=4,
        client_inferred=True,
        first_frame=3,
        last_frame=99,
        start=1.25,
        end=9.5,
        packets_client=11,
        packets_server=12,
        bytes_client=1300,
        bytes_server=1400,
        state="RSTO",
        history="ShADadR",
        handshake=Handshake(
            syn=True,
            syn_ack=True,
            ack=True,
            rtt=0.031,
            syn_retransmissions=2,
            syn_ack_retransmissions=1,
            syn_frames=[3, 4, 5],
            syn_times=[1.25, 2.25, 4.25],
            syn_ack_frames=[6],
            syn_ack_times=[4.3],
        ),
        close=Close(kind="rst", by="server", frame=99),
        tcp=TcpCounters(
            retransmissions=21,
            fast_retransmissions=22,
            spurious_retransmissions=23,
            out_of_order=24,
            lost_segments=25,
            acked_unseen=26,
            duplicate_acks=27,
            zero_windows=28,
            zero_window_probes=29,
            window_full=30,
            keep_alives=31,
            rtt=RttStats(min=0.01, median=0.02, max=0.5, samples=9),
        ),
        tls=TlsSummary(
            versions_offered=["TLS 1.3", "TLS 1.2"],
            version="TLS 1.3",
            sni="example.test",
            alpn=["h2"],
            cipher_suite="TLS_AES_128_GCM_SHA256",
            handshake_complete=True,
            records_client=5,
            records_server=6,
            messages=[TlsMessage(sender="client", frame=8, type="ClientHello", length=512)],
            alerts=[
                TlsAlert(
                    sender="server",
                    frame=97,
                    level="fatal",
                    description="decode_error",
                    encrypted=False,
                )
            ],
            ja3="a" * 32,
            ja4="t13d",
            starttls="smtp",
            certificates=[1200, 900],
        ),
        findings=[
            Finding(
                name="tls-alert",
                severity=Severity.ERROR,
                message="m",
                frames=(97,),
                time=9.4,
                flow=7,
                count=2,
            )
        ],
        verdict="server aborted",
        timeline=[
            TimelineRow(
                frame=8,
                time=2.5,
                sender="client",
                flags=0x18,
                seq=2,
                ack=3,
                length=512,
                window=65535,
                tls=["ClientHello 512"],
                notes=["tls-alert"],
            )
        ],
        timeline_skipped=5,
    )


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
    """One object of each written-out class, from `_every_field_set`."""
    flow = _every_field_set()
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

    flow = _every_field_set()
    check(flow)
    assert flow.tls is not None and flow.timeline is not None
    for nested in (flow.tls.messages[0], flow.tls.alerts[0], flow.findings[0], flow.timeline[0]):
        check(nested)


def test_flow_to_plain_lists_every_field_in_field_order() -> None:
    flow = _every_field_set()
    assert _by_fields(flow_to_plain(flow)) == _by_fields(flow)


def test_plain_and_pickle_round_trips_keep_every_field() -> None:
    flow = _every_field_set()
    copy = flow_from_plain(marshal.loads(marshal.dumps(flow_to_plain(flow))))
    assert copy == flow
    assert type(copy.findings[0].severity) is Severity
    assert pickle.loads(pickle.dumps(flow)) == flow


def test_a_new_id_moves_the_flows_own_findings_with_it() -> None:
    flow = _every_field_set()
    other = Finding("retransmission", Severity.WARNING, "m", (9,), None, 3, 1)
    flow.findings.append(other)
    copy = flow_from_plain(marshal.loads(marshal.dumps(flow_to_plain(flow))), new_id=40)
    assert copy.id == 40
    assert [f.flow for f in copy.findings] == [40, 3]
