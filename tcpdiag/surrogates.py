"""Lone surrogates out of text bound for a structured format (JSON, SARIF).

A leaf of its own rather than part of `sanitize`: the compiled JSON writer imports it, and mypyc
type-checks everything a compiled module imports, where `sanitize`'s lazy `rich` import cannot
be resolved (an isolated build environment has no `rich`).
"""

from __future__ import annotations

import re
from typing import Final

_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def no_surrogates(text: str) -> str:
    """Replace lone surrogates (which strict UTF-8 encoders and JSON parsers reject) with U+FFFD,
    keeping everything else: for structured formats that escape control characters themselves."""
    # UTF-8 encodes every str but one with a lone surrogate: the C encoder tells a third as fast
    # as the regular expression, which goes through every char of a finding's message (most
    # have a non-ASCII "→" or "—"), and almost no text has one.
    try:
        text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text
