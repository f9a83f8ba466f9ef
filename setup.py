"""Optional compilation of tcpdiag's hot modules with mypyc (metadata lives in pyproject.toml).

`pip install .` compiles the per-packet modules (decoders, flow engine, TLS stream), the
per-flow diagnosis rules and what they call for every flow (finding registry and messages,
verdict, TLS names, flow keys), the engine that finishes each flow (engine.py) and the JSON
report's flow objects (report/json.py), into C extensions when mypyc and a C compiler are
available,
with the hand-written C block reader (tcpdiag/decode/_scan.c), timeline row writer
(tcpdiag/flow/_rows.c) and report JSON writer (tcpdiag/report/_compact.c), and falls back to the
pure-Python package, with a warning, when either is missing or the build fails: the results are
identical either way (tests/unit/test_compiled_equivalence.py, tests/unit/test_scan.py,
tests/unit/test_rows.py, tests/unit/test_compact_json.py); only the speed differs.

Environment:
  TCPDIAG_COMPILE=0   never compile (pure Python)
  TCPDIAG_COMPILE=1   compile editable installs too (`pip install -e .` skips compilation by
                      default: a stale extension beside an edited .py file would shadow it)
At run time, TCPDIAG_PURE=1 makes an installed compiled build run its Python source.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Each package's __init__ lists its modules in COMPILED_MODULES (keep both in step; a test checks):
# that is where TCPDIAG_PURE=1 takes effect. decode/stats.py stays Python (pickled between
# processes); store.py measured no faster compiled, but the facts it keeps of every flow it
# writes are (storeindex.py, since the seventeenth stop: ~30% fewer instructions for them).
# engine.py, which finishes every flow, is compiled since the twelfth stop: 1.6% fewer
# instructions per worker, the same memory.
# result.py since the fourteenth: its classes become native ones with compiled `__init__`s
# (they pickle by their own `__reduce__`), 5.7% fewer instructions per worker. report/json.py
# since the fifteenth: its report processes use ~15% less CPU (it imports no `rich`: mypyc
# type-checks what a compiled module imports, and the build environment has no `rich`).
COMPILED = [
    "tcpdiag/flow/seq.py",
    "tcpdiag/flow/endpoint.py",
    "tcpdiag/flow/analysis.py",
    "tcpdiag/flow/state.py",
    "tcpdiag/flow/reassembly.py",
    "tcpdiag/flow/flow.py",
    "tcpdiag/flow/buckets.py",
    "tcpdiag/flow/table.py",
    "tcpdiag/tls/cursor.py",
    "tcpdiag/tls/records.py",
    "tcpdiag/tls/handshake.py",
    "tcpdiag/tls/stream.py",
    "tcpdiag/tls/fingerprint.py",
    "tcpdiag/tls/flights.py",
    "tcpdiag/decode/arp.py",
    "tcpdiag/decode/icmp.py",
    "tcpdiag/decode/ipv6ext.py",
    "tcpdiag/decode/link.py",
    "tcpdiag/decode/tcp.py",
    "tcpdiag/decode/ip.py",
    "tcpdiag/decode/decoder.py",
    "tcpdiag/findings/tcp_rules.py",
    "tcpdiag/findings/tls_rules.py",
    "tcpdiag/findings/registry.py",
    "tcpdiag/findings/context.py",
    "tcpdiag/findings/verdict.py",
    "tcpdiag/tls/constants.py",
    "tcpdiag/tls/detect.py",
    "tcpdiag/tls/starttls.py",
    "tcpdiag/model.py",
    "tcpdiag/fields.py",
    "tcpdiag/statepack.py",
    "tcpdiag/engine.py",
    "tcpdiag/result.py",
    "tcpdiag/storeindex.py",
    "tcpdiag/report/json.py",
]


def _warn(message: str) -> None:
    print(f"tcpdiag setup: {message}; installing pure Python", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """Build the extensions, or none of them: a partial set would not import."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # compiler missing or failing: pure Python still works
            _warn(f"compiling the extensions failed ({exc})")
            for path in self.get_outputs():
                if os.path.exists(path):
                    os.remove(path)
            self.extensions = []


def _wanted() -> bool:
    setting = os.environ.get("TCPDIAG_COMPILE", "").strip().lower()
    if setting in ("0", "false", "no"):
        return False
    if setting in ("1", "true", "yes"):
        return True
    if "editable_wheel" in sys.argv or "develop" in sys.argv:
        return False
    return sys.implementation.name == "cpython"


# Hand-written C: the classic pcap block reader (tcpdiag/decode/scan.py says why). It needs
# only a C compiler; built and dropped together with the mypyc modules.
SCANNER = Extension("tcpdiag.decode._scan", ["tcpdiag/decode/_scan.c"], extra_compile_args=["-O2"])
# Hand-written C: the timeline row writer (tcpdiag/flow/rows.py says why).
ROWS = Extension("tcpdiag.flow._rows", ["tcpdiag/flow/_rows.c"], extra_compile_args=["-O2"])
# Hand-written C: a live capture's TPACKET_V3 ring blocks as pcap records
# (tcpdiag/capture/ring.py says why). Builds anywhere; rings are used on Linux only.
RING = Extension("tcpdiag.capture._ring", ["tcpdiag/capture/_ring.c"], extra_compile_args=["-O2"])
# Hand-written C: the compact JSON writer of the reports (tcpdiag/report/json.py, `dumps`).
COMPACT = Extension(
    "tcpdiag.report._compact", ["tcpdiag/report/_compact.c"], extra_compile_args=["-O2"]
)


HIDDEN = "-fvisibility=hidden"


def _extensions() -> list[object]:
    if not _wanted():
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc is not available")
        return []
    try:
        compiled = mypycify(COMPILED, opt_level="3", group_name="tcpdiag_native")
        for ext in compiled if os.name == "posix" else ():  # (gcc and clang; not MSVC)
            # Only the modules' init functions exported: the ~900 compiled functions are
            # otherwise public symbols of a shared object, which the compiler must assume
            # another library may replace, so every call between them went through the PLT
            # and none could be inlined. (A worker: 1.9% fewer instructions, 3-5% faster.)
            ext.extra_compile_args.append(HIDDEN)
        return [
            *compiled,
            SCANNER,
            ROWS,
            RING,
            COMPACT,
        ]
    # A mypy/mypyc version that rejects the code: type errors end mypycify with SystemExit,
    # which would otherwise fail the whole install instead of falling back to pure Python.
    except (Exception, SystemExit) as exc:
        _warn(f"mypyc could not compile the hot modules ({exc})")
        return []


if __name__ == "__main__":  # how setuptools runs it; the tests import it to check _extensions
    setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
