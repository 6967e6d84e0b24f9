"""Wallets: per account, per asset (a currency or a symbol) an available and a reserved amount.

Cash is in units of ``10**-8`` of its currency (:mod:`engine.units`), shares in whole shares.
A buy limit order reserves ``price x qty`` cash, a sell reserves the shares; fills consume
reservations and credit the counterparty; cancels release. No amount ever goes negative: every
debit is checked first (``insufficient_funds``) and the engine only consumes what it reserved.
The hot path in :mod:`engine.core` works on ``Wallet.avail`` / ``Wallet.reserved`` directly.
"""

from __future__ import annotations

import sys


class Wallet:
    """One account's balances: ``avail[asset]`` and ``reserved[asset]`` (missing means 0)."""

    __slots__ = ("account", "avail", "reserved")

    def __init__(self, account: str) -> None:
        self.account = account
        self.avail: dict[str, int] = {}
        self.reserved: dict[str, int] = {}

    def available(self, asset: str) -> int:
        return self.avail.get(asset, 0)

    def held(self, asset: str) -> int:
        return self.reserved.get(asset, 0)

    def credit(self, asset: str, amount: int) -> None:
        """Add to the available balance (deposits, proceeds of a fill)."""
        if amount < 0:
            raise ValueError("credit of a negative amount")
        avail = self.avail
        avail[asset] = avail.get(asset, 0) + amount

    def reserve(self, asset: str, amount: int) -> bool:
        """Move ``amount`` from available to reserved; ``False`` (and no change) if short."""
        avail = self.avail
        have = avail.get(asset, 0)
        if amount < 0 or have < amount:
            return False
        avail[asset] = have - amount
        reserved = self.reserved
        reserved[asset] = reserved.get(asset, 0) + amount
        return True

    def release(self, asset: str, amount: int) -> None:
        """Move ``amount`` back from reserved to available."""
        reserved = self.reserved
        held = reserved.get(asset, 0)
        if amount < 0 or held < amount:
            raise ValueError(f"release of {amount} {asset} exceeds the reserved {held}")
        reserved[asset] = held - amount
        avail = self.avail
        avail[asset] = avail.get(asset, 0) + amount

    def consume(self, asset: str, amount: int) -> None:
        """Take ``amount`` out of the reserved balance (it leaves this account)."""
        reserved = self.reserved
        held = reserved.get(asset, 0)
        if amount < 0 or held < amount:
            raise ValueError(f"consume of {amount} {asset} exceeds the reserved {held}")
        reserved[asset] = held - amount

    def debit(self, asset: str, amount: int) -> bool:
        """Take ``amount`` out of the available balance; ``False`` (no change) if short."""
        avail = self.avail
        have = avail.get(asset, 0)
        if amount < 0 or have < amount:
            return False
        avail[asset] = have - amount
        return True

    def balances(self) -> dict[str, tuple[int, int]]:
        """``{asset: (available, reserved)}`` sorted by asset."""
        assets = sorted(set(self.avail) | set(self.reserved))
        return {a: (self.avail.get(a, 0), self.reserved.get(a, 0)) for a in assets}


class Wallets:
    """All wallets, created on first use."""

    __slots__ = ("_wallets",)

    def __init__(self) -> None:
        self._wallets: dict[str, Wallet] = {}

    def get(self, account: str) -> Wallet:
        """The account's wallet (created empty if new)."""
        wallet = self._wallets.get(account)
        if wallet is None:
            account = sys.intern(account)
            wallet = self._wallets[account] = Wallet(account)
        return wallet

    def find(self, account: str) -> Wallet | None:
        return self._wallets.get(account)

    def balances(self, account: str) -> dict[str, tuple[int, int]]:
        """``{asset: (available, reserved)}``; cash in 10**-8 units, shares in shares."""
        wallet = self._wallets.get(account)
        return {} if wallet is None else wallet.balances()

    def accounts(self) -> list[str]:
        return sorted(self._wallets)

    def totals(self) -> dict[str, int]:
        """Sum over all accounts of available + reserved per asset (conserved by trading)."""
        out: dict[str, int] = {}
        for wallet in self._wallets.values():
            for book in (wallet.avail, wallet.reserved):
                for asset, amount in book.items():
                    out[asset] = out.get(asset, 0) + amount
        return dict(sorted(out.items()))

    def __len__(self) -> int:
        return len(self._wallets)
