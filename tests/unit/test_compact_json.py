"""The C writer of compact JSON (`report/_compact.c`) against the json module's encoder it
replaces in `report/json.py`'s `dumps` (`_COMPACT.encode`).

Built here from the source (an editable install has no extensions, see `tests/cbuild.py`).
For a document of exact dicts (str keys), lists, tuples, strs, ints, finite floats, booleans
and None it must give `_COMPACT.encode`'s text, byte for byte; for anything else it must return
NotImplemented without an error, and `dumps` then gives json's text or raises json's error.
"""

from __future__ import annotations

import enum
import json
import math
import random
import struct
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tcpdiag.report.json as report_json
from tcpdiag.engine import analyze_capture
from tcpdiag.report.json import _COMPACT, capture_json, flow_json, render_json, render_jsonl
from tcpdiag.report.options import ReportOptions
from tcpdiag.result import AnalysisResult
from tests.capture_files import OWN
from tests.cbuild import REPO, build_extension, load_extension

SOURCE = REPO / "tcpdiag" / "report" / "_compact.c"
NAME = "tcpdiag.report._compact"


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    path = build_extension(SOURCE, NAME, tmp_path_factory.mktemp("compact"))
    return load_extension(path, NAME)


# Every kind of str the C reads (1, 2 and 4 bytes a char), with what needs escaping made
# common: control characters, '"', '\\', DEL, lone surrogates, chars beyond U+FFFF.
CHARS = st.one_of(
    st.characters(codec=None),
    st.characters(max_codepoint=0x7F),
    st.sampled_from('"\\\b\f\n\r\t\x00\x1f\x7f\x80\xff\u0100\ufffe\uffff'),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.characters(min_codepoint=0x10000),
)
TEXT = st.text(CHARS) | st.text(st.characters(max_codepoint=0x7F), max_size=200)
EDGE_FLOATS = [-0.0, 0.0, 1e16, 1e15, 9999999999999998.0, 5e-324, 1e-5, 1e-4, 0.1, 1e22, 1e23]
EDGE_FLOATS += [1.7976931348623157e308, -1.7976931348623157e308, 2.2250738585072014e-308]
FLOATS = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(EDGE_FLOATS)
EDGE_INTS = [0, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, -(2**64), 10**19]
INTS = st.integers() | st.integers(-(2**300), 2**300) | st.sampled_from(EDGE_INTS)
LEAVES = st.none() | st.booleans() | INTS | FLOATS | TEXT
DOCUMENTS = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.lists(inner, max_size=6).map(tuple)
        | st.dictionaries(TEXT, inner, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=500, deadline=None)
@given(doc=DOCUMENTS)
def test_documents_are_written_as_json_writes_them(native: ModuleType, doc: object) -> None:
    assert native.dumps(doc) == _COMPACT.encode(doc)


@settings(max_examples=300, deadline=None)
@given(text=st.text(CHARS, max_size=3000), ascii_text=st.text(st.characters(max_codepoint=0x7F)))
def test_strs_are_escaped_as_json_escapes_them(
    native: ModuleType, text: str, ascii_text: str
) -> None:
    for s in (text, ascii_text, text * 3, ascii_text * 40):  # and beyond the stack buffer
        assert native.dumps(s) == _COMPACT.encode(s) == json.dumps(s)
        assert native.dumps({s: [s]}) == _COMPACT.encode({s: [s]})


def test_an_escape_anywhere_in_a_plain_run_is_found(native: ModuleType) -> None:
    # The ASCII path looks at 8 chars at a time: every escaped char at every place in and
    # around a word, and next to the chars just beside the ranges it tests for.
    special = [chr(c) for c in (*range(0x20), 0x22, 0x5C, 0x7F)]
    plain = [" ", "!", "#", "[", "]", "~", "a"]
    for length in range(0, 26):
        for at in range(length):
            for c in special + plain:
                for filler in ("a", "~", " "):
                    s = filler * at + c + filler * (length - at - 1)
                    assert native.dumps(s) == _COMPACT.encode(s), (s, at)


def test_every_char_is_escaped_as_json_escapes_it(native: ModuleType) -> None:
    chars = [chr(c) for c in range(0x110000)]
    for start in range(0, len(chars), 4096):
        block = chars[start : start + 4096]
        assert native.dumps(block) == _COMPACT.encode(block), hex(start)
    assert native.dumps("\x7f\x1f\ud800\U0001f600") == r'"\u007f\u001f\ud800\ud83d\ude00"'


@pytest.mark.parametrize("value", [*EDGE_FLOATS, *EDGE_INTS, 10**4000, -(10**4000)])
def test_numbers_are_their_repr(native: ModuleType, value: object) -> None:
    assert native.dumps(value) == repr(value) == _COMPACT.encode(value)


# The doubles `_compact.c` writes without dtoa (`shortest`), as reports have them, and the ones
# where its search is most likely to go wrong: two decimals equally near (short binary
# fractions: dtoa keeps the even digit), powers of two (the lower neighbour is nearer), the
# neighbours of powers of ten (the digit count changes), the edges of its 128-bit range.
def _doubles(rng: random.Random) -> dict[str, Callable[[], float]]:
    def bits(n: int) -> int:
        return rng.getrandbits(n)

    return {
        "capture time, ns": lambda: (1_790_000_000_000_000_000 + bits(50)) / 1e9,
        "capture time, us": lambda: (1_790_000_000_000_000 + bits(36)) / 1e6,
        "difference of times": lambda: (
            (1_790_000_000_000_000 + bits(30)) / 1e6 - (1_790_000_000_000_000 + bits(20)) / 1e6
        ),
        "duration": lambda: bits(30) / 1e9,
        "fraction": rng.random,
        "any magnitude": lambda: rng.random() * 10.0 ** rng.randint(-9, 17),
        "rounded": lambda: round(rng.random() * 10.0 ** rng.randint(-8, 15), rng.randint(0, 10)),
        "short binary fraction": lambda: bits(rng.randint(1, 24)) * 2.0 ** -rng.randint(0, 60),
        "float32": lambda: struct.unpack("f", struct.pack("I", bits(32)))[0],
        "power of two": lambda: 2.0 ** rng.randint(-70, 60),
        "whole number": lambda: float(bits(rng.randint(1, 60))),
        "next to a power of ten": lambda: math.nextafter(
            10.0 ** rng.randint(-10, 20), rng.choice((0.0, math.inf))
        ),
        "any bits": lambda: struct.unpack("d", struct.pack("Q", bits(64)))[0],
    }


@pytest.mark.parametrize("kind", list(_doubles(random.Random(0))))
def test_floats_are_their_repr(native: ModuleType, kind: str) -> None:
    make = _doubles(random.Random(kind))[kind]
    values = [v for v in (make() for _ in range(20_000)) if math.isfinite(v)]
    for v in values:
        assert native.dumps(v) == repr(v), v
        assert native.dumps(-v) == repr(-v), -v
    assert native.dumps(values) == _COMPACT.encode(values)


def test_every_power_of_two_and_its_neighbours_is_its_repr(native: ModuleType) -> None:
    for e in range(-1074, 1024):
        x = 2.0**e
        for v in (x, math.nextafter(x, 0.0), math.nextafter(x, math.inf)):
            if math.isfinite(v):
                assert native.dumps(v) == repr(v), v


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.9802322387695312e-05, "2.9802322387695312e-05"),  # 125 * 2^-22: ...3125, even 2
        (0.0000298023223876953125 * 3, "8.940696716308594e-05"),
        (1.0, "1.0"),
        (0.5, "0.5"),
        (1024.0, "1024.0"),
        (0.1, "0.1"),
        (1e-4, "0.0001"),
        (1e-5, "1e-05"),
        (1790000000.0009742, "1790000000.0009742"),
        (123456789012345.6, "123456789012345.6"),
        (4503599627370495.5, "4503599627370495.5"),
        (1e15, "1000000000000000.0"),
        (-0.0, "-0.0"),
    ],
)
def test_float_texts(native: ModuleType, value: float, text: str) -> None:
    assert native.dumps(value) == text == repr(value)


def test_empty_and_nested_containers(native: ModuleType) -> None:
    docs: list[object] = [
        {},
        [],
        (),
        [{}],
        {"a": []},
        [[[]], ()],
        {"": {"": ""}},
        [None, True, False],
    ]
    for doc in docs:
        assert native.dumps(doc) == _COMPACT.encode(doc)
    assert native.dumps({"b": 1, "a": (2, 3.5)}) == '{"b":1,"a":[2,3.5]}'  # insertion order


def test_long_documents_grow_the_buffer(native: ModuleType) -> None:
    doc = {f"k{i}": ["\u00e9" * i, i * 1.1, -i, {"\ud83d": None}] for i in range(3000)}
    assert native.dumps(doc) == _COMPACT.encode(doc)
    big = ["x" * 100_000, "\n" * 50_000, "\U0001f600" * 20_000]
    assert native.dumps(big) == _COMPACT.encode(big)


def test_nesting_up_to_the_limit_is_written(native: ModuleType) -> None:
    doc: object = 1
    for level in range(native.MAX_DEPTH):
        doc = [doc] if level % 2 else {"k": doc}
    assert native.dumps(doc) == _COMPACT.encode(doc)
    assert native.dumps([doc]) is NotImplemented


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


class Thing:
    pass


def _nested(depth: int) -> object:
    doc: object = []
    for _ in range(depth):
        doc = [doc]
    return doc


REFUSED: list[object] = [
    Level.HIGH,
    [1, Level.HIGH],
    Name("x"),
    {"a": Name("x")},
    {Name("k"): 1},
    {1: "int key"},
    {True: "bool key"},
    {1.5: "float key"},
    {None: "None key"},
    {"ok": 1, 2: "a non-str key after others"},
    float("nan"),
    float("inf"),
    -float("inf"),
    [1.0, float("nan")],
    {1, 2},
    frozenset(),
    _nested(1000),
    Thing(),
    b"bytes",
    OrderedDict(a=1),
    type("MyList", (list,), {})([1]),
    type("MyFloat", (float,), {})(1.5),
    type("MyInt", (int,), {})(7),
    {"big": "x" * 10_000, "then": float("nan")},  # refused after the buffer went to the heap
    10**5000,  # beyond int's str digits limit: json raises ValueError
]


def _outcome(encode: Callable[[object], str], doc: object) -> tuple[str, str]:
    try:
        return ("text", encode(doc))
    except Exception as exc:
        return ("error", type(exc).__name__)


@pytest.mark.parametrize("doc", REFUSED, ids=[type(d).__name__ for d in REFUSED])
def test_what_is_not_plain_json_is_left_to_the_json_module(
    native: ModuleType, doc: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert native.dumps(doc) is NotImplemented  # returned, no exception raised
    monkeypatch.setattr(report_json, "_C_DUMPS", native.dumps)
    assert _outcome(report_json.dumps, doc) == _outcome(_COMPACT.encode, doc)


def test_json_errors_are_raised_through_dumps(
    native: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report_json, "_C_DUMPS", native.dumps)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        report_json.dumps({"rtt": float("nan")})
    with pytest.raises(TypeError, match="not JSON serializable"):
        report_json.dumps([Thing()])
    with pytest.raises(RecursionError):
        report_json.dumps(_nested(sys.getrecursionlimit() + 10))
    assert report_json.dumps({"level": Level.HIGH, Name("k"): Name("v")}) == '{"level":3,"k":"v"}'
    assert report_json.dumps({1: 2.5}) == '{"1":2.5}'


def test_dumps_uses_the_c_module_when_it_is_built(
    native: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, NAME, native)
    monkeypatch.delenv("TCPDIAG_PURE", raising=False)
    assert report_json._native_dumps() is native.dumps
    monkeypatch.setenv("TCPDIAG_PURE", "1")
    assert report_json._native_dumps() is None


def test_a_report_is_written_the_same(native: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """The project's captures: every flow's object, and whole reports through `dumps`."""
    captures = [analyze_capture(str(p)) for p in sorted(OWN.glob("*.pcap*"))]
    flows = [flow_json(f) for cap in captures for f in cap.flows]
    assert len(flows) > 40 and any(doc["tls"] is not None for doc in flows)
    assert any(doc["findings"] for doc in flows)
    for doc in [*flows, *(capture_json(cap) for cap in captures)]:
        text = native.dumps(doc)
        assert text is not NotImplemented  # a report is plain JSON: the C writes it all
        assert text == _COMPACT.encode(doc)
    result = AnalysisResult("test", captures)
    options = ReportOptions()
    reports: list[tuple[str, str]] = []
    for dumps in (native.dumps, None):
        monkeypatch.setattr(report_json, "_C_DUMPS", dumps)
        reports.append((render_json(result, options), render_jsonl(result, options)))
    assert reports[0] == reports[1]


def test_the_report_of_a_path_is_escaped_the_same(native: ModuleType) -> None:
    odd = Path('caps/\u00e9t\u00e9 "q"\\\t\U0001f600.pcap')
    doc = {"path": str(odd), "flows": [], "first_time": 1790000000.0000188}
    assert native.dumps(doc) == _COMPACT.encode(doc)
