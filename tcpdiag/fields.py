"""Equality and `repr` by named fields, for the plain classes that stand in for dataclasses in
compiled modules (a dataclass there keeps the interpreted `__init__` the dataclasses module
writes, which costs thousands of instructions for every object built): they compare and print
as the dataclasses did."""

from __future__ import annotations


def same_fields(a: object, b: object, names: tuple[str, ...]) -> bool:
    return all(getattr(a, name) == getattr(b, name) for name in names)


def fields_repr(obj: object, names: tuple[str, ...]) -> str:
    inner = ", ".join(f"{name}={getattr(obj, name)!r}" for name in names)
    return f"{type(obj).__name__}({inner})"
