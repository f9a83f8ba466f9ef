"""`setup.py` falls back to pure Python, with a warning, when mypyc rejects the code: mypyc ends
a failed type check with SystemExit, which once failed the whole `pip install`."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.modules import load_file

SETUP = Path(__file__).resolve().parents[2] / "setup.py"


def _setup_module() -> ModuleType:
    return load_file(SETUP, "tcpdiag_setup_under_test")  # not "__main__": does not run setup()


@pytest.mark.parametrize(
    "failure",
    [SystemExit("tcpdiag/x.py:1: error: Name 'y' is not defined"), RuntimeError("mypyc bug")],
)
def test_a_mypyc_failure_installs_pure_python(
    failure: BaseException, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("mypyc.build")
    import mypyc.build

    def failing(*args: object, **kwargs: object) -> list[object]:
        raise failure

    monkeypatch.setattr(mypyc.build, "mypycify", failing)
    monkeypatch.setenv("TCPDIAG_COMPILE", "1")
    assert _setup_module()._extensions() == []
    warning = capsys.readouterr().err
    assert "mypyc could not compile the hot modules" in warning
    assert "installing pure Python" in warning


def test_compilation_off_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TCPDIAG_COMPILE", "0")
    assert _setup_module()._extensions() == []
