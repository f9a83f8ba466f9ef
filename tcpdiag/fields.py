"""`FieldRecord`: equality and `repr` by named fields, for the plain classes that stand in for
dataclasses in compiled modules (a dataclass there keeps the interpreted `__init__` the
dataclasses module writes, which costs thousands of instructions for every object built). A
subclass names its fields in `FIELDS`; it then compares and prints as the dataclass did.

Compiled with mypyc with the modules whose classes derive from it (a compiled class derives
from compiled classes only)."""

from __future__ import annotations

from typing import ClassVar


class FieldRecord:
    __slots__ = ()

    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.FIELDS)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{type(self).__name__}({inner})"
