"""Fuzz input -> a list of engine command lines (shared by the engine and publisher harnesses).

``command_lines(data)`` reads the fuzzer's bytes with a small deterministic reader (no
atheris needed, so a crash file replays under plain Python) and builds 1-40 JSON lines: mostly
well-formed commands (docs/engine.md, "Commands") over 1-3 symbols and 2-3 accounts, with
some fields mutated (wrong types, huge or negative integers, off-tick prices, odd decimal
strings, unicode, missing or extra fields) and some raw garbage lines. The choices are biased
towards what reaches rare branches: crossing prices around one centre, FOK quantities near the
book's depth, market buys against thin cash, replaces of the same order to the same price or
to a lower quantity, client order ids reused across a few values.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import orjson

from engine import Engine
from engine.codec import decode_command
from engine.commands import Command
from engine.events import Event

SYMBOLS = ("X", "Y", "Z")
ACCOUNTS = ("a", "b", "c")
TICKS = ("0.01", "0.5", "1", "0.05", "0.00000001", "10", "0.10", "0.25", "100")
LOTS = (1, 1, 10, 3, 100)
ODD_DECIMALS = (
    "",
    "0",
    "-1",
    "1e2",
    "1E-2",
    ".5",
    "5.",
    " 5",
    "5 ",
    "+5",
    "0x10",
    "NaN",
    "Infinity",
    "\u0661\u0662",  # Arabic-Indic digits
    "\uff11\uff12",  # fullwidth digits
    "1_000",
    "00000000000000000000000000000000000001",
    "1." + "0" * 60,
    "9" * 41,
    "0.000000001",
    "1.000000000",
    "12345678901234567890.5",
    "\ud800",
    "1.5.5",
    "--1",
)
JUNK_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63),
    10**30,
    [],
    {},
    [1],
    {"a": 1},
    "",
    "\u00e9",
    "\U0001f600",
    "\x00",
    "a" * 129,
    "X",
    "USD",
    "buy",
)


class Opaque:
    """A value no JSON encoder writes."""

    def __repr__(self) -> str:
        return "Opaque()"


DIRECT_JUNK: tuple[Any, ...] = (
    # values a command built in process may carry; each either survives the journal exactly
    # or is one no JSON encoder writes (NaN, infinities, tuples, str/int subclasses and dicts
    # with non-str keys do neither: see README, "Known limits")
    b"x",
    frozenset({1}),
    Opaque(),
    2**70,
    -(2**70),
    "\ud800",
    1.5,
    -0.0,
    True,
    [1, [2]],
    {"k": 1},
)


class Direct(NamedTuple):
    """A command submitted as a Python value: ``line`` decoded, one field replaced."""

    line: bytes
    field: int
    junk: int


Item = bytes | Direct


def to_command(item: Item) -> Command:
    """The command an item stands for (a line is decoded as ``Engine.submit_line`` does)."""
    if type(item) is bytes:
        return decode_command(item)
    assert isinstance(item, Direct)
    cmd = decode_command(item.line)
    values = list(cmd)
    values[item.field % len(values)] = DIRECT_JUNK[item.junk % len(DIRECT_JUNK)]
    return tuple.__new__(type(cmd), values)  # type: ignore[no-any-return]


def submit(engine: Engine, item: Item) -> list[Event]:
    if type(item) is bytes:
        return engine.submit_line(item)
    return engine.submit(to_command(item))


class Reader:
    """Deterministic consumer of the fuzz bytes (zeros once they run out)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def below(self, n: int) -> int:
        """An int in ``[0, n)``."""
        if n <= 256:
            return self.byte() % n
        return (self.byte() << 8 | self.byte()) % n

    def pick(self, seq: tuple[Any, ...] | list[Any]) -> Any:
        return seq[self.below(len(seq))]

    def chance(self, in256: int) -> bool:
        return self.byte() < in256

    def raw(self, max_len: int) -> bytes:
        n = self.below(max_len + 1)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def text(self, max_len: int) -> str:
        return self.raw(max_len).decode("utf-8", "replace")


class Generator:
    """Builds command lines, remembering what it defined so prices land on the grid."""

    def __init__(self, r: Reader) -> None:
        self.r = r
        self.symbols = list(SYMBOLS[: 1 + r.below(3)])
        self.accounts = list(ACCOUNTS[: 2 + r.below(2)])
        self.ticks: dict[str, str] = {}
        self.lots: dict[str, int] = {}
        self.center = 50 + r.below(100)  # in ticks
        self.ts = 1_700_000_000_000_000

    # -- values ------------------------------------------------------------------------

    def mutate(self, value: Any) -> Any:
        """Most of the time ``value``; sometimes junk."""
        r = self.r
        if not r.chance(18):
            return value
        kind = r.below(4)
        if kind == 0:
            return r.pick(JUNK_VALUES)
        if kind == 1:
            return r.pick(ODD_DECIMALS)
        if kind == 2:
            return r.text(12)
        return -value if type(value) is int else str(value) + r.pick(("0", ".", "\u0300"))

    def price(self, symbol: str) -> str:
        r = self.r
        tick = self.ticks.get(symbol, r.pick(TICKS))
        n = max(1, self.center + r.below(9) - 4)
        if r.chance(8):
            n = r.pick((1, 2**31, 2**53, 10**15, 10**25))
        whole, _, frac = tick.partition(".")
        decimals = len(frac)
        units = n * int(whole + frac)
        text = str(units).rjust(decimals + 1, "0")
        if decimals:
            text = f"{text[:-decimals]}.{text[-decimals:]}"
        if r.chance(10):
            text += "0" * (1 + r.below(4))  # trailing zeros past the scale are fine
        if r.chance(10):
            text += "1" if "." in text else ".001"  # off the tick grid
        return text

    def qty(self, symbol: str) -> int:
        r = self.r
        lot = self.lots.get(symbol, 1)
        n = 1 + r.below(12)
        if r.chance(6):
            n = r.pick((0, 10**6, 2**40, 2**62))
        q = n * lot
        if r.chance(8):
            q += 1  # off the lot
        return q

    def coid(self) -> str:
        return "o" + str(self.r.below(8))

    # -- commands ----------------------------------------------------------------------

    def instrument(self) -> dict[str, Any]:
        r = self.r
        symbol = r.pick(self.symbols) if not r.chance(10) else r.pick(("USD", "EUR", "a"))
        tick = r.pick(TICKS)
        lot = r.pick(LOTS)
        cmd: dict[str, Any] = {"op": "instrument", "symbol": symbol, "tick": tick, "lot": lot}
        if r.chance(30):
            cmd["currency"] = r.pick(("USD", "EUR", "X"))
        if r.chance(60):
            cmd["maxQty"] = lot * (1 + r.below(20))
        if r.chance(60):
            cmd["maxNotional"] = r.pick(("10", "1000", "0.5", "250.25", "99999999"))
        if r.chance(60):
            cmd["band"] = r.pick(("0.1", "0.01", "0", "1", "0.5", "2", "0.000000001"))
        if symbol not in self.ticks:
            self.ticks[symbol] = tick
            self.lots[symbol] = lot
        return cmd

    def deposit(self) -> dict[str, Any]:
        r = self.r
        if r.chance(128):
            asset: str = r.pick(("USD", "EUR"))
            amount: Any = r.pick(("1000", "25.5", "0.00000001", "1", "100000", "3"))
            if r.chance(30):
                amount = r.pick((5, 1000))
        else:
            asset = r.pick(self.symbols)
            amount = self.lots.get(asset, 1) * r.pick((1, 5, 20, 100))
        return {"op": "deposit", "account": r.pick(self.accounts), "asset": asset, "amount": amount}

    def new(self) -> dict[str, Any]:
        r = self.r
        symbol = r.pick(self.symbols)
        otype = "market" if r.chance(50) else "limit"
        cmd: dict[str, Any] = {
            "op": "new",
            "account": r.pick(self.accounts),
            "clientOrderId": self.coid(),
            "symbol": symbol,
            "side": r.pick(("buy", "sell")),
            "type": otype,
            "qty": self.qty(symbol),
        }
        if otype == "limit" or r.chance(10):
            cmd["price"] = self.price(symbol)
        if r.chance(120):
            cmd["tif"] = r.pick(("GTC", "IOC", "FOK", "FOK", "gtc", "DAY"))
        return cmd

    def cancel(self) -> dict[str, Any]:
        return {"op": "cancel", "account": self.r.pick(self.accounts), "clientOrderId": self.coid()}

    def replace(self) -> dict[str, Any]:
        r = self.r
        symbol = r.pick(self.symbols)
        cmd: dict[str, Any] = {
            "op": "replace",
            "account": r.pick(self.accounts),
            "clientOrderId": self.coid(),
        }
        which = r.below(4)
        if which != 1:
            cmd["price"] = self.price(symbol)
        if which != 0:
            cmd["qty"] = self.qty(symbol)
        return cmd

    def command(self) -> dict[str, Any]:
        r = self.r
        kind = r.below(16)
        if kind < 2:
            cmd = self.instrument()
        elif kind < 4:
            cmd = self.deposit()
        elif kind < 11:
            cmd = self.new()
        elif kind < 13:
            cmd = self.cancel()
        else:
            cmd = self.replace()
        if r.chance(25):  # mutate one field
            keys = list(cmd)
            key = r.pick(keys)
            cmd[key] = self.mutate(cmd[key])
        if r.chance(6):  # drop one field
            cmd.pop(r.pick(list(cmd)))
        if r.chance(6):  # an extra field
            cmd[r.pick(("extra", "ts", "price", "qty", "op", "\u00e9"))] = r.pick(JUNK_VALUES)
        if r.chance(30):  # an explicit, mostly increasing, event time
            self.ts += r.below(3_000_000)
            cmd["ts"] = self.ts
        return cmd

    def line(self) -> Item:
        r = self.r
        if r.chance(10):
            return r.raw(40)  # raw garbage
        cmd = self.command()
        try:
            line = orjson.dumps(cmd)
        except (orjson.JSONEncodeError, TypeError):
            # big integers, lone surrogates: the stdlib writes them (as a client might)
            line = json.dumps(cmd).encode("utf-8", "surrogatepass")
        if r.chance(8):
            return Direct(line, r.byte(), r.byte())
        return line


def setup_lines(g: Generator) -> list[bytes]:
    """Define every symbol and fund every account, so orders mostly reach the book."""
    out: list[bytes] = []
    r = g.r
    for symbol in g.symbols:
        tick = r.pick(TICKS)
        lot = r.pick(LOTS)
        cmd: dict[str, Any] = {"op": "instrument", "symbol": symbol, "tick": tick, "lot": lot}
        if r.chance(60):
            cmd["maxQty"] = lot * (5 + r.below(50))
        if r.chance(60):
            cmd["maxNotional"] = r.pick(("1000", "250.25", "99999999", "5"))
        if r.chance(60):
            cmd["band"] = r.pick(("0.1", "0.01", "0.5", "0"))
        g.ticks[symbol] = tick
        g.lots[symbol] = lot
        out.append(orjson.dumps(cmd))
    for account in g.accounts:
        cash = r.pick(("1000000", "1000", "5", "0.01", "123.45678901", None))
        if cash is not None:  # (None: no cash at all, a seller's proceeds open its entry)
            deposit = {"op": "deposit", "account": account, "asset": "USD", "amount": cash}
            out.append(orjson.dumps(deposit))
        for symbol in g.symbols:
            shares = g.lots[symbol] * r.pick((1, 10, 100, 1000))
            out.append(
                orjson.dumps(
                    {"op": "deposit", "account": account, "asset": symbol, "amount": shares}
                )
            )
    return out


def command_lines(data: bytes) -> list[Item]:
    """The setup (unless the first byte says to skip it) plus 1-40 generated lines (a few of
    them submitted as Python values with one field replaced: :class:`Direct`)."""
    r = Reader(data)
    g = Generator(r)
    lines: list[Item] = list(setup_lines(g)) if r.chance(230) else []
    lines += [g.line() for _ in range(1 + r.below(40))]
    return lines
