"""Output safety of packet-derived strings (bad-inputs cases 47-49)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpdiag.sanitize import DEFAULT_MAX_LEN, clean, markup, no_surrogates, xml_text

FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
SURROGATE = re.compile("[\ud800-\udfff]")


def test_terminal_escapes_are_shown_not_executed() -> None:
    out = clean("\x1b[2J\x1b]0;pwn\x07\x9b2J\r\b\u202eabc")
    assert out == "\\x1b[2J\\x1b]0;pwn\\x07\\x9b2J\\x0d\\x08\\u202eabc"


def test_newline_and_tab_are_escaped_too() -> None:
    assert clean("a\nb\tc") == "a\\x0ab\\x09c"


def test_lone_surrogate_becomes_replacement_character() -> None:
    assert clean("a\udcffb") == "a\ufffdb"
    assert clean("a\udcffb", ascii_only=True) == "a?b"


def test_ascii_only_escapes_every_non_ascii_character() -> None:
    assert clean("caf\u00e9 \u2192 \U0001f600", ascii_only=True) == "caf\\xe9 -> \\U0001f600"
    assert clean("a \u2014 1 \u00b5s \u2026", ascii_only=True) == "a -- 1 us ..."
    assert clean("caf\u00e9 \u2192") == "caf\u00e9 \u2192"


def test_length_cap_marks_the_cut() -> None:
    out = clean("x" * 10_000)
    assert out == "x" * DEFAULT_MAX_LEN + "\u2026"
    assert clean("x" * 20, max_len=5, ascii_only=True) == "xxxxx..."
    assert clean("x" * 20, max_len=None) == "x" * 20


def test_markup_escapes_rich_markup() -> None:
    assert markup("[bold red]OK[/]") == "\\[bold red]OK\\[/]"


def test_xml_text_keeps_newlines_and_drops_illegal_characters() -> None:
    assert xml_text("a\nb\x00c\x1bd\ufffe\udc80") == "a\nb\\x00c\\x1bd\\ufffe\ufffd"


def test_no_surrogates_keeps_controls() -> None:
    assert no_surrogates("\x1b\udc80") == "\x1b\ufffd"


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.characters(codec=None), max_size=200)
    | st.text(alphabet=st.sampled_from("a\u2192\ud800\udfff\U0001f600"), max_size=20)
)
def test_no_surrogates_replaces_each_lone_surrogate_and_nothing_else(text: str) -> None:
    out = no_surrogates(text)
    assert out == "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    if out == text:
        assert out is text  # nothing to replace: the same str, not a copy


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=400))
def test_clean_never_lets_a_dangerous_character_through(text: str) -> None:
    out = clean(text)
    assert not FORBIDDEN.search(out)
    assert not SURROGATE.search(out)
    out.encode("utf-8")  # strict: would raise on a surrogate
    ascii_out = clean(text, ascii_only=True)
    assert all(0x20 <= ord(c) <= 0x7E for c in ascii_out)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_clean_on_surrogateescaped_bytes(data: bytes) -> None:
    out = clean(data.decode("utf-8", "surrogateescape"), ascii_only=True)
    assert out.isascii()
    assert not re.search("[\x00-\x1f\x7f]", out)
