"""Compiled (mypyc) or pure-Python hot modules, and the switch between them.

`pip install .` compiles the hot modules with mypyc when it can (see `setup.py`): each
`x.py` then has an extension module `x.cpython-*.so` beside it, which Python's import system
prefers. The two give identical results (`tests/unit/test_compiled_equivalence.py`). Set the
environment variable `TCPDIAG_PURE=1` to run the pure-Python source instead: a finder placed
first on `sys.meta_path` loads the `.py` file of every compiled module of the package.

It lives at the package root, beside the compiled `model` that every stage imports, so that the
root package's `__init__` can install the switch before anything imports a compiled module. It is
never compiled itself.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

PURE_ENV = "TCPDIAG_PURE"


def pure_requested() -> bool:
    return os.environ.get(PURE_ENV, "").strip().lower() not in ("", "0", "false", "no")


class _PureFinder:
    """Finds the `.py` source of the listed modules, ahead of the extension-module finder."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names  # fully qualified module name -> path of its .py file

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        source = self.names.get(fullname)
        if source is None or not os.path.exists(source):
            return None
        loader = importlib.machinery.SourceFileLoader(fullname, source)
        return importlib.util.spec_from_file_location(fullname, source, loader=loader)


def use_pure_python(package: str, package_dir: str, modules: Sequence[str]) -> None:
    """With TCPDIAG_PURE set, make `package.<module>` load from source for every module named.

    Call from the package's `__init__` before it imports any of them.
    """
    if not pure_requested():
        return
    names = {f"{package}.{m}": os.path.join(package_dir, f"{m}.py") for m in modules}
    sys.meta_path.insert(0, _PureFinder(names))


def compiled(module: ModuleType) -> bool:
    """True when `module` was loaded from a compiled extension."""
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) or ""
    return origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
