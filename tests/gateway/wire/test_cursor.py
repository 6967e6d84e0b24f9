from __future__ import annotations

import base64
import re

import orjson
from hypothesis import given
from hypothesis import strategies as st

from gateway.wire import cursor

CHANNELS = st.sampled_from(
    ["book.AAPL", "trades.AAPL", "ticker.MSFT", "candles.AAPL.1m", "orders", "book.X"]
)
POSITIONS = st.dictionaries(
    CHANNELS,
    st.tuples(st.text("abcdefghijk0123456789", min_size=1, max_size=12), st.integers(0, 2**62)),
    max_size=6,
)


@given(POSITIONS)
def test_round_trip(positions: dict[str, tuple[str, int]]) -> None:
    text = cursor.encode(positions)
    assert cursor.decode(text) == positions


@given(POSITIONS)
def test_url_safe_and_versioned(positions: dict[str, tuple[str, int]]) -> None:
    text = cursor.encode(positions)
    assert text.startswith("v1.")
    assert re.fullmatch(r"[A-Za-z0-9_.\-]+", text)


def test_same_positions_same_cursor_whatever_the_order() -> None:
    a = cursor.encode({"book.A": ("e", 1), "trades.A": ("e", 2)})
    b = cursor.encode({"trades.A": ("e", 2), "book.A": ("e", 1)})
    assert a == b


def _raw(obj: object) -> str:
    return "v1." + base64.urlsafe_b64encode(orjson.dumps(obj)).decode().rstrip("=")


def test_garbage_decodes_to_none() -> None:
    bad: list[object] = [
        None,
        12,
        b"v1.e30",
        "",
        "v1.",
        "v2.e30",
        "v1.!!!!",
        "v1.%%%",
        "v1.é",
        "v1." + "A" * 10_000,
        _raw([1, 2]),
        _raw({"book.A": ["e"]}),
        _raw({"book.A": ["e", -1]}),
        _raw({"book.A": ["e", 1.5]}),
        _raw({"book.A": ["e", True]}),
        _raw({"book.A": ["", 1]}),
        _raw({"book.A": [1, 1]}),
        _raw({"nope.A": ["e", 1]}),
        _raw({"book.A": {"epoch": "e", "seq": 1}}),
        "v1." + base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ]
    for value in bad:
        assert cursor.decode(value) is None, value


def test_a_cursor_of_100_long_channels_decodes() -> None:
    # 100 channels of symbols of about 28 characters or more already made a cursor past the old
    # limit of 8192 characters: the gateway wrote SSE ids and poll cursors it then refused
    names = [f"candles.{'S' * 51}{i:02d}.1m" for i in range(100)]
    positions = {name: ("e" * 64, 2**63 - 1) for name in names}
    assert max(len(n) for n in names) == 64
    text = cursor.encode(positions)
    assert len(text) > 8192
    assert cursor.decode(text) == positions


def test_empty_cursor_is_valid() -> None:
    assert cursor.decode(cursor.encode({})) == {}


@given(st.text(max_size=200))
def test_decode_never_raises(text: str) -> None:
    result = cursor.decode(text)
    assert result is None or isinstance(result, dict)
    result = cursor.decode("v1." + text)
    assert result is None or isinstance(result, dict)
