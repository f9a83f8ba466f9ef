"""Loading a module from a file that is not on the import path (benchmark scripts, setup.py,
C extensions built for a test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_file(path: Path, module_name: str, *, register: bool = False) -> ModuleType:
    """Execute `path` as module `module_name`. `register` enters it in `sys.modules` first
    (dataclasses look their module up there while the module is being executed)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
