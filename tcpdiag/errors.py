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
