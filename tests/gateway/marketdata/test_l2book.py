"""L2 mirror: applying the diffs to the previous top D always gives the new top D, and the
checksum matches an independent computation over the client's book."""

from __future__ import annotations

import random
import zlib

import pytest

from engine.instruments import Instrument
from gateway.marketdata.l2book import L2Book, checksum_of

INST = Instrument.define(symbol="X", tick="0.05", lot=1)


def apply(client: dict[str, dict[str, int]], data: dict[str, list[list[object]]]) -> None:
    for key in ("bids", "asks"):
        side = client[key]
        for price, qty in data[key]:
            assert isinstance(price, str) and isinstance(qty, int)
            if qty == 0:
                side.pop(price, None)
            else:
                side[price] = qty


def top(book: dict[int, int], bid: bool, depth: int) -> list[tuple[str, int]]:
    prices = sorted(book, reverse=bid)[:depth]
    return [(INST.price_text(p), book[p]) for p in prices]


def client_sorted(side: dict[str, int], bid: bool) -> list[tuple[str, int]]:
    return sorted(side.items(), key=lambda kv: INST.ticks(kv[0]) or 0, reverse=bid)


def own_checksum(bids: list[tuple[str, int]], asks: list[tuple[str, int]]) -> int:
    text = ",".join(f"{p}:{q}" for p, q in bids[:10]) + "|"
    text += ",".join(f"{p}:{q}" for p, q in asks[:10])
    return zlib.crc32(text.encode("ascii"))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("depth", [1, 3, 10, 50])
def test_diffs_keep_exactly_top_depth(seed: int, depth: int) -> None:
    rng = random.Random(seed * 100 + depth)
    book = L2Book(depth, INST.price_text)
    truth: tuple[dict[int, int], dict[int, int]] = ({}, {})
    client: dict[str, dict[str, int]] = {"bids": {}, "asks": {}}
    updates = 0
    for _ in range(600):
        for _ in range(rng.choice([1, 1, 1, 2, 5, 20])):  # changes inside one publication
            is_bid = rng.random() < 0.5
            side = truth[0] if is_bid else truth[1]
            price = rng.randrange(90, 100) if is_bid else rng.randrange(100, 110)
            if rng.random() < 0.15:
                price += rng.randrange(-30, 30)  # far levels, outside the top D
                price = max(1, min(price, 99)) if is_bid else max(price, 100)
            have = side.get(price, 0)
            delta = rng.randrange(1, 50) if have == 0 or rng.random() < 0.5 else -have
            if have and rng.random() < 0.3:
                delta = -rng.randrange(1, have + 1)
            side[price] = have + delta
            if side[price] == 0:
                del side[price]
            book.add(is_bid, price, delta)
        data = book.diff()
        want_bids, want_asks = top(truth[0], True, depth), top(truth[1], False, depth)
        if data is None:
            assert client_sorted(client["bids"], True) == want_bids
            assert client_sorted(client["asks"], False) == want_asks
            continue
        updates += 1
        assert data["bids"] or data["asks"]
        apply(client, data)
        bids, asks = client_sorted(client["bids"], True), client_sorted(client["asks"], False)
        assert bids == want_bids and asks == want_asks
        assert data["checksum"] == own_checksum(bids, asks)
        snap = book.snapshot()
        assert [tuple(x) for x in snap["bids"]] == want_bids
        assert [tuple(x) for x in snap["asks"]] == want_asks
        assert snap["checksum"] == data["checksum"]
    assert updates > 100


def test_diff_lists_levels_best_first_and_only_changes() -> None:
    book = L2Book(2, INST.price_text)
    book.add(True, 20, 5)  # 1.00
    book.add(True, 19, 5)  # 0.95
    book.add(False, 21, 7)  # 1.05
    assert book.diff() == {
        "bids": [["1.00", 5], ["0.95", 5]],
        "asks": [["1.05", 7]],
        "checksum": zlib.crc32(b"1.00:5,0.95:5|1.05:7"),
    }
    book.add(True, 18, 3)  # below the top 2: invisible
    assert book.diff() is None
    book.add(True, 20, -5)  # best bid goes: 0.90 enters the top 2
    assert book.diff() == {
        "bids": [["1.00", 0], ["0.90", 3]],
        "asks": [],
        "checksum": zlib.crc32(b"0.95:5,0.90:3|1.05:7"),
    }
    book.add(True, 21, 1)  # a better bid pushes 0.90 out
    data = book.diff()
    assert data is not None and data["bids"] == [["1.05", 1], ["0.90", 0]]
    book.add(True, 19, 4)
    book.add(True, 19, -4)  # changed and back inside one publication: nothing visible
    assert book.diff() is None
    assert book.best_bid() == 21 and book.best_ask() == 21
    assert book.depth_levels(True, 5) == [(21, 1), (19, 5), (18, 3)]


def test_checksum_of_matches_protocol_text() -> None:
    bids = [["100.01", 3], ["100.00", 12]]
    asks = [["100.02", 1]]
    assert checksum_of(bids, asks) == zlib.crc32(b"100.01:3,100.00:12|100.02:1")
    assert checksum_of([], []) == zlib.crc32(b"|")


def test_published_snapshot_leaves_pending_changes_out() -> None:
    rng = random.Random(5)
    depth = 4
    book = L2Book(depth, INST.price_text)
    for _ in range(400):
        published = book.snapshot()
        assert book.published_snapshot() == published
        for _ in range(rng.randrange(1, 6)):  # changes that are pending (not yet diffed)
            is_bid = rng.random() < 0.5
            price = rng.randrange(10, 30) if is_bid else rng.randrange(31, 50)
            have = book.bids.levels.get(-price, 0) if is_bid else book.asks.levels.get(price, 0)
            book.add(is_bid, price, -have if have and rng.random() < 0.4 else rng.randrange(1, 9))
            assert book.published_snapshot() == published
        book.diff()
        assert book.published_snapshot() == book.snapshot()


@pytest.mark.parametrize("depth", [1, 2, 50])
def test_a_price_beyond_64_bits_is_a_level_like_any_other(depth: int) -> None:
    # found by tests/fuzz/fuzz_publisher.py: the engine rests a sell at 10**25 ticks (prices
    # are decimal strings with no bound); the "fewer than D levels" boundary was 2**62, so that
    # level counted as outside the top D and no update ever showed it
    huge = 10**25
    book = L2Book(depth, INST.price_text)
    truth: tuple[dict[int, int], dict[int, int]] = ({}, {})
    client: dict[str, dict[str, int]] = {"bids": {}, "asks": {}}
    steps = [(False, huge, 700), (True, huge - 1, 5), (False, 2**62, 1), (False, huge, -700)]
    for is_bid, ticks, qty in steps:
        book.add(is_bid, ticks, qty)
        side = truth[0] if is_bid else truth[1]
        side[ticks] = side.get(ticks, 0) + qty
        if not side[ticks]:
            del side[ticks]
        data = book.diff()
        assert data is not None or (qty < 0 and depth == 1)
        if data is not None:
            apply(client, data)
        bids, asks = top(truth[0], True, depth), top(truth[1], False, depth)
        assert client_sorted(client["bids"], True) == bids
        assert client_sorted(client["asks"], False) == asks
        assert book.checksum() == own_checksum(bids, asks)
    assert client["asks"] == {INST.price_text(2**62): 1}
