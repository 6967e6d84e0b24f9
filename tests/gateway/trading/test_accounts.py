"""Accounts file loading, validation errors, the demo account and key lookup."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from engine.commands import Deposit
from gateway.trading.accounts import DEMO_ACCOUNT, Accounts, AccountsError

GOOD = {
    "accounts": [
        {
            "account": "alice",
            "apiKeys": ["alice-key-0123456789", "alice-second-key-xyz"],
            "deposits": {"USD": "100000.00", "AAPL": 500},
        },
        {"account": "bob", "apiKeys": ["bob-key-0123456789ab"]},
    ]
}


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    path.write_bytes(orjson.dumps(GOOD))
    accounts = Accounts.load(path)
    assert accounts.names == ["alice", "bob"]
    assert len(accounts) == 2
    assert accounts.authenticate("alice-key-0123456789") == "alice"
    assert accounts.authenticate("alice-second-key-xyz") == "alice"
    assert accounts.authenticate("bob-key-0123456789ab") == "bob"
    assert accounts.deposit_commands() == [
        Deposit("alice", "USD", "100000.00"),
        Deposit("alice", "AAPL", 500),
    ]
    assert accounts.demo_key is None


@pytest.mark.parametrize(
    "token", ["", "alice-key-012345678", "alice-key-01234567890", "ALICE-KEY-0123456789", None, 5]
)
def test_wrong_tokens_are_refused(token: object) -> None:
    assert Accounts.from_obj(GOOD).authenticate(token) is None


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ([], "JSON object"),
        ({"accounts": []}, "non-empty list"),
        ({"accounts": [], "extra": 1}, "unknown top-level"),
        ({"accounts": ["x"]}, "accounts[0] must be an object"),
        ({"accounts": [{"account": "a b", "apiKeys": ["k" * 16]}]}, "accounts[0].account"),
        ({"accounts": [{"account": "a", "apiKeys": []}]}, "'apiKeys'"),
        ({"accounts": [{"account": "a", "apiKeys": ["short"]}]}, "16-256"),
        ({"accounts": [{"account": "a", "apiKeys": ["k" * 16], "x": 1}]}, "unknown field"),
        (
            {"accounts": [{"account": "a", "apiKeys": ["k" * 16], "deposits": {"USD": 1.5}}]},
            "decimal string",
        ),
        (
            {"accounts": [{"account": "a", "apiKeys": ["k" * 16], "deposits": {"USD": "-5"}}]},
            "positive decimal",
        ),
        (
            {"accounts": [{"account": "a", "apiKeys": ["k" * 16], "deposits": {"AAPL": 0}}]},
            "positive",
        ),
        (
            {
                "accounts": [
                    {"account": "a", "apiKeys": ["k" * 16]},
                    {"account": "a", "apiKeys": ["j" * 16]},
                ]
            },
            "listed twice",
        ),
        (
            {
                "accounts": [
                    {"account": "a", "apiKeys": ["k" * 16]},
                    {"account": "b", "apiKeys": ["k" * 16]},
                ]
            },
            "used twice",
        ),
    ],
)
def test_validation_errors_are_clear(doc: object, fragment: str) -> None:
    with pytest.raises(AccountsError) as info:
        Accounts.from_obj(doc)
    assert fragment in str(info.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(AccountsError, match="cannot read"):
        Accounts.load(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(AccountsError, match="not valid JSON"):
        Accounts.load(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"accounts": 3}')
    with pytest.raises(AccountsError, match=r"wrong\.json"):
        Accounts.load(wrong)


def test_demo_account_has_a_random_key() -> None:
    a = Accounts.demo(["AAPL", "MSFT"])
    b = Accounts.demo(["AAPL"])
    assert a.demo_key and b.demo_key and a.demo_key != b.demo_key
    assert a.authenticate(a.demo_key) == DEMO_ACCOUNT
    assert a.authenticate(b.demo_key) is None
    assets = [d.asset for d in a.deposit_commands()]
    assert assets == ["USD", "AAPL", "MSFT"]


def test_demo_key_can_be_given() -> None:
    a = Accounts.demo(["AAPL"], api_key="fixed-demo-key-0000")
    assert a.authenticate("fixed-demo-key-0000") == DEMO_ACCOUNT
    with pytest.raises(AccountsError):
        Accounts.demo([], api_key="short")
