from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.codec import (
    _checked_command,
    command_from_obj,
    command_to_json,
    decode_command,
    encode_event,
    event_to_json,
    execution_to_json,
    order_to_json,
)
from engine.commands import (
    CancelOrder,
    Command,
    DefineInstrument,
    Deposit,
    Malformed,
    NewOrder,
    ReplaceOrder,
)
from engine.events import Accepted, Rejected, Trade
from engine.instruments import Instrument
from tests.engine.harness import Harness


def test_decode_each_op_round_trips_through_command_to_json() -> None:
    cmds: list[Command] = [
        DefineInstrument("X", "0.05", 10, "EUR", 1000, "5000.5", "0.1", ts=3),
        Deposit("a", "USD", "10.5"),
        Deposit("a", "X", 30),
        NewOrder("a", "c", "X", "buy", "limit", "1.05", 10, "IOC", ts=9),
        NewOrder("a", "c", "X", "sell", "market", None, 10, "GTC"),
        CancelOrder("a", "c"),
        ReplaceOrder("a", "c", "1.10", None),
        ReplaceOrder("a", "c", None, 20, ts=1),
    ]
    for cmd in cmds:
        assert decode_command(orjson.dumps(command_to_json(cmd))) == cmd


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("nope", "malformed"),
        ('{"op":"fly"}', "malformed"),
        ('{"op":"new","account":"a","clientOrderId":"c","symbol":"X","side":"buy"}', "bad_qty"),
        (
            '{"op":"new","account":"a","clientOrderId":"c","symbol":"X","side":"buy",'
            '"price":1.5,"qty":1}',
            "bad_price",
        ),
        ('{"op":"cancel","account":"a","clientOrderId":"c","ts":-1}', "malformed"),
    ],
)
def test_decode_bad_lines(line: str, reason: str) -> None:
    cmd = decode_command(line)
    assert isinstance(cmd, Malformed) and cmd.reason == reason and cmd.message


def test_event_to_json_renders_prices_with_the_instrument() -> None:
    inst = Instrument.define(symbol="X", tick="0.05", lot=1)
    acc = Accepted(1, 2, 3, 4, "a", "c", "X", "buy", "limit", 21, 10, "GTC")
    obj = event_to_json(acc, {"X": inst})
    assert obj["event"] == "accepted" and obj["price"] == "1.05" and obj["inSeq"] == 2
    rej = Rejected(5, 6, 7, None, None, "malformed", "bad")
    assert orjson.loads(encode_event(rej, {})) == {
        "event": "rejected",
        "seq": 5,
        "inSeq": 6,
        "ts": 7,
        "account": None,
        "clientOrderId": None,
        "reason": "malformed",
        "message": "bad",
    }


def test_order_to_json(harness: Harness) -> None:
    harness.new("b", "s1", "sell", "10.00", 3)
    harness.new("a", "b1", "buy", "10.05", 5)
    order = harness.engine.orders.by_client("a", "b1")
    assert order is not None
    inst = harness.engine.instruments["ACME"]
    obj = order_to_json(order, inst)
    assert obj == {
        "orderId": 2,
        "account": "a",
        "clientOrderId": "b1",
        "symbol": "ACME",
        "side": "buy",
        "type": "limit",
        "tif": "GTC",
        "price": "10.05",
        "qty": 5,
        "openQty": 2,
        "filled": 3,
        "status": "partially_filled",
        "ts": order.ts,
    }
    harness.new("a", "m1", "buy", None, 1, type="market")
    market = harness.engine.orders.by_client("a", "m1")
    assert market is not None and order_to_json(market, inst)["price"] is None


def test_execution_to_json_shows_only_the_accounts_side() -> None:
    inst = Instrument.define(symbol="X", tick="0.01", lot=1)
    trade = Trade(9, 8, 7, 1, "X", 1234, 5, "sell", 11, 12, "alice", "bob", "ca", "cb")
    buy = execution_to_json(trade, "alice", {"X": inst})
    assert buy == {
        "tradeId": 1,
        "orderId": 11,
        "clientOrderId": "ca",
        "symbol": "X",
        "side": "buy",
        "price": "12.34",
        "qty": 5,
        "liquidity": "maker",
        "ts": 7,
    }
    sell = execution_to_json(trade, "bob", {"X": inst})
    assert (sell["orderId"], sell["clientOrderId"], sell["side"], sell["liquidity"]) == (
        12,
        "cb",
        "sell",
        "taker",
    )
    for view in (buy, sell):
        text = orjson.dumps(view).decode()
        assert "alice" not in text and "bob" not in text
    with pytest.raises(ValueError):
        execution_to_json(trade, "carol", {"X": inst})


def test_execution_to_json_self_trade_views() -> None:
    inst = Instrument.define(symbol="X", tick="1", lot=1)
    trade = Trade(1, 1, 1, 1, "X", 5, 1, "buy", 2, 1, "a", "a", "b", "s")
    assert execution_to_json(trade, "a", {"X": inst})["liquidity"] == "taker"
    seller = execution_to_json(trade, "a", {"X": inst}, side="sell")
    assert seller["orderId"] == 1 and seller["liquidity"] == "maker"


_ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=2**64),
    st.floats(allow_nan=False),
    st.sampled_from(["", "a", "x" * 128, "x" * 129, "buy", "limit", "IOC", "1.5"]),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=1),
)
_KEYS = ["account", "clientOrderId", "symbol", "side", "type", "price", "qty", "tif", "ts"]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["new", "cancel", "replace"]),
    st.dictionaries(st.sampled_from(_KEYS), _ANY_VALUE),
)
def test_the_fast_path_decodes_as_the_checked_path(op: str, fields: dict[str, object]) -> None:
    obj = {"op": op, **fields}
    assert command_from_obj(obj) == _checked_command(obj)
    assert type(command_from_obj(obj)) is type(_checked_command(obj))


def test_well_typed_commands_take_the_fast_path_to_the_same_value() -> None:
    new = {"op": "new", "account": "a", "clientOrderId": "c", "symbol": "S", "side": "buy",
           "price": "1.5", "qty": 3, "ts": 9}  # fmt: skip
    assert command_from_obj(new) == NewOrder("a", "c", "S", "buy", "limit", "1.5", 3, "GTC", 9)
    assert command_from_obj({**new, "qty": True}) == _checked_command({**new, "qty": True})
    assert isinstance(command_from_obj({**new, "account": ""}), Malformed)
    replace = {"op": "replace", "account": "a", "clientOrderId": "c", "qty": 2}
    assert command_from_obj(replace) == ReplaceOrder("a", "c", None, 2, None)
    cancel = {"op": "cancel", "account": "a", "clientOrderId": "c", "ts": -1}
    assert isinstance(command_from_obj(cancel), Malformed)
