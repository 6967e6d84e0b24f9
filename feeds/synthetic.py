"""A synthetic market: seeded order flow for the embedded engine.

Per symbol a fair value follows a seeded random walk (in ticks). Market makers quote both sides
around it, a few levels deep, and keep their quotes fresh by placing, replacing and cancelling
them; takers cross the spread with IOC limit and market orders. The result is a live book,
trades, a ticker and candles for every symbol.

Two parts:

* :class:`SyntheticMarket` is pure and deterministic: ``setup()`` returns the instrument
  definitions and opening deposits, ``next_command()`` the next order command. Feeding it the
  engine's events (``observe``) lets makers forget quotes that were filled or cancelled, so the
  same seed and the same engine give the same stream.
* :class:`SyntheticFeed` is the async driver: it paces the generator at ``orders_per_s`` and
  hands each command to a ``submit`` callable (the embedded sequencing point), passing the
  events it returns back to the generator.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.commands import (
    BUY,
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
from engine.events import Cancelled, Done, Rejected
from engine.instruments import Instrument
from runtime.tasks import cancel_and_wait

DEFAULT_SYMBOLS = ("AAPL", "MSFT", "TSLA")


@dataclass(kw_only=True)
class SyntheticConfig:
    """Shape of the synthetic market. Prices are in ticks of ``tick`` unless named ``*_price``."""

    symbols: Sequence[str] = DEFAULT_SYMBOLS
    orders_per_s: float = 200.0
    seed: int = 1
    tick: str = "0.01"
    lot: int = 1
    start_prices: dict[str, str] = field(default_factory=dict)  # default: seeded 50..500
    makers: int = 4
    takers: int = 2
    maker_levels: int = 8  # quotes per maker and side
    half_spread_ticks: int = 2  # best maker quote distance from fair value
    level_step_ticks: int = 3  # distance between a maker's levels
    maker_max_qty: int = 50
    taker_max_qty: int = 30
    taker_share: float = 0.25  # fraction of commands that are taker orders
    market_order_share: float = 0.3  # fraction of taker orders that are market orders
    cancel_share: float = 0.15  # fraction of maker actions that cancel a quote
    volatility_ticks: float = 1.5  # standard deviation of one fair-value step
    deposit_cash: str = "1000000000000"  # per account, in the currency
    deposit_shares: int = 1_000_000_000  # per account and symbol
    tick_interval_ms: int = 10  # pacing granularity of the async driver
    batch_max_orders: int = 500  # per tick: bounds how long the feed holds the event loop
    backlog_max_ms: int = 1000  # a backlog beyond this much of the rate is dropped


@dataclass
class _Quote:
    client_order_id: str
    price: int


@dataclass
class _Maker:
    account: str
    bids: dict[str, list[_Quote]] = field(default_factory=dict)  # symbol -> quotes
    asks: dict[str, list[_Quote]] = field(default_factory=dict)


class SyntheticMarket:
    """The pure generator (see the module docstring). Not thread-safe; one consumer."""

    def __init__(self, config: SyntheticConfig) -> None:
        if not config.symbols:
            raise ValueError("the synthetic feed needs at least one symbol")
        if config.makers < 1:
            raise ValueError("the synthetic feed needs at least one market maker")
        self.config = config
        self._rng = random.Random(config.seed)
        self._symbols = list(dict.fromkeys(config.symbols))
        self._instruments = {
            s: Instrument.define(symbol=s, tick=config.tick, lot=config.lot) for s in self._symbols
        }
        self._fair: dict[str, float] = {}
        for s in self._symbols:
            text = config.start_prices.get(s)
            ticks = self._instruments[s].ticks(text) if text is not None else None
            if ticks is None:
                if text is not None:
                    raise ValueError(f"bad start price {text!r} for {s}")
                start = self._rng.randint(50, 500)
                ticks = self._instruments[s].ticks(str(start))
                assert ticks is not None
            self._fair[s] = float(ticks)
        self._makers = [_Maker(f"mm{i + 1}") for i in range(config.makers)]
        for m in self._makers:
            for s in self._symbols:
                m.bids[s] = []
                m.asks[s] = []
        self._by_coid: dict[tuple[str, str], tuple[_Maker, str, bool]] = {}
        self._takers = [f"tk{i + 1}" for i in range(config.takers)]
        self._counter = 0

    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    @property
    def accounts(self) -> list[str]:
        return [m.account for m in self._makers] + self._takers

    def fair_price(self, symbol: str) -> str:
        """The current fair value of ``symbol`` as a price string."""
        return self._instruments[symbol].price_text(self._fair_ticks(symbol))

    def setup(self) -> list[Command]:
        """Instrument definitions, then opening deposits for every synthetic account."""
        cfg = self.config
        out: list[Command] = [
            DefineInstrument(symbol=s, tick=cfg.tick, lot=cfg.lot) for s in self._symbols
        ]
        currencies = sorted({self._instruments[s].currency for s in self._symbols})
        for account in self.accounts:
            out.extend(Deposit(account, c, cfg.deposit_cash) for c in currencies)
            out.extend(Deposit(account, s, cfg.deposit_shares) for s in self._symbols)
        return out

    def next_command(self) -> Command:
        """The next order command (new, replace or cancel)."""
        rng = self._rng
        symbol = self._symbols[rng.randrange(len(self._symbols))]
        self._step_fair(symbol)
        if self._takers and rng.random() < self.config.taker_share:
            return self._taker_order(symbol)
        return self._maker_action(symbol, self._makers[rng.randrange(len(self._makers))])

    def commands(self, n: int) -> list[Command]:
        """``n`` order commands (tests and benchmarks; no feedback from an engine)."""
        return [self.next_command() for _ in range(n)]

    def observe(self, events: Iterable[object]) -> None:
        """Forget maker quotes that the engine reports done, cancelled or rejected."""
        for ev in events:
            if isinstance(ev, Done | Cancelled | Rejected) and ev.account and ev.client_order_id:
                self._forget(ev.account, ev.client_order_id)

    # internals ----------------------------------------------------------------------------

    def _fair_ticks(self, symbol: str) -> int:
        return max(1, round(self._fair[symbol]))

    def _step_fair(self, symbol: str) -> None:
        floor = float(self.config.half_spread_ticks + self.config.level_step_ticks * 2 + 10)
        self._fair[symbol] = max(
            floor, self._fair[symbol] + self._rng.gauss(0.0, self.config.volatility_ticks)
        )

    def _next_coid(self) -> str:
        self._counter += 1
        return f"s{self._counter}"

    def _price(self, symbol: str, ticks: int) -> str:
        return self._instruments[symbol].price_text(max(1, ticks))

    def _taker_order(self, symbol: str) -> Command:
        rng, cfg = self._rng, self.config
        account = self._takers[rng.randrange(len(self._takers))]
        side = BUY if rng.random() < 0.5 else SELL
        qty = rng.randint(1, cfg.taker_max_qty) * cfg.lot
        coid = self._next_coid()
        if rng.random() < cfg.market_order_share:
            return NewOrder(account, coid, symbol, side, MARKET, None, qty, IOC)
        fair = self._fair_ticks(symbol)
        reach = cfg.half_spread_ticks + rng.randint(0, cfg.level_step_ticks * 2)
        price = fair + reach if side == BUY else fair - reach
        return NewOrder(account, coid, symbol, side, LIMIT, self._price(symbol, price), qty, IOC)

    def _maker_action(self, symbol: str, maker: _Maker) -> Command:
        rng, cfg = self._rng, self.config
        is_bid = rng.random() < 0.5
        quotes = (maker.bids if is_bid else maker.asks)[symbol]
        fair = self._fair_ticks(symbol)
        level = rng.randrange(cfg.maker_levels)
        offset = cfg.half_spread_ticks + level * cfg.level_step_ticks + rng.randint(0, 1)
        price = max(1, fair - offset) if is_bid else fair + offset
        if len(quotes) < cfg.maker_levels:
            coid = self._next_coid()
            quotes.append(_Quote(coid, price))
            self._by_coid[(maker.account, coid)] = (maker, symbol, is_bid)
            qty = rng.randint(1, cfg.maker_max_qty) * cfg.lot
            side = BUY if is_bid else SELL
            return NewOrder(
                maker.account, coid, symbol, side, LIMIT, self._price(symbol, price), qty, GTC
            )
        if rng.random() < cfg.cancel_share:
            quote = quotes[rng.randrange(len(quotes))]
            self._forget(maker.account, quote.client_order_id)
            return CancelOrder(maker.account, quote.client_order_id)
        # replace the quote farthest from the fair value with a fresh price near it
        stale = max(quotes, key=lambda q: abs(q.price - fair))
        stale.price = price
        if rng.random() < 0.5:
            return ReplaceOrder(maker.account, stale.client_order_id, self._price(symbol, price))
        qty = rng.randint(1, cfg.maker_max_qty) * cfg.lot
        return ReplaceOrder(maker.account, stale.client_order_id, self._price(symbol, price), qty)

    def _forget(self, account: str, coid: str) -> None:
        found = self._by_coid.pop((account, coid), None)
        if found is None:
            return
        maker, symbol, is_bid = found
        quotes = (maker.bids if is_bid else maker.asks)[symbol]
        for i, q in enumerate(quotes):
            if q.client_order_id == coid:
                del quotes[i]
                break


Submit = Callable[[Command], Any]
"""Where the feed sends a command: returns the engine's events for it (or ``None``)."""


class SyntheticFeed:
    """Paces a :class:`SyntheticMarket` at ``orders_per_s`` on its own task.

    ``start()`` submits the setup commands at once, then order commands at the configured
    rate (in batches every ``tick_interval_ms``, at most ``batch_max_orders`` each, so the
    event loop stays responsive; a late tick catches up, bounded to ``backlog_max_ms`` worth
    of orders). Events returned by ``submit`` are fed back to the generator.
    """

    def __init__(
        self,
        config: SyntheticConfig,
        submit: Submit,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.market = SyntheticMarket(config)
        self.config = config
        self._submit = submit
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._setup_done = False
        self.submitted = 0
        self.errors = 0
        self.ticks = 0
        """Pacing ticks run so far (each reads the clock once and sends what is due)."""

    def submit_setup(self) -> None:
        """Submit the instrument definitions and deposits (once; ``start`` calls it too)."""
        if self._setup_done:
            return
        self._setup_done = True
        for cmd in self.market.setup():
            self._send(cmd)

    async def start(self) -> None:
        if self._task is not None:
            return
        self.submit_setup()
        self._task = asyncio.create_task(self._run(), name="synthetic-feed")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    @property
    def running(self) -> bool:
        """Whether the pacing task is alive (started and not closed)."""
        return self._task is not None and not self._task.done()

    def _send(self, cmd: Command) -> None:
        try:
            events = self._submit(cmd)
        except Exception:
            self.errors += 1
            return
        self.submitted += 1
        if events:
            self.market.observe(events)

    async def _run(self) -> None:
        cfg = self.config
        rate = cfg.orders_per_s
        if rate <= 0:
            return
        interval_s = max(0.001, cfg.tick_interval_ms / 1000)
        backlog_max = max(1.0, rate * cfg.backlog_max_ms / 1000)
        last = self._clock()
        owed = 0.0
        while True:
            now = self._clock()
            # what the rate owes since the last tick; past the bound (the engine cannot keep
            # up, or the loop was paused) the rest is dropped rather than burst
            owed = min(owed + (now - last) * rate, backlog_max)
            last = now
            n = min(int(owed), cfg.batch_max_orders)
            owed -= n
            for _ in range(n):
                self._send(self.market.next_command())
            self.ticks += 1
            await asyncio.sleep(interval_s)
