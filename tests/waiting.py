"""Waiting on a condition with a deadline: the one way tests synchronise with background tasks
(never a bare sleep that hopes the other task got there)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], bool], *, timeout_s: float = 5.0, what: str = "") -> None:
    """Return as soon as ``condition()`` holds; fail the test after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}")
        await asyncio.sleep(0.001)
