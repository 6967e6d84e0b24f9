"""Price text caches: ``texts[ticks]`` is the instrument's decimal string for a price.

A ``dict`` subclass whose ``__missing__`` formats and stores, so that the hot path is a plain
subscription (no method call). Bounded: it starts over past ``limit`` entries.
"""

from __future__ import annotations

from collections.abc import Callable


class PriceTexts(dict[int, str]):
    """``texts[key]`` = ``price_text(sign * key)`` (``sign`` -1 for bid keys, which are
    negated ticks)."""

    __slots__ = ("_limit", "_price_text", "_sign")

    def __init__(self, price_text: Callable[[int], str], *, sign: int = 1, limit: int = 65_536):
        super().__init__()
        self._price_text = price_text
        self._sign = sign
        self._limit = limit

    def __missing__(self, key: int) -> str:
        if len(self) >= self._limit:
            self.clear()
        text = self[key] = self._price_text(self._sign * key)
        return text
