"""The only exceptions tcpdiag raises on purpose.

Odd traffic is never an exception (it becomes an event, then a finding). Inside a parser only
`DecodeError` is raised; the stage boundary turns it into a finding. `CaptureError` means a file
cannot be read at all (exit 2). Anything else escaping is a bug.
"""


class TcpdiagError(Exception):
    """Base class of every error tcpdiag raises deliberately."""


class CaptureError(TcpdiagError):
    """The input cannot be read at all: not a capture, empty, unreadable header."""


class DecodeError(TcpdiagError):
    """Bytes that do not parse as the structure they should be."""


class ConfigError(TcpdiagError):
    """A configuration file or option that cannot be used."""


# Here rather than in findings/registry.py, which mypyc compiles: a compiled class cannot derive
# from KeyError.
class UnknownFinding(KeyError):
    """A finding name that is not in the registry (a bug in a rule, or a typo by a user);
    `suggestions`: registered names close to it ("did you mean")."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.suggestions = suggestions

    def __str__(self) -> str:
        hint = f" (did you mean {', '.join(self.suggestions)}?)" if self.suggestions else ""
        return f"unknown finding {self.name!r}{hint}"
