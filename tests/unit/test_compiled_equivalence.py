"""The mypyc-compiled hot modules and their pure-Python source give identical results.

`setup.py` compiles the per-packet modules when it can; `TCPDIAG_PURE=1` makes a compiled
build run the Python source instead (see `tcpdiag/_native.py`). Here every capture of
`captures/` and `../shared/captures/public/` is analysed both ways, with every timeline kept and
once more with tight limits (eviction, buffer caps, idle timeouts), and once with every TLS
stream packed and unpacked at every packet (`statepack.py`); the JSON reports must be equal
byte for byte.

When the installed package is not compiled (an editable install skips compilation by default),
a compiled copy of the source is built in a temporary directory first (about a minute); the
test is skipped only when that is impossible (no mypyc or no C compiler).
"""

from __future__ import annotations

import ast
import ctypes
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import tcpdiag
import tcpdiag.decode
import tcpdiag.findings
import tcpdiag.flow.flow
import tcpdiag.report
import tcpdiag.tls
from tcpdiag._native import compiled
from tcpdiag.model import TcpOptions
from tests.capture_files import corpus_captures, pcap_bytes
from tests.craft import LINKTYPE_RAW, Conversation, encode
from tests.modules import load_file

REPO = Path(__file__).resolve().parents[2]


# (loaded, not run as "__main__": defines, does not run setup())
COMPILED = list(load_file(REPO / "setup.py", "tcpdiag_setup_listed").COMPILED)

# Analyses every capture named on the command line; prints one JSON report per capture (or the
# error), in order. Run in a child process so that TCPDIAG_PURE applies from the first import.
SCRIPT = r"""
import sys
from tcpdiag.config import AnalysisOptions, Limits
from tcpdiag.engine import analyze_capture
from tcpdiag.errors import TcpdiagError
from tcpdiag import _native
from tcpdiag.decode import scan
import tcpdiag.decode.tcp, tcpdiag.flow.flow, tcpdiag.flow.table, tcpdiag.tls.records
import tcpdiag.findings.tcp_rules
from tcpdiag.report.json import capture_json, dumps

mode = "compiled" if _native.compiled(tcpdiag.flow.flow) else "pure"
modules = (tcpdiag.decode.tcp, tcpdiag.tls.records, tcpdiag.findings.tcp_rules)
# The classes made per segment or per TLS record, declared acyclic: compiled, the cyclic
# collector does not track them.
import gc
from tcpdiag.flow.endpoint import Unacked
from tcpdiag.model import Direction
from tcpdiag.tls.records import Record, RecordNote
made = (Unacked(1, 2, 3, 0.5, False), Record(23, 0x0303, 5, 0, 1, 0.5, None),
        RecordNote(Direction.CLIENT, 1, 0.5, 0, 10, ("x",)))
untracked = not any(gc.is_tracked(obj) for obj in made)
print("mode", mode, *(_native.compiled(m) for m in modules), scan.available(), untracked)
runs = (
    AnalysisOptions(keep_all_timelines=True),
    AnalysisOptions(
        limits=Limits(max_flows=3, max_flow_buffer=1024, idle_timeout=0.5, timeline_head=5,
                      timeline_tail=3),
        keep_all_timelines=True,
    ),
)


def frozen_at_every_packet(path, options):
    # Every TLS stream packed and unpacked at every packet (`Flow.freeze_consumer`, as a flow
    # gone quiet does): compiled, the packer meets the compiled classes.
    from tcpdiag.capture import open_capture
    from tcpdiag.engine import Engine
    from tcpdiag.flow.flow import Flow

    with open_capture(path) as reader:
        engine = Engine(options, path=path)
        for raw in reader:
            engine.feed(raw)
            for entry in engine._table._entries():
                if isinstance(entry, Flow):
                    entry.freeze_consumer()
        return engine.finish(reader)


def pickles_back(result):
    # Results cross process boundaries pickled (`analyze --jobs`, Dask shards): compiled, the
    # result classes are native ones with their own `__reduce__`.
    import pickle

    flows = list(result.flows)
    return pickle.loads(pickle.dumps((flows, result.findings))) == (flows, result.findings)


for path in sys.argv[1:]:
    pickled = "pickled error"
    for options in runs:
        try:
            result = analyze_capture(path, options)
            text = dumps(capture_json(result))
            if options is runs[0]:
                pickled = f"pickled {pickles_back(result)} {len(result.flows)}"
        except TcpdiagError as exc:
            text = f"error: {exc}"
        print(path, text)
    try:
        text = dumps(capture_json(frozen_at_every_packet(path, runs[0])))
    except TcpdiagError as exc:
        text = f"error: {exc}"
    print(path, "frozen", text)
    print(path, pickled)
"""


def _python(
    root: Path | None, pure: bool, args: list[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """`python ARGS` in `root` (the compiled copy; None: this checkout, installed), with
    TCPDIAG_PURE set exactly when `pure`."""
    env = dict(os.environ)
    env.pop("TCPDIAG_PURE", None)
    if pure:
        env["TCPDIAG_PURE"] = "1"
    if root is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, *args],
        cwd=root or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _run(root: Path | None, pure: bool, captures: list[str]) -> list[str]:
    proc = _python(root, pure, ["-c", SCRIPT, *captures], timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout.splitlines()


@pytest.fixture(scope="module")
def compiled_root(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """None when the installed package is compiled; else a directory holding a compiled copy."""
    if compiled(tcpdiag.flow.flow):
        return None
    pytest.importorskip("mypyc", reason="mypyc is needed to build the compiled modules")
    if shutil.which(os.environ.get("CC", "gcc")) is None and shutil.which("cc") is None:
        pytest.skip("no C compiler")
    root = tmp_path_factory.mktemp("compiled")
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(
        REPO / "tcpdiag",
        root / "tcpdiag",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"),
    )
    env = dict(os.environ, TCPDIAG_COMPILE="1")
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if not list((root / "tcpdiag" / "flow").glob("flow.*.so")):
        pytest.skip(f"could not compile the hot modules:\n{proc.stderr[-2000:]}")
    return root


@pytest.mark.slow
def test_compiled_and_pure_python_reports_are_identical(compiled_root: Path | None) -> None:
    captures = corpus_captures()
    assert len(captures) >= 10
    fast = _run(compiled_root, pure=False, captures=captures)
    slow = _run(compiled_root, pure=True, captures=captures)
    # decode, flow, tls and the rules compiled, the C block reader in use, the acyclic classes
    # out of the cyclic collector's reach
    assert fast[0] == "mode compiled True True True True True", fast[0]
    assert slow[0] == "mode pure False False False False False", slow[0]
    assert len(fast) == len(slow) == 1 + 4 * len(captures)
    for a, b in zip(fast[1:], slow[1:], strict=True):
        assert a == b, f"compiled and pure Python differ on {a.split(' ', 1)[0]}"
    for i in range(len(captures)):
        # Freezing every stream at every packet changed nothing (test_statepack.py: pure Python).
        normal, frozen = fast[1 + 4 * i], fast[3 + 4 * i]
        assert frozen == normal.replace(" ", " frozen ", 1), normal.split(" ", 1)[0]
        # The flows and findings came back from pickling equal (the same line, pure Python).
        assert fast[4 + 4 * i].split(" ")[1:3] in (["pickled", "True"], ["pickled", "error"])
    assert sum(" pickled True " in line for line in fast) >= 10


def test_only_the_init_function_of_the_compiled_group_is_exported(
    compiled_root: Path | None,
) -> None:
    """setup.py builds the compiled modules with hidden symbols (`HIDDEN`): the compiled
    functions call each other directly and can be inlined; Python finds the init function."""
    if os.name != "posix":
        pytest.skip("the flag is gcc's and clang's")
    name = "tcpdiag_native__mypyc"
    if compiled_root is None:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        path = Path(spec.origin)
    else:
        (path,) = compiled_root.glob(f"{name}.*.so")
    library = ctypes.CDLL(str(path))
    assert hasattr(library, f"PyInit_{name}")
    assert not hasattr(library, "CPyDef_flow___Flow___process")


def test_pure_switch_loads_python_source(compiled_root: Path | None) -> None:
    """TCPDIAG_PURE=1 loads every listed hot module from its .py file."""
    script = (
        "import importlib, tcpdiag, tcpdiag.decode, tcpdiag.findings, tcpdiag.flow, tcpdiag.tls\n"
        "import tcpdiag.report\n"
        "for pkg in (tcpdiag, tcpdiag.decode, tcpdiag.flow, tcpdiag.tls, tcpdiag.findings,\n"
        "            tcpdiag.report):\n"
        "    for m in pkg.COMPILED_MODULES:\n"
        "        mod = importlib.import_module(pkg.__name__ + '.' + m)\n"
        "        print(mod.__spec__.origin)\n"
    )
    proc = _python(compiled_root, True, ["-c", script], timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    origins = proc.stdout.split()
    assert len(origins) == len(COMPILED) and all(o.endswith(".py") for o in origins), origins


def test_setup_compiles_exactly_the_modules_the_packages_list() -> None:
    """setup.py's COMPILED and the packages' COMPILED_MODULES (where TCPDIAG_PURE applies) agree:
    a module compiled but not listed could not be switched back to its source."""
    listed = {
        f"{pkg.__name__.replace('.', '/')}/{m}.py"
        for pkg in (
            tcpdiag,
            tcpdiag.decode,
            tcpdiag.flow,
            tcpdiag.tls,
            tcpdiag.findings,
            tcpdiag.report,
        )
        for m in pkg.COMPILED_MODULES
    }
    assert listed == set(COMPILED)


def test_compiled_result_classes_pass_the_result_tests(compiled_root: Path | None) -> None:
    """`tests/unit/test_result.py` against the compiled `result.py`: its native classes' written
    -out `__init__`s, plain form and pickling behave as the dataclasses they stand for. (When
    the installed package is compiled, the suite runs that file against it anyway.)"""
    if compiled_root is None:
        pytest.skip("the installed package is compiled: test_result.py runs against it")
    probe = "import tcpdiag.result as r, tcpdiag._native as n; print(n.compiled(r), r.__file__)"
    proc = _python(compiled_root, False, ["-c", probe], timeout=120)
    assert proc.stdout.startswith(f"True {compiled_root}"), proc.stdout + proc.stderr[-2000:]
    copied = compiled_root / "tests" / "unit"
    copied.mkdir(parents=True, exist_ok=True)
    for name in ("test_result.py", "report_fixtures.py"):  # (the test and the flow it reads)
        shutil.copy(REPO / "tests" / "unit" / name, copied / name)
    pytest_args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_result.py"]
    proc = _python(compiled_root, False, pytest_args, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout, proc.stdout[-2000:]


def _imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code (lazy imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_compiled_modules_reach_no_package_the_build_environment_lacks() -> None:
    """mypyc type-checks every module a compiled module imports, in pip's isolated build
    environment (setuptools, wheel, mypy): an import of `rich` or `click` anywhere in that
    closure, even a lazy one, fails the whole compilation, and a fresh `pip install .` quietly
    installs pure Python. (Unless pyproject.toml tells mypy to ignore that module missing.)"""
    mypy = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    ignored = {
        module.removesuffix(".*")
        for override in mypy.get("overrides", [])
        if override.get("ignore_missing_imports")
        for module in override["module"]
    }
    allowed = set(sys.stdlib_module_names) | {"tcpdiag", "mypy_extensions"} | ignored
    seen: set[Path] = set()
    todo = [REPO / name for name in COMPILED]
    outside: dict[str, str] = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_modules(path):
            top = name.split(".")[0]
            if top not in allowed:
                outside[name] = str(path.relative_to(REPO))
            elif top == "tcpdiag":
                parts = name.split(".")
                module = REPO.joinpath(*parts).with_suffix(".py")
                package = REPO.joinpath(*parts, "__init__.py")
                todo.extend(p for p in (module, package) if p.exists())
    assert not outside, outside
    assert REPO / "tcpdiag" / "report" / "json.py" in seen


# The JSON report's flow objects are made one at a time, compiled too: `make()` reads no flow,
# and each object it yields reads one (mypyc once compiled a generator expression there into a
# list of every flow's dict, 252 MB for a 2M-packet capture).
LAZY_SCRIPT = r"""
import sys
from collections.abc import Sequence
from tcpdiag import _native
from tcpdiag.engine import analyze_capture
from tcpdiag.report import json as report_json

class Counted(Sequence):
    def __init__(self, items):
        self.items, self.reads = items, 0
    def __len__(self):
        return len(self.items)
    def __getitem__(self, i):
        self.reads += 1
        return self.items[i]

capture = analyze_capture(sys.argv[1])
flows = capture.flows = Counted(list(capture.flows))
made = report_json._lazy_capture(capture)["flows"].make()
before = flows.reads
next(made)
print(_native.compiled(report_json), len(flows), before, flows.reads)
"""


def test_compiled_json_report_makes_one_flow_object_at_a_time(
    compiled_root: Path | None,
) -> None:
    capture = REPO / "captures" / "tcp-backlog-full.pcap"  # (4 flows)
    proc = _python(compiled_root, False, ["-c", LAZY_SCRIPT, str(capture)], timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    is_compiled, count, before, after = proc.stdout.split()
    assert is_compiled == "True" and int(count) >= 2
    assert (int(before), int(after)) == (0, 1)


def _wrapping_conversations() -> list[tuple[int, bytes]]:
    """Connections whose sequence numbers wrap past 2**32 in the middle of their data, as
    (ts_ns, raw IP packet): compiled, `flow/` computes with 64-bit C integers (`i64`) where pure
    Python has unbounded ints, and the two must still agree at the wrap. Loss and
    retransmission, out-of-order, duplicate ACKs with SACK blocks, a zero window and its
    update, keep-alives, a FIN close and a reset, over IPv4 and IPv6."""
    top = 1 << 32
    segments = []
    sack = TcpOptions(sack=((top - 100, 200),))
    # The client wraps in its first request; the server after its zero-window probe.
    c = Conversation(client_isn=top - 700, server_isn=top - 6000, first_frame=1, wscale=7)
    c.handshake()
    for _ in range(3):
        c.send("c", 400)
    c.ack("s")
    first = c.send("s", 1000)
    lost = c.send("s", 1000)
    c.send("s", 1000)
    c.ack("c", ack=lost.seq, options=sack)
    c.ack("c", ack=lost.seq, options=sack)
    c.ack("c", ack=lost.seq, options=sack)
    c.retransmit(lost.frame, dt=0.0005)
    c.retransmit(first.frame, dt=0.2)  # spurious: acknowledged already
    c.ack("c", window=0)
    c.send("s", 1, seq=c.next_seq("s"), advance=False, dt=0.3)  # zero-window probe
    c.ack("c", window=512, dt=0.5)
    c.send("s", 800)
    c.send("s", 3000)
    c.ack("c")
    c.ack("c", seq=(c.next_seq("c") - 1) % top, dt=40.0)  # keep-alive
    c.fin("c")
    c.fin("s")
    c.ack("c")
    segments += c.segments
    r = Conversation(
        client="[2001:db8::1]:40001",
        server="[2001:db8::2]:443",
        client_isn=top - 1,
        server_isn=top - 10,
        start=0.1,
        first_frame=1000,
    )
    r.handshake()
    r.send("c", 300)
    r.send("s", 1200)
    gap = r.next_seq("s")
    r.send("s", 1200, seq=(gap + 1200) % top, advance=False)  # the next one overtakes it
    r.send("s", 1200, dt=0.0001)  # out of order
    r.ack("c", ack=(gap + 2400) % top)
    r.rst("c")
    segments += r.segments
    segments.sort(key=lambda seg: (seg.time, seg.frame))
    return [(round(seg.time * 1e9), encode(seg)) for seg in segments]


@pytest.mark.slow
def test_compiled_and_pure_python_agree_where_sequence_numbers_wrap(
    compiled_root: Path | None, tmp_path: Path
) -> None:
    capture = tmp_path / "wrap.pcap"
    capture.write_bytes(pcap_bytes(_wrapping_conversations(), linktype=LINKTYPE_RAW))
    fast = _run(compiled_root, pure=False, captures=[str(capture)])
    slow = _run(compiled_root, pure=True, captures=[str(capture)])
    assert fast[0].startswith("mode compiled True")
    assert fast[1:] == slow[1:]
    flows = json.loads(fast[1].split(" ", 1)[1])["flows"]
    # The capture reaches what it was made for (else the comparison proves little).
    for counter in (
        "retransmissions",
        "fast_retransmissions",
        "spurious_retransmissions",
        "out_of_order",
        "duplicate_acks",
        "zero_windows",
        "zero_window_probes",
        "keep_alives",
    ):
        assert sum(flow["tcp"][counter] for flow in flows) > 0, counter
