"""Memo dicts for the hot paths: ``memo[key]`` renders once and is a plain subscription after.

:class:`Memo` is a ``dict`` subclass whose ``__missing__`` renders and stores, so that a hit
costs no method call. Each is bounded: it starts over past ``limit`` entries.
:class:`PriceTexts` holds an instrument's decimal strings by ticks (``texts[ticks]``); the
orders streams keep JSON-encoded strings (``Memo(orjson.dumps)``) of prices and names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Memo(dict[K, V]):
    """``memo[key]`` = ``render(key)``, computed on first use."""

    __slots__ = ("_limit", "_render")

    def __init__(self, render: Callable[[K], V], *, limit: int = 65_536) -> None:
        super().__init__()
        self._render = render
        self._limit = limit

    def __missing__(self, key: K) -> V:
        if len(self) >= self._limit:
            self.clear()
        value = self[key] = self._render(key)
        return value


class PriceTexts(Memo[int, str]):
    """``texts[key]`` = ``price_text(sign * key)`` (``sign`` -1 for bid keys, which are
    negated ticks)."""

    __slots__ = ()

    def __init__(self, price_text: Callable[[int], str], *, sign: int = 1, limit: int = 65_536):
        if sign == 1:
            super().__init__(price_text, limit=limit)
        else:
            super().__init__(lambda key: price_text(sign * key), limit=limit)
