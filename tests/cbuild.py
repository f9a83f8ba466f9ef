"""Builds one hand-written C extension of tcpdiag (`decode/_scan.c`, `flow/_rows.c`,
`report/_compact.c`) alone, for the tests that compare it with its Python twin: an editable
install has no compiled extensions, so those tests compile the source with the C compiler into
a temporary directory (a second or two) and load it from there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest

from tests.modules import load_file

REPO = Path(__file__).resolve().parents[1]


# Extra compiler flags for every build here, e.g. "-g -fsanitize=address,undefined"
# (`test_c_sanitized.py` runs the C modules' tests so; docs/fuzzing.md).
CFLAGS_ENV = "TCPDIAG_TEST_CFLAGS"
# Set to "1" by `test_c_sanitized.py`: a build must then really hold the sanitizer's checks.
SANITIZED_ENV = "TCPDIAG_TEST_SANITIZED"


def build_extension(source: Path, module_name: str, directory: Path) -> Path:
    """Compile `source` to the extension `module_name` (dotted) in `directory`; its path."""
    compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip(f"no C compiler to build {source.name}")
    leaf = module_name.rpartition(".")[2]
    target = directory / (leaf + str(sysconfig.get_config_var("EXT_SUFFIX")))
    include = sysconfig.get_paths()["include"]
    command = [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", f"-I{include}"]
    command += os.environ.get(CFLAGS_ENV, "").split()
    subprocess.run([*command, str(source), "-o", str(target)], check=True, capture_output=True)
    if os.environ.get(SANITIZED_ENV) == "1":
        assert b"__asan_report_load" in target.read_bytes(), f"{source.name} built without ASan"
    return target


def load_extension(path: Path, module_name: str) -> ModuleType:
    return load_file(path, module_name)


def scan_module(directory: Path) -> ModuleType:
    """`decode/_scan.c` built alone, configured with the model's record types."""
    from tcpdiag.model import NO_OPTIONS, RawPacket, Segment, TcpOptions

    source = REPO / "tcpdiag" / "decode" / "_scan.c"
    module = load_extension(build_extension(source, "tcpdiag.decode._scan", directory), "_scan")
    module.configure(RawPacket, Segment, TcpOptions, NO_OPTIONS)
    return module


def ring_module(directory: Path) -> ModuleType:
    """`capture/_ring.c` built alone; the calling test is skipped where rings do not exist."""
    source = REPO / "tcpdiag" / "capture" / "_ring.c"
    module = load_extension(build_extension(source, "tcpdiag.capture._ring", directory), "_ring")
    if not module.AVAILABLE:
        pytest.skip("packet rings are Linux's")
    return module
