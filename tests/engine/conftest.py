"""Fixtures of the engine tests (helpers in :mod:`tests.engine.harness`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.engine.harness import Harness


@pytest.fixture
def harness() -> Harness:
    """An engine with ACME (tick 0.01, lot 1); accounts a and b hold 1,000,000 USD and
    10,000 ACME each."""
    return Harness()


@pytest.fixture
def make_harness() -> Callable[..., Harness]:
    """``make_harness(config=None, **instrument_fields)``."""
    return Harness
