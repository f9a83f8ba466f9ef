"""CI smoke run of every fuzz target in `fuzz/` (docs/fuzzing.md has the long runs).

Each target runs a fixed number of executions from a fixed seed: with atheris installed, as the
real libFuzzer binary in a subprocess (`-runs=N -seed=1 -timeout -rss_limit_mb=512`, corpus
generated in a temporary directory); without atheris (or with TCPDIAG_FUZZ_ENGINE=hypothesis),
the same `test_one_input` is driven by hypothesis with byte-level mutations of the target's seeds
and random bytes. Either way the invariant is the target's: only `TcpdiagError` may escape, and
every target's own assertions hold. The seeds themselves are replayed in-process too.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"
# target -> executions in CI (sized to ~5-10 s each on a shared 2-core runner)
RUNS = {
    "fuzz_pcap": 20000,
    "fuzz_pcapng": 20000,
    "fuzz_decode": 30000,
    "fuzz_tls": 6000,
    "fuzz_reassembly": 1500,
    "fuzz_engine": 300,
    "fuzz_render": 400,
    "fuzz_scan": 4000,
}
MAX_LEN = {"fuzz_engine": 65536, "fuzz_pcap": 16384, "fuzz_pcapng": 16384, "fuzz_scan": 16384}
HYPOTHESIS_EXAMPLES = {name: max(60, runs // 40) for name, runs in RUNS.items()}


def _engine() -> str:
    forced = os.environ.get("TCPDIAG_FUZZ_ENGINE")
    if forced:
        return forced
    return "atheris" if importlib.util.find_spec("atheris") is not None else "hypothesis"


def target(name: str) -> ModuleType:
    return importlib.import_module(name)


def test_every_target_is_listed() -> None:
    assert sorted(p.stem for p in FUZZ_DIR.glob("fuzz_*.py")) == sorted(RUNS)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_seeds_replay(name: str) -> None:
    mod = target(name)
    seeds = mod.seeds()
    assert seeds, name
    for data in seeds:
        start = time.process_time()
        mod.test_one_input(data)
        assert time.process_time() - start < 1.0, (name, len(data))
    if name == "fuzz_reassembly":
        assert mod.CHECKED[0] > 0  # the byte-for-byte reassembly check did run
    if name == "fuzz_engine":
        assert len(seeds) >= 20  # real captures were found
    if name == "fuzz_scan":
        assert mod.SEGMENTS_IN_C[0] > 0  # the C block reader decoded segments, not only Python


def _mutants(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    def mutate(seed: bytes) -> st.SearchStrategy[bytes]:
        edits = st.lists(
            st.tuples(st.integers(0, max(0, len(seed))), st.binary(min_size=0, max_size=8),
                      st.integers(0, 8)),
            max_size=6,
        )  # fmt: skip

        def apply(ops: list[tuple[int, bytes, int]]) -> bytes:
            out = bytearray(seed)
            for pos, new, drop in ops:
                out[pos : pos + drop] = new
            return bytes(out)

        return edits.map(apply)

    return st.one_of(
        st.sampled_from(seeds).flatmap(mutate),
        st.binary(max_size=512),
    )


def _hypothesis_run(mod: ModuleType, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(_mutants(mod.seeds()))
    def run(data: bytes) -> None:
        mod.test_one_input(data)

    run()


@pytest.mark.parametrize("name", sorted(RUNS))
def test_fuzz_smoke(name: str, tmp_path: Path) -> None:
    if _engine() == "hypothesis":
        _hypothesis_run(target(name), HYPOTHESIS_EXAMPLES[name])
        return
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    runs = RUNS[name]
    cmd = [
        sys.executable,
        str(FUZZ_DIR / f"{name}.py"),
        f"-runs={runs}",
        "-seed=1",
        "-timeout=10",  # wall clock on a shared runner; the replay tests bound CPU time
        "-rss_limit_mb=512",
        "-print_final_stats=1",
        f"-max_len={MAX_LEN.get(name, 4096)}",
        f"-artifact_prefix={tmp_path}/",
        str(corpus),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    tail = proc.stderr[-3000:]
    assert proc.returncode == 0, tail
    # libFuzzer sometimes counts one run more than asked (its initial empty input): at least
    # the runs asked for must have been done.
    done = re.search(r"Done (\d+) runs", proc.stderr)
    assert done is not None and int(done.group(1)) >= runs, tail
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*")), tail
    peak = re.search(r"peak_rss_mb:\s+(\d+)", proc.stderr)
    assert peak is not None and int(peak.group(1)) < 512, tail
