"""Accounts, API keys and opening deposits (``quotegate run --accounts FILE``).

The file is JSON::

    {"accounts": [
        {"account": "alice",
         "apiKeys": ["alice-key-0123456789abcdef"],
         "deposits": {"USD": "100000.00", "AAPL": 500}}
    ]}

``account`` is 1-64 characters of ``A-Z a-z 0-9 _ -``; each API key is 16-256 printable ASCII
characters without spaces and belongs to exactly one account; ``deposits`` maps an asset (a
currency or a symbol) to an amount: a decimal string for cash, an integer for shares (the engine
checks them against its instruments). Without a file, one demo account gets a random key.

Keys are looked up by their SHA-256 digest and then compared with ``hmac.compare_digest``, so
the time a lookup takes does not depend on how much of a guessed key is right.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine.commands import Deposit

_ACCOUNT_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KEY_RE = re.compile(r"[!-~]{16,256}")
_ASSET_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_CASH_RE = re.compile(r"[0-9]{1,20}(\.[0-9]{1,8})?")

DEMO_ACCOUNT = "demo"
DEMO_CASH = "1000000.00"
DEMO_SHARES = 1000


class AccountsError(ValueError):
    """An accounts file that cannot be used; the message says where and why."""


@dataclass(frozen=True, kw_only=True)
class AccountSpec:
    """One account: its API keys and opening deposits (asset -> amount)."""

    account: str
    api_keys: tuple[str, ...]
    deposits: tuple[tuple[str, str | int], ...] = ()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class Accounts:
    """The accounts known to this process and the API keys that authenticate as them."""

    def __init__(self, specs: Iterable[AccountSpec], *, demo_key: str | None = None) -> None:
        self._specs: dict[str, AccountSpec] = {}
        self._keys: dict[bytes, tuple[str, str]] = {}
        for spec in specs:
            if spec.account in self._specs:
                raise AccountsError(f"account {spec.account!r} is listed twice")
            self._specs[spec.account] = spec
            for key in spec.api_keys:
                digest = _digest(key)
                if digest in self._keys:
                    raise AccountsError(f"account {spec.account!r}: an API key is used twice")
                self._keys[digest] = (key, spec.account)
        self.demo_key = demo_key

    # construction -------------------------------------------------------------------------

    @classmethod
    def from_obj(cls, obj: object) -> Accounts:
        """Validate a decoded accounts document (see the module docstring)."""
        if not isinstance(obj, dict):
            raise AccountsError("the accounts file must be a JSON object with an 'accounts' list")
        unknown = set(obj) - {"accounts"}
        if unknown:
            raise AccountsError(f"unknown top-level field(s): {', '.join(sorted(unknown))}")
        items = obj.get("accounts")
        if not isinstance(items, list) or not items:
            raise AccountsError("'accounts' must be a non-empty list")
        return cls(_parse_spec(i, item) for i, item in enumerate(items))

    @classmethod
    def load(cls, path: str | Path) -> Accounts:
        """Read and validate an accounts file."""
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise AccountsError(
                f"cannot read accounts file {str(path)!r}: {exc.strerror}"
            ) from None
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise AccountsError(f"accounts file {str(path)!r} is not valid JSON: {exc}") from None
        try:
            return cls.from_obj(obj)
        except AccountsError as exc:
            raise AccountsError(f"accounts file {str(path)!r}: {exc}") from None

    @classmethod
    def demo(cls, symbols: Sequence[str], *, api_key: str | None = None) -> Accounts:
        """One ``demo`` account with cash and some shares of every symbol, and a random key
        (or ``api_key``)."""
        key = api_key if api_key is not None else "demo-" + secrets.token_urlsafe(24)
        if not _KEY_RE.fullmatch(key):
            raise AccountsError("the demo API key must be 16-256 printable characters, no spaces")
        deposits: list[tuple[str, str | int]] = [("USD", DEMO_CASH)]
        deposits.extend((s, DEMO_SHARES) for s in symbols)
        spec = AccountSpec(account=DEMO_ACCOUNT, api_keys=(key,), deposits=tuple(deposits))
        return cls([spec], demo_key=key)

    # queries ------------------------------------------------------------------------------

    def authenticate(self, token: object) -> str | None:
        """The account an API key belongs to, or ``None``."""
        if type(token) is not str or not token or len(token) > 256:
            return None
        found = self._keys.get(_digest(token))
        if found is None:
            return None
        key, account = found
        return account if hmac.compare_digest(key.encode(), token.encode()) else None

    @property
    def names(self) -> list[str]:
        return list(self._specs)

    def spec(self, account: str) -> AccountSpec | None:
        return self._specs.get(account)

    def deposit_commands(self) -> list[Deposit]:
        """The opening deposits as engine commands, in file order."""
        return [
            Deposit(spec.account, asset, amount)
            for spec in self._specs.values()
            for asset, amount in spec.deposits
        ]

    def __len__(self) -> int:
        return len(self._specs)


def _parse_spec(index: int, item: object) -> AccountSpec:
    where = f"accounts[{index}]"
    if not isinstance(item, dict):
        raise AccountsError(f"{where} must be an object")
    unknown = set(item) - {"account", "apiKeys", "deposits"}
    if unknown:
        raise AccountsError(f"{where}: unknown field(s): {', '.join(sorted(unknown))}")
    name = item.get("account")
    if type(name) is not str or not _ACCOUNT_RE.fullmatch(name):
        raise AccountsError(f"{where}.account must be 1-64 characters of A-Z a-z 0-9 _ -")
    where = f"account {name!r}"
    keys = item.get("apiKeys")
    if not isinstance(keys, list) or not keys:
        raise AccountsError(f"{where}: 'apiKeys' must be a non-empty list of strings")
    for key in keys:
        if type(key) is not str or not _KEY_RE.fullmatch(key):
            raise AccountsError(
                f"{where}: each API key must be 16-256 printable ASCII characters without spaces"
            )
    deposits = item.get("deposits", {})
    if not isinstance(deposits, dict):
        raise AccountsError(f"{where}: 'deposits' must be an object of asset -> amount")
    return AccountSpec(
        account=name, api_keys=tuple(keys), deposits=_parse_deposits(where, deposits)
    )


def _parse_deposits(where: str, deposits: Mapping[str, Any]) -> tuple[tuple[str, str | int], ...]:
    out: list[tuple[str, str | int]] = []
    for asset, amount in deposits.items():
        if not _ASSET_RE.fullmatch(asset):
            raise AccountsError(f"{where}: bad asset name {asset!r}")
        if type(amount) is int:
            if amount <= 0:
                raise AccountsError(f"{where}: deposit of {asset} must be positive")
        elif type(amount) is str:
            if not _CASH_RE.fullmatch(amount) or not amount.strip("0."):
                raise AccountsError(
                    f"{where}: deposit of {asset} must be a positive decimal string "
                    f'(cash, e.g. "1000.00") or a positive integer (shares), not {amount!r}'
                )
        else:
            raise AccountsError(
                f"{where}: deposit of {asset} must be a decimal string (cash) or an integer"
            )
        out.append((asset, amount))
    return tuple(out)
