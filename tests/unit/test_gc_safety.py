"""The engine's safety net for reference cycles (`engine._gc_safety`): the cyclic collector is
off during a batch analysis; the engine collects only when the collector's heap has grown past
what was live and past `_GC_FLOOR` objects. Cyclic garbage is then found, and a capture whose
heap stays level is never walked."""

from __future__ import annotations

import dataclasses
import gc
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tcpdiag.engine as engine_module
from tcpdiag.engine import Engine, analyze_capture
from tcpdiag.flow import Flow
from tests.modules import load_file

GEN = Path(__file__).resolve().parents[2] / "benchmarks" / "gen.py"


@pytest.fixture(scope="module")
def busy_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 packets of the benchmark's mixed traffic (~500 connections)."""
    gen = load_file(GEN, "tcpdiag_bench_gen_gc", register=True)
    path = tmp_path_factory.mktemp("gc") / "mixed-20k.pcap"
    # a short warm-up: the default one generates (and drops) ~50k packets first
    gen.generate(str(path), 20_000, 3, dataclasses.replace(gen.PATTERNS["mixed"], warmup_s=0.2))
    return path


@pytest.fixture
def collections() -> Iterator[list[dict[str, Any]]]:
    """The collector's runs while the test runs: their `info` (generation, collected...)."""
    seen: list[dict[str, Any]] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        # Only the engine's own collections: while the analysis runs the collector is off, so
        # an automatic one (after the analysis turned it back on) does not count.
        if phase == "stop" and not gc.isenabled():
            seen.append(dict(info))

    was_enabled = gc.isenabled()
    gc.enable()  # as in a normal run: `gc_tuned` turns it off for the analysis
    gc.callbacks.append(record)
    try:
        yield seen
    finally:
        gc.callbacks.remove(record)
        if not was_enabled:
            gc.disable()


class _Node:
    other: _Node | None = None


def test_cyclic_garbage_is_collected_once_the_heap_grows(
    busy_capture: Path, collections: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flow that left a reference cycle behind (a bug the net is for) is freed during the
    analysis, not at its end."""
    monkeypatch.setattr(engine_module, "_GC_CHECK_MASK", (1 << 10) - 1)
    monkeypatch.setattr(engine_module, "_GC_FLOOR", 2_000)
    leaked: list[weakref.ref[_Node]] = []
    opened = Engine._flow_opened

    def leaky(self: Engine, flow: Flow) -> None:
        opened(self, flow)
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # garbage as soon as this returns, but only for the collector
        leaked.append(weakref.ref(a))

    monkeypatch.setattr(Engine, "_flow_opened", leaky)
    freed_before_the_end: list[int] = []
    close = Engine.close

    def closing(self: Engine, *args: Any) -> Any:
        freed_before_the_end.append(sum(ref() is None for ref in leaked))
        return close(self, *args)

    monkeypatch.setattr(Engine, "close", closing)
    result = analyze_capture(str(busy_capture))
    assert len(result.flows) > 300 and len(leaked) > 300
    assert collections, "no safety collection ran"
    assert sum(info["collected"] for info in collections) >= 2 * 100
    assert freed_before_the_end[0] > 100  # freed while the analysis ran


def test_a_level_heap_is_never_walked(
    busy_capture: Path, collections: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same capture checked every 1,024 packets: flows come and go, the heap stays far
    below the floor, no collection runs."""
    monkeypatch.setattr(engine_module, "_GC_CHECK_MASK", (1 << 10) - 1)
    result = analyze_capture(str(busy_capture))
    assert len(result.flows) > 300
    assert collections == []
