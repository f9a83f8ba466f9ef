"""Real OpenSSL handshakes (TLS 1.2 and 1.3, in memory) fed to TlsStream in random segment
sizes, interleaved with random gaps-free cuts: the messages, alerts, records and verdict never
depend on how TCP cut the bytes."""

from __future__ import annotations

import functools
import ssl
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from test_tls_memorybio import full_session

from tcpdiag.model import Direction
from tcpdiag.tls import TlsStream


@functools.cache
def flights(version: ssl.TLSVersion) -> tuple[tuple[Direction, bytes], ...]:
    return tuple(full_session(version, alpn=["h2"]).flights)


def feed(version: ssl.TLSVersion, cuts: list[int]) -> tuple[object, ...]:
    stream = TlsStream()
    offsets = [0, 0]
    for direction, data in flights(version):
        points = [*sorted({c % max(1, len(data)) for c in cuts} - {0}), len(data)]
        prev = 0
        for point in points:
            stream.on_data(direction, offsets[direction], data[prev:point], 9, 1.0)
            offsets[direction] += point - prev
            prev = point
    summary = stream.summary()
    return (
        [(m.sender, m.type, m.length) for m in summary.messages],
        summary.records_client,
        summary.records_server,
        summary.handshake_complete,
        summary.version,
        summary.ja4,
        sorted(x for v in stream.records_by_frame().values() for x in v),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]),
    st.lists(st.integers(1, 5000), max_size=40),
)
def test_real_handshake_any_segmentation(version: ssl.TLSVersion, cuts: list[int]) -> None:
    whole = feed(version, [])
    assert whole[3] is True  # handshake_complete
    assert feed(version, cuts) == whole
