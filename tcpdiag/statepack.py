"""An object graph of plain classes packed into one bytes object, and unpacked into an equal one.

Why: a connection that has been silent for a while (`flow/table.py`, IDLE_COMPACT) may stay
silent until the end of the capture, and its TLS stream is a few hundred small objects (~8 KB:
hellos, record notes, labels, the framers). Packed, the same state is one bytes object of a
quarter of that (~2 KB), unpacked when the connection wakes up or ends. A long capture of
mostly idle keep-alive connections then holds far less per connection.

How: `StatePacker` knows the classes it may meet, each with a factory making a blank instance
(compiled classes cannot be made without calling their `__init__`); their fields come from the
class (`__mypyc_attrs__` compiled, `__slots__` otherwise) or, for a class without slots, from
the instance's `__dict__` (names then travel with the values). The graph becomes nested tuples
of tags and values that `pickle` writes (atoms and tuples only: no class is named in it; pickle
writes small ints in one or two bytes where marshal takes five). Identity is kept: a list, dict,
buffer or object reached twice is unpacked as one object reached twice (mutable objects are
numbered in the order first met, the same when packing and unpacking, so the numbers are not
written). Enum members and module-level functions are kept by reference (`Packed.refs`), the
same objects after unpacking. (A set is rebuilt from its members: equal, though its iteration
order may differ; the TLS stream holds none.)

Anything else (an instance of a class it does not know, a bound method, a closure, a
memoryview) makes `pack` give up and return None: the caller keeps the live graph, which is
always correct. Unpacking gives an equal graph, so the analysis goes on exactly as if nothing
happened (`tests/unit/test_statepack.py` proves it on every capture, packing every stream after
every packet).
"""

from __future__ import annotations

import pickle
import types
from array import array
from collections import deque
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Final

PICKLE_PROTOCOL: Final = 5

# Tags of the packed tree: every packed value that is not an atom (None, bool, int, float, str,
# bytes) is a tuple starting with one of these.
_TUPLE: Final = 0
_LIST: Final = 1
_DICT: Final = 2
_BYTEARRAY: Final = 3
_DEQUE: Final = 4
_ARRAY: Final = 5
_OBJECT: Final = 6  # fields of the class, in order
_NAMED: Final = 7  # an object of a class without slots: (name, value) pairs
_SEEN: Final = 8  # the mutable object numbered so, already unpacked
_REF: Final = 9  # an entry of `Packed.refs`
_SET: Final = 10
_FROZENSET: Final = 11
_UNSET: Final = 12  # a field never assigned

_ATOMS: Final = frozenset({type(None), bool, int, float, str, bytes})


class _GiveUp(Exception):
    """The graph holds something that cannot be packed exactly."""


class Packed:
    """A packed graph: `blob` (pickled tree) and the objects kept by reference."""

    __slots__ = ("blob", "refs")

    def __init__(self, blob: bytes, refs: tuple[object, ...]) -> None:
        self.blob = blob
        self.refs = refs


def _class_fields(cls: type) -> tuple[str, ...] | None:
    """The attribute names of `cls`'s instances, or None when they have a `__dict__`."""
    native = cls.__dict__.get("__mypyc_attrs__")
    if native is not None:
        return tuple(native)
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        names.extend(s for s in slots if s not in ("__dict__", "__weakref__"))
        if klass is not object and "__slots__" not in klass.__dict__:
            return None  # a class without slots in the hierarchy: instances have a __dict__
    return tuple(names)


def _by_reference(value: object) -> bool:
    """Objects that are the same for everyone, so a reference to them is exact: enum members,
    classes, and functions that close over nothing."""
    if isinstance(value, (Enum, type)):  # a tuple: compiled, a union is built per call
        return True
    if isinstance(value, types.FunctionType):
        return value.__closure__ is None
    if isinstance(value, types.BuiltinFunctionType):  # a C (or compiled) module function
        owner = value.__self__
        return owner is None or isinstance(owner, types.ModuleType)
    return False


class StatePacker:
    """Packs and unpacks graphs made of atoms, containers and instances of `factories`' classes
    (each factory makes a blank instance whose fields are then all set)."""

    def __init__(self, factories: Mapping[type, Callable[[], object]]) -> None:
        self._classes = list(factories)
        self._numbers = {cls: i for i, cls in enumerate(self._classes)}
        self._factories = [factories[cls] for cls in self._classes]
        self._fields = [_class_fields(cls) for cls in self._classes]

    def pack(self, root: object) -> Packed | None:
        """`root`'s graph packed, or None when it holds something that cannot be packed."""
        packing = _Packing(self._numbers, self._fields)
        try:
            tree = packing.value(root)
        except _GiveUp:
            return None
        return Packed(pickle.dumps(tree, PICKLE_PROTOCOL), tuple(packing.refs))

    def unpack(self, packed: Packed) -> object:
        """A new graph equal to the one packed."""
        unpacking = _Unpacking(self._factories, self._fields, packed.refs)
        return unpacking.value(pickle.loads(packed.blob))  # (made by pack)


class _Packing:
    def __init__(self, numbers: dict[type, int], fields: list[tuple[str, ...] | None]) -> None:
        self.numbers = numbers
        self.fields = fields
        self.seen: dict[int, int] = {}  # id of a mutable object -> its number
        self.keep: list[object] = []  # those objects, alive while packing (ids stay unique)
        self.refs: list[object] = []
        self.ref_numbers: dict[int, int] = {}

    def _number(self, obj: object) -> int:
        number = len(self.keep)
        self.seen[id(obj)] = number
        self.keep.append(obj)
        return number

    def value(self, obj: object) -> Any:
        kind = type(obj)
        if kind in _ATOMS:
            return obj
        if kind is tuple:
            assert isinstance(obj, tuple)
            return (_TUPLE, *[self.value(item) for item in obj])
        number = self.seen.get(id(obj))
        if number is not None:
            return (_SEEN, number)
        if kind is list:
            assert isinstance(obj, list)
            self._number(obj)
            return (_LIST, *[self.value(item) for item in obj])
        if kind is dict:
            assert isinstance(obj, dict)
            self._number(obj)
            out: list[Any] = [_DICT]
            for key, item in obj.items():
                out.append(self.value(key))
                out.append(self.value(item))
            return tuple(out)
        if kind is bytearray:
            assert isinstance(obj, bytearray)
            self._number(obj)
            return (_BYTEARRAY, bytes(obj))
        if kind is deque:
            assert isinstance(obj, deque)
            self._number(obj)
            return (_DEQUE, obj.maxlen, *[self.value(i) for i in obj])
        if kind is array:
            assert isinstance(obj, array)
            self._number(obj)
            return (_ARRAY, obj.typecode, obj.tobytes())
        if kind is set or kind is frozenset:
            assert isinstance(obj, set | frozenset)
            tag = _SET if kind is set else _FROZENSET
            self._number(obj)
            return (tag, *[self.value(i) for i in obj])
        cls_number = self.numbers.get(kind)
        if cls_number is not None:
            return self._object(obj, cls_number)
        if _by_reference(obj):
            ref = self.ref_numbers.get(id(obj))
            if ref is None:
                ref = self.ref_numbers[id(obj)] = len(self.refs)
                self.refs.append(obj)
            return (_REF, ref)
        raise _GiveUp(kind.__name__)

    def _object(self, obj: object, cls_number: int) -> tuple[Any, ...]:
        self._number(obj)
        fields = self.fields[cls_number]
        if fields is None:
            out: list[Any] = [_NAMED, cls_number]
            for name, item in vars(obj).items():
                out.append(name)
                out.append(self.value(item))
            return tuple(out)
        out = [_OBJECT, cls_number]
        for name in fields:
            try:
                item = getattr(obj, name)
            except AttributeError:
                out.append((_UNSET,))
                continue
            out.append(self.value(item))
        return tuple(out)


class _Unpacking:
    def __init__(
        self,
        factories: list[Callable[[], object]],
        fields: list[tuple[str, ...] | None],
        refs: tuple[object, ...],
    ) -> None:
        self.factories = factories
        self.fields = fields
        self.refs = refs
        self.made: list[object] = []  # the mutable objects, numbered as when packing

    def value(self, tree: Any) -> Any:
        if type(tree) is not tuple:
            return tree
        tag = tree[0]
        if tag == _TUPLE:
            return tuple([self.value(item) for item in tree[1:]])
        if tag == _SEEN:
            return self.made[tree[1]]
        if tag == _REF:
            return self.refs[tree[1]]
        made = self.made
        if tag == _LIST:
            items: list[Any] = []
            made.append(items)
            items.extend([self.value(item) for item in tree[1:]])
            return items
        if tag == _DICT:
            mapping: dict[Any, Any] = {}
            made.append(mapping)
            for i in range(1, len(tree), 2):
                mapping[self.value(tree[i])] = self.value(tree[i + 1])
            return mapping
        if tag == _BYTEARRAY:
            buffer = bytearray(tree[1])
            made.append(buffer)
            return buffer
        if tag == _DEQUE:
            queue: deque[Any] = deque(maxlen=tree[1])
            made.append(queue)
            queue.extend([self.value(item) for item in tree[2:]])
            return queue
        if tag == _ARRAY:
            numbers = array(tree[1])
            numbers.frombytes(tree[2])
            made.append(numbers)
            return numbers
        if tag in (_SET, _FROZENSET):
            number = len(made)
            made.append(None)  # numbered before its members, as when packing
            members = [self.value(item) for item in tree[1:]]
            collection: set[Any] | frozenset[Any] = (
                set(members) if tag == _SET else frozenset(members)
            )
            made[number] = collection
            return collection
        return self._object(tree)

    def _object(self, tree: tuple[Any, ...]) -> object:
        tag, cls_number = tree[0], tree[1]
        obj = self.factories[cls_number]()
        self.made.append(obj)
        if tag == _NAMED:
            for i in range(2, len(tree), 2):
                setattr(obj, tree[i], self.value(tree[i + 1]))
            return obj
        fields = self.fields[cls_number]
        assert fields is not None
        for name, item in zip(fields, tree[2:], strict=True):
            if type(item) is tuple and item[0] == _UNSET:
                continue
            setattr(obj, name, self.value(item))
        return obj
