from __future__ import annotations

import pytest

from engine.wallet import Wallets


def test_reserve_release_consume_credit_debit() -> None:
    wallets = Wallets()
    w = wallets.get("a")
    assert wallets.get("a") is w and w.account == "a"
    w.credit("USD", 100)
    assert w.reserve("USD", 60)
    assert not w.reserve("USD", 41)  # short: nothing changes
    assert (w.available("USD"), w.held("USD")) == (40, 60)
    w.release("USD", 10)
    w.consume("USD", 50)
    assert (w.available("USD"), w.held("USD")) == (50, 0)
    assert not w.debit("USD", 51)
    assert w.debit("USD", 50)
    assert wallets.balances("a") == {"USD": (0, 0)}
    assert wallets.balances("nobody") == {}


def test_nothing_goes_negative() -> None:
    w = Wallets().get("a")
    w.credit("X", 5)
    assert not w.reserve("X", -1)
    assert not w.debit("X", -1)
    with pytest.raises(ValueError):
        w.credit("X", -1)
    with pytest.raises(ValueError):
        w.release("X", 1)
    with pytest.raises(ValueError):
        w.consume("X", 1)
    assert w.balances() == {"X": (5, 0)}


def test_totals_and_accounts() -> None:
    wallets = Wallets()
    wallets.get("b").credit("USD", 7)
    a = wallets.get("a")
    a.credit("USD", 3)
    a.credit("X", 2)
    assert a.reserve("X", 1)
    assert wallets.accounts() == ["a", "b"] and len(wallets) == 2
    assert wallets.totals() == {"USD": 10, "X": 2}
    assert wallets.balances("a") == {"USD": (3, 0), "X": (1, 1)}
    assert wallets.find("c") is None
