"""Shared plumbing of the atheris fuzz targets in this directory (see docs/fuzzing.md).

Each target module defines `test_one_input(data: bytes) -> None` and `seeds() -> list[bytes]`
and ends with `if __name__ == "__main__": common.main(test_one_input, seeds)`.

Run as a script, a target is an atheris/libFuzzer binary; every libFuzzer flag works:

    python fuzz/fuzz_pcap.py -runs=1000000 -timeout=1 -rss_limit_mb=512 /tmp/corpus-pcap

An empty corpus directory given on the command line is first filled with the target's seeds
(built at run time; real captures are read from their place, never copied into the repository).
Imported (by tests/fuzz/test_fuzz_smoke.py), a target is a plain function to drive with
hypothesis or to replay regression inputs through.

The invariant every target enforces (bad-inputs F1): the only exception that may escape tcpdiag
is a `tcpdiag.errors.TcpdiagError`; anything else propagates and is a crash. Hangs (-timeout)
and memory (-rss_limit_mb) are libFuzzer's to catch.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
ROOT = FUZZ_DIR.parent
# Seed captures: read in place at run time (never copied into the repository).
SEED_DIRS = (ROOT.parent / "shared" / "captures" / "public", ROOT / "captures")
SEED_MAX_BYTES = 64 << 10
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz", ".zst")

if str(ROOT) not in sys.path:  # tests/hostile/packets.py builds the crafted seeds
    sys.path.insert(0, str(ROOT))


def _fuzzing() -> bool:
    """True when a target runs as the fuzzer (a script in this directory), not under pytest."""
    try:
        return Path(sys.argv[0]).resolve().parent == FUZZ_DIR
    except (IndexError, OSError):
        return False


FUZZING = _fuzzing()


def instrumented() -> contextlib.AbstractContextManager[object]:
    """Wrap the target's tcpdiag imports: coverage-instrumented when fuzzing with atheris."""
    if FUZZING:
        try:
            import atheris
        except ImportError:
            return contextlib.nullcontext()
        return atheris.instrument_imports(include=["tcpdiag"])  # type: ignore[no-any-return]
    return contextlib.nullcontext()


def capture_files(max_bytes: int = SEED_MAX_BYTES) -> list[Path]:
    """Real captures from the seed directories, small enough to mutate usefully."""
    out: list[Path] = []
    for directory in SEED_DIRS:
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*")):
            if (
                path.is_file()
                and path.name.endswith(CAPTURE_SUFFIXES)
                and path.stat().st_size <= max_bytes
            ):
                out.append(path)
    return out


def capture_seeds(max_bytes: int = SEED_MAX_BYTES) -> list[bytes]:
    return [p.read_bytes() for p in capture_files(max_bytes)]


def write_seeds(directory: Path, seeds: list[bytes]) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    for data in seeds:
        name = hashlib.sha1(data).hexdigest()
        (directory / name).write_bytes(data)
    return len(seeds)


def chunks(data: bytes, sizes: bytes) -> Iterator[bytes]:
    """Cut `data` into pieces whose sizes come from `sizes` (cycled; each 1..256)."""
    pos = i = 0
    while pos < len(data):
        n = (sizes[i % len(sizes)] + 1) if sizes else len(data)
        yield data[pos : pos + n]
        pos += n
        i += 1


def main(test_one_input: Callable[[bytes], None], seeds: Callable[[], list[bytes]]) -> None:
    import atheris

    argv = list(sys.argv)
    for arg in argv[1:]:
        if not arg.startswith("-") and os.path.isdir(arg) and not os.listdir(arg):
            count = write_seeds(Path(arg), seeds())
            print(f"#seeds: wrote {count} seed inputs to {arg}", file=sys.stderr)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


# -- C code built for a target (fuzz_scan) and its sanitized runs -------------------------------


def c_compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")


def build_library(
    source: Path, flags: Sequence[str], name: str, libraries: Sequence[str] = ()
) -> Path:
    """`source` compiled to the shared library `name` in `cache_dir()`, under a key of the
    command and the source text: a restarted fuzzer or a replayed artifact reuses it, an edited
    source is rebuilt."""
    compiler = c_compiler()
    if compiler is None:
        raise RuntimeError(f"no C compiler to build {source}")
    command = [compiler, *flags]
    key = hashlib.sha256(repr(command).encode() + source.read_bytes()).hexdigest()[:16]
    target = cache_dir() / key / name
    if target.exists():
        return target
    target.parent.mkdir(exist_ok=True)
    # Built under a name of this process, then renamed: two processes building at once
    # (pytest -n 2) never load a half-written library.
    partial = target.with_name(f"partial-{os.getpid()}-{name}")
    # Without LD_PRELOAD: the runtimes preloaded into a sanitized fuzzer are not for gcc.
    env = {var: value for var, value in os.environ.items() if var != "LD_PRELOAD"}
    command += [str(source), "-o", str(partial), *libraries]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building {source} failed:\n{done.stderr}")
    os.replace(partial, target)
    return target


def cache_dir() -> Path:
    """A directory only this user can write: on a shared /tmp nobody else may plant a library
    that a fuzzer loads (else a fresh directory, built into anew)."""
    path = Path(tempfile.gettempdir()) / f"tcpdiag-fuzz-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022:
        return path
    return Path(tempfile.mkdtemp(prefix="tcpdiag-fuzz-"))


# gcc's libasan.so defines weak, empty `__sanitizer_cov_*` functions. Preloaded (ASan must be in
# the process before the instrumented extension), they win symbol lookup over the ones of
# atheris' libFuzzer, so atheris registers its Python coverage with nobody: libFuzzer then sees
# no coverage at all and mutates a 1-byte input blindly. Preloaded first, this shim hands those
# calls to the library that made them (atheris' libFuzzer core).
COVERAGE_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>

static void *callers(const void *caller, const char *name) {
    Dl_info info;
    if (!dladdr(caller, &info) || info.dli_fname == NULL) return NULL;
    void *handle = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
    return handle ? dlsym(handle, name) : NULL;
}

#define FORWARD(name, params, args)                                                        \
    void name params {                                                                     \
        static void(*real) params;                                                         \
        if (real == NULL) real = (void(*) params)callers(__builtin_return_address(0), #name); \
        if (real != NULL && real != name) real args;                                       \
    }

FORWARD(__sanitizer_cov_8bit_counters_init, (uint8_t *start, uint8_t *stop), (start, stop))
FORWARD(__sanitizer_cov_pcs_init, (const uintptr_t *start, const uintptr_t *stop), (start, stop))
FORWARD(__sanitizer_cov_trace_cmp8, (uint64_t a, uint64_t b), (a, b))
FORWARD(__sanitizer_cov_trace_const_cmp8, (uint64_t a, uint64_t b), (a, b))
"""


def sanitizer_preload() -> str:
    """LD_PRELOAD for a fuzzer whose C extension is built with gcc's
    `-fsanitize=address,undefined`: the coverage shim, then gcc's ASan and UBSan runtimes (run
    with ASAN_OPTIONS=verify_asan_link_order=0: ASan is second, on purpose)."""
    compiler = c_compiler()
    if compiler is None:
        raise RuntimeError("no C compiler")
    source = cache_dir() / "coverage_shim.c"
    if not source.exists() or source.read_text() != COVERAGE_SHIM:
        source.write_text(COVERAGE_SHIM)
    flags = ("-shared", "-fPIC", "-O2", "-Wall", "-Werror")
    shim = build_library(source, flags, "coverage_shim.so", ("-ldl",))
    runtimes = [_runtime(compiler, name) for name in ("libasan.so", "libubsan.so")]
    return " ".join([str(shim), *runtimes])


def _runtime(compiler: str, name: str) -> str:
    found = subprocess.run(
        [compiler, f"-print-file-name={name}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not os.path.isabs(found):
        raise RuntimeError(f"{compiler} ships no {name}")
    return found


if __name__ == "__main__" and sys.argv[1:] == ["sanitizer-preload"]:
    print(sanitizer_preload())
