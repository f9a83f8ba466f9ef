"""Shared test configuration: paths to capture corpora and the golden update flag."""

from __future__ import annotations

from pathlib import Path

import pytest

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
