"""A seeded generator of engine command streams for benchmarks, tests and replay files.

:func:`generate` yields a realistic stream: the instruments and the deposits first, then a mix
of GTC limit orders around a per-symbol random-walk fair value (mostly passive, some crossing),
IOC and FOK limits that cross, small market orders, and cancels and replaces of orders it
placed earlier, so the books stay populated. :func:`resting` yields setup commands plus limit
orders that never cross (for measuring the memory of resting orders). The same config always
gives the same stream. The generator does not see the engine's events: it forgets orders the
fair value has come within 5 ticks of (probably filled), but a cancel or replace can still name
an order that has already filled (about a fifth of them, 7% of the stream, at the defaults);
the engine rejects it (``unknown_order``), as it would live.

Prices use a fixed tick of ``0.01`` and a lot of 1; every command carries ``ts`` (from
``ts_start_us``, ``ts_step_us`` apart) unless ``ts_step_us`` is 0.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from engine.codec import command_to_json
from engine.commands import (
    BUY,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    CancelOrder,
    Command,
    DefineInstrument,
    Deposit,
    NewOrder,
    ReplaceOrder,
)

TICK = "0.01"
_LIVE_MAX = 2_000  # remembered live orders per symbol (cancel/replace candidates)


@dataclass(frozen=True, slots=True, kw_only=True)
class CmdGenConfig:
    """Shape of a generated stream; the mix weights need not sum to 1."""

    seed: int = 1
    symbols: int = 100
    accounts: int = 100
    start_price_ticks: int = 10_000  # 100.00
    cash_per_account: str = "100000000000"
    shares_per_account: int = 1_000_000_000
    max_qty: int = 100
    ts_start_us: int = 1_700_000_000_000_000
    ts_step_us: int = 10
    weight_limit: float = 0.50
    weight_ioc: float = 0.08
    weight_fok: float = 0.04
    weight_market: float = 0.04
    weight_cancel: float = 0.20
    weight_replace: float = 0.14
    cross_fraction: float = 0.05  # of GTC limits that cross the fair value

    def __post_init__(self) -> None:
        if self.symbols < 1 or self.accounts < 1:
            raise ValueError("symbols and accounts must be >= 1")
        if self.start_price_ticks < 1_000:
            raise ValueError("start_price_ticks must be >= 1000")
        if self.max_qty < 1:
            raise ValueError("max_qty must be >= 1")


def symbol_names(count: int) -> list[str]:
    """``S000``, ``S001``, ... (zero-padded to at least 3 digits)."""
    width = max(3, len(str(count - 1)))
    return [f"S{i:0{width}d}" for i in range(count)]


def price_text(ticks: int) -> str:
    """Ticks of 0.01 as a decimal string (``10025`` -> ``"100.25"``)."""
    return f"{ticks // 100}.{ticks % 100:02d}"


def setup_commands(config: CmdGenConfig) -> list[Command]:
    """Instrument definitions, then for every account a cash deposit and a deposit of every
    symbol's shares (``symbols + accounts * (symbols + 1)`` commands)."""
    symbols = symbol_names(config.symbols)
    out: list[Command] = [DefineInstrument(s, TICK, 1) for s in symbols]
    for a in range(config.accounts):
        account = f"acct{a}"
        out.append(Deposit(account, "USD", config.cash_per_account))
        out.extend(Deposit(account, s, config.shares_per_account) for s in symbols)
    return out


def _stamp(commands: Iterable[Command], config: CmdGenConfig) -> Iterator[Command]:
    step = config.ts_step_us
    if not step:
        yield from commands
        return
    ts = config.ts_start_us
    for cmd in commands:
        yield cmd._replace(ts=ts)
        ts += step


def generate(config: CmdGenConfig, count: int) -> Iterator[Command]:
    """``count`` commands in all: the setup commands first, then the order mix."""
    return _stamp(_generate(config, count), config)


def _generate(config: CmdGenConfig, count: int) -> Iterator[Command]:
    setup = setup_commands(config)
    yield from setup[:count]
    remaining = count - len(setup)
    if remaining <= 0:
        return
    rng = random.Random(config.seed)
    rand = rng.random
    randrange = rng.randrange
    symbols = symbol_names(config.symbols)
    accounts = [f"acct{a}" for a in range(config.accounts)]
    fair = [config.start_price_ticks] * len(symbols)
    # per symbol: (account, coid, side, price) of resting candidates for cancel/replace
    live: list[list[tuple[str, str, str, int]]] = [[] for _ in symbols]
    texts: dict[int, str] = {}
    weights = [
        config.weight_limit,
        config.weight_ioc,
        config.weight_fok,
        config.weight_market,
        config.weight_cancel,
        config.weight_replace,
    ]
    total = sum(weights)
    bounds: list[float] = []
    acc = 0.0
    for w in weights:
        acc += w / total
        bounds.append(acc)
    b_limit, b_ioc, b_fok, b_market, b_cancel, _ = bounds
    max_qty = config.max_qty
    cross = config.cross_fraction
    n_sym = len(symbols)
    n_acc = len(accounts)
    floor = config.start_price_ticks // 2

    def text(ticks: int) -> str:
        found = texts.get(ticks)
        if found is None:
            found = texts[ticks] = price_text(ticks)
        return found

    for i in range(remaining):
        s = randrange(n_sym)
        symbol = symbols[s]
        f = fair[s] + randrange(-1, 2)
        if f < floor:
            f = floor
        fair[s] = f
        account = accounts[randrange(n_acc)]
        side = BUY if rand() < 0.5 else SELL
        qty = randrange(1, max_qty + 1)
        coid = f"o{i}"
        r = rand()
        pool = live[s]
        if r < b_limit:
            # a crossing offset is negative: buys above, sells below the fair value
            offset = -randrange(1, 4) if rand() < cross else 1 + int(rng.expovariate(0.15))
            price = f - offset if side == BUY else f + offset
            yield NewOrder(account, coid, symbol, side, LIMIT, text(price), qty, GTC)
            if offset > 0:  # a crossing order probably filled: not a cancel candidate
                entry = (account, coid, side, price)
                if len(pool) >= _LIVE_MAX:
                    pool[randrange(_LIVE_MAX)] = entry
                else:
                    pool.append(entry)
            continue
        if r < b_ioc:
            price = f + randrange(0, 4) if side == BUY else f - randrange(0, 4)
            yield NewOrder(account, coid, symbol, side, LIMIT, text(price), qty, IOC)
            continue
        if r < b_fok:
            price = f + randrange(0, 6) if side == BUY else f - randrange(0, 6)
            yield NewOrder(account, coid, symbol, side, LIMIT, text(price), qty, FOK)
            continue
        if r < b_market:
            yield NewOrder(account, coid, symbol, side, MARKET, None, 1 + qty // 10, IOC)
            continue
        # cancel or replace an order placed earlier; skip (and forget) orders that the fair
        # value has walked to within 5 ticks of since, as they have probably filled
        k = -1
        for _ in range(4):
            if not pool:
                break
            j = randrange(len(pool))
            _, _, p_side, p_price = pool[j]
            if (p_price < f - 5) if p_side == BUY else (p_price > f + 5):
                k = j
                break
            pool[j] = pool[-1]
            pool.pop()
        if k < 0:
            price = f - 5 if side == BUY else f + 5
            yield NewOrder(account, coid, symbol, side, LIMIT, text(price), qty)
            continue
        owner, target, target_side, _ = pool[k]
        if r < b_cancel:
            pool[k] = pool[-1]
            pool.pop()
            yield CancelOrder(owner, target)
        elif rand() < 0.5:
            yield ReplaceOrder(owner, target, qty=qty)
        else:
            offset = 1 + int(rng.expovariate(0.2))
            price = f - offset if target_side == BUY else f + offset
            pool[k] = (owner, target, target_side, price)
            yield ReplaceOrder(owner, target, price=text(price))


def resting(config: CmdGenConfig, orders: int) -> Iterator[Command]:
    """The setup commands, then ``orders`` GTC limit orders that never cross: buys below and
    sells above each symbol's start price, spread over 400 levels a side."""
    return _stamp(_resting(config, orders), config)


def _resting(config: CmdGenConfig, orders: int) -> Iterator[Command]:
    yield from setup_commands(config)
    rng = random.Random(config.seed)
    randrange = rng.randrange
    symbols = symbol_names(config.symbols)
    accounts = [f"acct{a}" for a in range(config.accounts)]
    mid = config.start_price_ticks
    texts = {t: price_text(t) for t in range(mid - 401, mid + 402)}
    n_sym, n_acc = len(symbols), len(accounts)
    for i in range(orders):
        offset = 1 + randrange(400)
        side = BUY if i & 1 else SELL
        price = mid - offset if side == BUY else mid + offset
        yield NewOrder(
            accounts[randrange(n_acc)],
            f"r{i}",
            symbols[randrange(n_sym)],
            side,
            LIMIT,
            texts[price],
            randrange(1, config.max_qty + 1),
            GTC,
        )


def to_lines(commands: Iterable[Command]) -> Iterator[bytes]:
    """The spec's JSON line of each command (without newline)."""
    dumps = orjson.dumps
    for cmd in commands:
        yield dumps(command_to_json(cmd))


def write_jsonl(path: str, commands: Iterable[Command]) -> int:
    """Write commands as a JSON-lines file; returns the number of lines."""
    n = 0
    with open(path, "wb", buffering=1 << 20) as f:
        batch: list[bytes] = []
        for line in to_lines(commands):
            batch.append(line)
            if len(batch) >= 10_000:
                f.write(b"\n".join(batch) + b"\n")
                n += len(batch)
                batch.clear()
        if batch:
            f.write(b"\n".join(batch) + b"\n")
            n += len(batch)
    return n
