"""Coverage-guided fuzzing of the private ``orders.<account>`` channels (atheris).

The command lines of :mod:`fuzz_gen` run through an engine (tiny or default retention) and
each command's events through a :class:`~gateway.marketdata.publisher.Publisher` (depth and
conflation of the public channels chosen by the input; ``orders`` is never conflated) whose
``open_orders`` is the embedded runtime's own (``EmbeddedRuntime._open_orders``). The
publisher renders these records from byte templates (``gateway/marketdata/orders.py``); the
expected records here come from the engine's events through ``engine.codec`` only. After
every command:

* the ``orders.*`` envelopes of the command are, in order, exactly one per event for each
  account it concerns: ``event_to_json`` of an accepted, rejected (with an account),
  cancelled, replaced or done event; for a trade the execution record of each side
  (``execution_record``: ``event``/``seq``/``inSeq``/``account`` then ``execution_to_json``
  for that side, the dict form the publisher's byte templates must equal), buy side
  first, both for a self-trade; a rejection without an account, or with the empty account
  of a malformed ``account`` field, on no stream;
* each one on ``orders.<its account>``, wire ``ch`` ``orders``, its ``ts`` the event's, its
  data the same bytes orjson writes for the codec's dict (key order included), and every
  channel's ``seq`` gap-free from 1;
* for every account seen so far, a late joiner's snapshot (``Publisher.snapshot``) is at the
  account's last seq and lists exactly the orders resting in the engine's books for that
  account, by order id, each as ``engine.codec.order_to_json`` renders it.

    .venv/bin/python tests/fuzz/fuzz_orders.py -max_total_time=900 -max_len=2048 /tmp/corpus
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

import orjson

try:
    import atheris
except ImportError:  # replay-only mode
    atheris = None

with (
    atheris.instrument_imports(include=["gateway.marketdata", "gateway.trading.order_service"])
    if atheris
    else contextlib.nullcontext()
):
    import fuzz_checks  # puts the repo root on sys.path
    import fuzz_gen

    from engine import Engine
    from engine.codec import event_to_json, order_to_json
    from engine.events import Event, Trade
    from gateway.marketdata.orders import execution_record
    from gateway.marketdata.publisher import Publisher, PublisherConfig
    from gateway.roots.embedded import EmbeddedRuntime
    from gateway.wire.channels import orders_channel
    from gateway.wire.envelope import Envelope

DEPTHS = (1, 3, 50)
CONFLATE: tuple[dict[str, int], ...] = (
    {},
    {"book": 100, "ticker": 250, "candles": 250},
    {"book": 1, "trades": 2_000},
)


def expected_records(engine: Engine, events: list[Event]) -> list[tuple[str, dict[str, Any]]]:
    """(account, record) for every ``orders`` update the events should give, in order,
    from the codec alone."""
    instruments = engine.instruments
    want: list[tuple[str, dict[str, Any]]] = []
    for ev in events:
        if type(ev) is Trade:
            for side, account in (("buy", ev.buy_account), ("sell", ev.sell_account)):
                want.append((account, execution_record(ev, side, instruments)))
        else:
            owner: str | None = getattr(ev, "account", None)
            if owner:  # none or empty (a malformed account field): no stream
                want.append((owner, event_to_json(ev, instruments)))
    return want


def engine_open_orders(engine: Engine, account: str) -> list[dict[str, Any]]:
    """The account's orders resting in the engine's books, by order id, as the codec renders
    them (found by walking the books, not through the order manager's per-account index)."""
    found = []
    for symbol, inst in engine.instruments.items():
        book = engine.book(symbol)
        if book is None:
            continue
        for side in ("buy", "sell"):
            for level in book.levels(side):
                found += [(o.order_id, o, inst) for o in level.orders() if o.account == account]
    found.sort(key=lambda t: t[0])
    return [order_to_json(o, inst) for _, o, inst in found]


def test_one_input(data: bytes) -> None:
    lines = fuzz_gen.command_lines(data)
    knobs = fuzz_gen.Reader(data[-4:])
    depth = knobs.pick(DEPTHS)
    conflate = knobs.pick(CONFLATE)
    tiny = knobs.chance(128)
    engine = fuzz_checks.publisher_engine(tiny=tiny)
    runtime: Any = SimpleNamespace(engine=engine)  # what EmbeddedRuntime._open_orders reads

    def open_orders(account: str) -> list[dict[str, Any]]:
        return EmbeddedRuntime._open_orders(runtime, account)  # the runtime's own wiring

    out: list[Envelope] = []
    pub = Publisher(
        PublisherConfig(epoch="f", book_depth=depth, conflate_ms=conflate),
        sink=out.append,
        clock=lambda: 0,
        open_orders=open_orders,
        instrument_lookup=engine.instruments.get,
    )
    seqs: dict[str, int] = {}
    accounts: dict[str, None] = dict.fromkeys(fuzz_gen.ACCOUNTS)  # every account seen, in order
    join_at = data[0] % len(lines) if data else 0

    def check_snapshots() -> None:
        for account in accounts:
            channel = orders_channel(account)
            snap = pub.snapshot(channel)
            assert snap is not None and snap.channel == channel
            assert snap.seq == seqs.get(channel, 0), (channel, snap.seq)
            assert snap.payload.startswith(b'{"type":"snapshot","ch":"orders",'), snap.payload
            want = engine_open_orders(engine, account)
            assert snap.data() == {"open": want}, (account, snap.data(), want)

    for i, line in enumerate(lines):
        if i == join_at:  # a late joiner before any snapshot of this input was taken
            check_snapshots()
        events = fuzz_gen.submit(engine, line)
        if conflate and events:
            pub.flush_due(events[0].ts)
        pub.on_events(events)
        got = [env for env in out if env.channel.startswith("orders.")]
        out.clear()
        want = expected_records(engine, events)
        assert len(got) == len(want), (line, [e.payload for e in got], want)
        for env, (account, rec), ev_ts in zip(got, want, (r["ts"] for _, r in want), strict=True):
            accounts.setdefault(account)
            channel = orders_channel(account)
            assert env.channel == channel, (env.channel, channel)
            assert env.type == "update" and env.epoch == "f"
            assert env.seq == seqs.get(channel, 0) + 1, (channel, env.seq)
            seqs[channel] = env.seq
            assert env.ts == ev_ts, (env.ts, ev_ts)
            assert env.payload.startswith(b'{"type":"update","ch":"orders","epoch":"f",')
            assert env.data() == rec, (env.data(), rec)
            body = orjson.dumps(rec)
            assert env.payload.endswith(b'"data":' + body + b"}"), (env.payload, body)
        check_snapshots()


if __name__ == "__main__":
    fuzz_checks.fuzz_main(test_one_input, atheris)
