"""The C timeline row writer (`flow/_rows.c`) against its `struct` twin (`flow/rows.py`).

Built here from the source (an editable install has no extensions, see `tests/cbuild.py`).
Both must write the same 35 bytes for every row, raise `struct.error` on the same values, and
give the same reports when the flow engine uses one or the other.
"""

from __future__ import annotations

import struct
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tcpdiag.flow.flow as flow_module
from tcpdiag.config import AnalysisOptions, Limits
from tcpdiag.engine import analyze_capture
from tcpdiag.flow import rows
from tcpdiag.flow.rows import RowWriter
from tcpdiag.report.json import capture_json, dumps
from tests.capture_files import PUBLIC
from tests.cbuild import REPO, build_extension, load_extension

SOURCE = REPO / "tcpdiag" / "flow" / "_rows.c"

ROW_VALUES = st.tuples(
    st.integers(-(2**63), 2**63 - 1),  # frame (q: any 64-bit value)
    st.floats(allow_nan=False),  # time (any double round-trips)
    st.integers(0, 1),  # direction
    st.integers(0, 0xFFFF),  # flags
    st.integers(0, 2**32 - 1),  # seq
    st.integers(0, 2**32 - 1),  # ack
    st.integers(0, 2**32 - 1),  # length
    st.integers(0, 2**32 - 1),  # window
)


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    path = build_extension(SOURCE, "tcpdiag.flow._rows", tmp_path_factory.mktemp("rows"), [])
    module = load_extension(path, "tcpdiag.flow._rows")
    assert module.ROW_SIZE == rows.ROW_SIZE == 35
    return module


@settings(max_examples=400, deadline=None)
@given(values=ROW_VALUES, prefix=st.binary(max_size=80))
def test_appended_rows_are_the_struct_bytes(
    native: ModuleType, values: tuple[object, ...], prefix: bytes
) -> None:
    in_c = bytearray(prefix)
    native.append_row(in_c, *values)
    by_struct = bytearray(prefix)
    rows.append_row_struct(by_struct, *values)
    assert in_c == by_struct == prefix + struct.pack("<qdBHIIII", *values)


@settings(max_examples=200, deadline=None)
@given(values=ROW_VALUES, slots=st.integers(1, 5), data=st.data())
def test_rows_put_in_a_ring_are_the_struct_bytes(
    native: ModuleType, values: tuple[object, ...], slots: int, data: st.DataObject
) -> None:
    at = data.draw(st.integers(0, slots - 1)) * rows.ROW_SIZE
    in_c = bytearray(b"\xaa" * (slots * rows.ROW_SIZE))
    by_struct = bytearray(in_c)
    native.put_row(in_c, at, *values)
    rows.put_row_struct(by_struct, at, *values)
    assert in_c == by_struct
    assert in_c[at : at + rows.ROW_SIZE] == struct.pack("<qdBHIIII", *values)


GOOD = (7, 1.5, 1, 0x18, 1000, 2000, 100, 65535)


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        (0, 2**63),  # frame beyond q
        (0, -(2**63) - 1),
        (1, "soon"),  # time not a number
        (2, 256),  # direction beyond B
        (3, 0x10000),  # flags beyond H
        (4, 2**32),  # seq beyond I
        (5, -1),  # ack negative
        (6, 2**40),
        (7, 1.0),  # window not an integer
    ],
)
def test_out_of_range_values_raise_struct_error_both_ways(
    native: ModuleType, field: int, bad: object
) -> None:
    values = list(GOOD)
    values[field] = bad
    for writer in (native.append_row, rows.append_row_struct):
        buf = bytearray(b"x")
        with pytest.raises(struct.error):
            writer(buf, *values)
        assert buf == b"x"  # nothing written
    ring = bytearray(rows.ROW_SIZE)
    for put in (native.put_row, rows.put_row_struct):
        with pytest.raises(struct.error):
            put(ring, 0, *values)


def test_a_row_beyond_the_ring_raises_both_ways(native: ModuleType) -> None:
    for put in (native.put_row, rows.put_row_struct):
        for at in (-1, 1, rows.ROW_SIZE):
            with pytest.raises(struct.error):
                put(bytearray(rows.ROW_SIZE), at, *GOOD)


def test_pure_python_runs_the_struct_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TCPDIAG_PURE", "1")
    assert rows._native() is None


def _corpus() -> list[Path]:
    found: list[Path] = []
    for folder in (REPO / "captures", PUBLIC):
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if p.suffix in (".pcap", ".pcapng"))
    return found


def test_engine_reports_are_identical_with_either_writer(
    native: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short head and ring make most flows wrap their tail ring (`put_row`)."""
    captures = _corpus()
    assert len(captures) >= 10
    ring = AnalysisOptions(limits=Limits(timeline_head=5, timeline_tail=3), keep_all_timelines=True)
    written = {"append": 0, "put": 0}

    def counted(kind: str, writer: RowWriter) -> RowWriter:
        def write(*args: object) -> None:
            written[kind] += 1
            writer(*args)

        return write

    for path in captures:
        for options in (AnalysisOptions(keep_all_timelines=True), ring):
            reports = []
            for append, put in (
                (native.append_row, native.put_row),
                (rows.append_row_struct, rows.put_row_struct),
            ):
                monkeypatch.setattr(flow_module, "_APPEND_ROW", counted("append", append))
                monkeypatch.setattr(flow_module, "_PUT_ROW", counted("put", put))
                try:
                    reports.append(dumps(capture_json(analyze_capture(str(path), options))))
                except Exception as exc:  # a capture that cannot be read fails the same way
                    reports.append(f"error: {type(exc).__name__}: {exc}")
            assert reports[0] == reports[1], path.name
    # rows really went through both writers, the ring's included
    assert written["append"] > 2_000 and written["put"] > 1_000
