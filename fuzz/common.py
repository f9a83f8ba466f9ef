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
import sys
from collections.abc import Callable, Iterator
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
