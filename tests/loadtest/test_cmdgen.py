"""The seeded command-stream generator."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from engine.codec import decode_command
from engine.commands import (
    CancelOrder,
    DefineInstrument,
    Deposit,
    NewOrder,
    ReplaceOrder,
)
from loadtest.cmdgen import (
    CmdGenConfig,
    generate,
    price_text,
    resting,
    setup_commands,
    symbol_names,
    to_lines,
    write_jsonl,
)

SMALL = CmdGenConfig(symbols=5, accounts=4)


def test_same_seed_same_stream_other_seed_differs() -> None:
    a = list(generate(SMALL, 3_000))
    assert a == list(generate(SMALL, 3_000))
    assert a != list(generate(CmdGenConfig(symbols=5, accounts=4, seed=2), 3_000))


def test_setup_comes_first_and_count_is_exact() -> None:
    setup = setup_commands(SMALL)
    assert len(setup) == 5 + 4 * 6
    stream = list(generate(SMALL, 2_000))
    assert len(stream) == 2_000
    assert [c._replace(ts=None) for c in stream[: len(setup)]] == setup
    assert all(type(c) is DefineInstrument for c in stream[:5])
    assert all(type(c) is Deposit for c in stream[5 : len(setup)])
    assert len(list(generate(SMALL, 7))) == 7


def test_mix_has_every_kind_and_valid_targets() -> None:
    stream = list(generate(SMALL, 20_000))
    kinds = Counter(
        (type(c).__name__, getattr(c, "type", ""), getattr(c, "tif", "")) for c in stream
    )
    for kind in [
        ("NewOrder", "limit", "GTC"),
        ("NewOrder", "limit", "IOC"),
        ("NewOrder", "limit", "FOK"),
        ("NewOrder", "market", "IOC"),
        ("CancelOrder", "", ""),
        ("ReplaceOrder", "", ""),
    ]:
        assert kinds[kind] > 100, kind
    placed: dict[str, NewOrder] = {}
    for c in stream:
        if type(c) is NewOrder:
            placed[c.client_order_id] = c
        elif isinstance(c, CancelOrder | ReplaceOrder):
            target = placed[c.client_order_id]  # only orders placed before, as GTC limits
            assert target.tif == "GTC" and target.account == c.account
    symbols = set(symbol_names(5))
    assert all(c.symbol in symbols for c in stream if type(c) is NewOrder)


def test_timestamps_step() -> None:
    stream = list(generate(SMALL, 100))
    assert [c.ts for c in stream] == [SMALL.ts_start_us + 10 * i for i in range(100)]
    bare = CmdGenConfig(symbols=5, accounts=4, ts_step_us=0)
    assert all(c.ts is None for c in generate(bare, 100))


def test_resting_orders_never_cross() -> None:
    stream = list(resting(SMALL, 5_000))
    orders = [c for c in stream if type(c) is NewOrder]
    assert len(orders) == 5_000
    mid = SMALL.start_price_ticks
    for o in orders:
        assert o.price is not None and o.tif == "GTC"
        ticks = round(float(o.price) * 100)
        assert (ticks < mid) if o.side == "buy" else (ticks > mid)


def test_lines_decode_back(tmp_path: Path) -> None:
    stream = list(generate(SMALL, 1_000))
    assert [decode_command(line) for line in to_lines(stream)] == stream
    path = tmp_path / "cmds.jsonl"
    assert write_jsonl(str(path), stream) == 1_000
    lines = path.read_bytes().splitlines()
    assert [decode_command(line) for line in lines] == stream


def test_price_text_and_names() -> None:
    assert price_text(10025) == "100.25"
    assert price_text(10000) == "100.00"
    assert price_text(5) == "0.05"
    assert symbol_names(3) == ["S000", "S001", "S002"]
    assert symbol_names(1001)[-1] == "S1000"


def test_bad_config() -> None:
    with pytest.raises(ValueError):
        CmdGenConfig(symbols=0)
    with pytest.raises(ValueError):
        CmdGenConfig(max_qty=0)
