"""Escaping of packet-derived strings before they reach a terminal, a file or a CI system.

Every string that came off the wire (SNI, ALPN, alert descriptions, verdicts and messages that
quote them) goes through here on its way out. Shared leaf module: imports no stage.

Why each rule exists (see the project's bad-inputs cases 47-49):

- C0 controls (except tab/newline where a format allows them), DEL and C1 controls (U+0080 to
  U+009F; U+009B is a one-character CSI on many terminals) can move the cursor, clear the screen,
  set the window title or write the clipboard (OSC 52). They are shown as ``\\xNN``.
- Bidi controls (U+202A-U+202E, U+2066-U+2069, U+200E/U+200F, U+061C) reorder what the reader
  sees (Trojan Source). They are shown as ``\\uNNNN``.
- Lone surrogates (from ``surrogateescape`` decoding of non-UTF-8 bytes) cannot be encoded by any
  strict UTF-8 writer; they become U+FFFD.
- A length cap keeps a 64 KiB "SNI" from flooding a report.

Rich markup is not handled here: the text renderer wraps these strings in ``rich.text.Text``,
which never interprets ``[bold]`` or ``:emoji:``. ``markup()`` is for the rare place that builds
a markup string.
"""

from __future__ import annotations

import re

from tcpdiag.surrogates import no_surrogates as no_surrogates

DEFAULT_MAX_LEN = 256

_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Everything a terminal could act on, plus lone surrogates (handled separately below).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f" + _BIDI + "\ud800-\udfff]",
)
_UNSAFE_ASCII = re.compile("[^\x20-\x7e]")
# Plain (ASCII) output spells tcpdiag's own typography the ASCII way instead of escaping it.
_ASCII_FALLBACK = str.maketrans(
    {
        "\u2014": "--",
        "\u2013": "-",
        "\u2192": "->",
        "\u2190": "<-",
        "\u2026": "...",
        "\u00b5": "u",
        "\u00a7": "section ",
        "\u21c4": "<->",
        "\u203a": ">",
        "\u00b1": "+/-",
        "\u00d7": "x",
        "\u00b7": "|",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2265": ">=",
        "\u2264": "<=",
    }
)
# Characters XML 1.0 forbids anywhere, even escaped.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape_char_ascii(match: re.Match[str]) -> str:
    ch = match.group()
    if 0xD800 <= ord(ch) <= 0xDFFF:
        return "?"
    return _escape_char(match)


def clean(text: object, *, max_len: int | None = DEFAULT_MAX_LEN, ascii_only: bool = False) -> str:
    """Return `text` safe to show anywhere: control and bidi characters shown as escapes, lone
    surrogates replaced, at most `max_len` characters (an ellipsis marks the cut).

    `ascii_only=True` also escapes every non-ASCII character (plain output for pipes and logs,
    where no byte 0x80-0x9F may appear even inside a UTF-8 sequence), after spelling common
    typography (dashes, arrows, ellipsis, micro sign) the ASCII way."""
    s = text if isinstance(text, str) else str(text)
    if max_len is not None and len(s) > max_len:
        # Cut before escaping so the cap bounds the work, then mark the cut.
        s = s[:max_len]
        cut = True
    else:
        cut = False
    if ascii_only:
        s = _UNSAFE_ASCII.sub(_escape_char_ascii, s.translate(_ASCII_FALLBACK))
    else:
        s = _UNSAFE.sub(_escape_char, s)
    if cut:
        s += "..." if ascii_only else "\u2026"
    return s


def clean_or_none(
    text: str | None, *, max_len: int | None = DEFAULT_MAX_LEN, ascii_only: bool = False
) -> str | None:
    return None if text is None else clean(text, max_len=max_len, ascii_only=ascii_only)


def markup(text: object, *, max_len: int | None = DEFAULT_MAX_LEN, ascii_only: bool = False) -> str:
    """`clean()` and then escape rich markup, for a string that will be parsed as markup."""
    # Imported here: only the text report parses markup, and rich is slow to import.
    from rich.markup import escape as _rich_escape

    return _rich_escape(clean(text, max_len=max_len, ascii_only=ascii_only))


def xml_text(text: object, *, max_len: int | None = None) -> str:
    """Text that an XML 1.0 document may contain (the serializer escapes ``<&>"``): characters
    XML forbids are shown as escapes, lone surrogates as U+FFFD. Other controls are escaped too
    so that a CI page never shows them raw."""
    s = text if isinstance(text, str) else str(text)
    if max_len is not None and len(s) > max_len:
        s = s[:max_len] + "\u2026"
    s = _XML_ILLEGAL.sub(_escape_char, s)
    return _UNSAFE.sub(lambda m: m.group() if m.group() in "\t\n\r" else _escape_char(m), s)
