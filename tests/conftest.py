"""Shared test configuration: paths to capture corpora, the golden update flag, and the C
extensions built for the tests that need them."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.cbuild import ring_module, scan_module

REPO = Path(__file__).resolve().parents[1]
PROJECT_CAPTURES = REPO / "captures"
# The public corpus lives beside the checkout (`../shared`), read in place, never copied.
PUBLIC_CAPTURES = REPO.parent / "shared" / "captures" / "public"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite tests/golden/expected/*.json from the current output (review the diff!).",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def ring_c(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """`capture/_ring.c` built for the test (an editable install has no C extensions)."""
    return ring_module(tmp_path_factory.mktemp("ring"))


@pytest.fixture(scope="session")
def scan_c(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """`decode/_scan.c` built for the test, configured with the model's record types."""
    return scan_module(tmp_path_factory.mktemp("scan"))
