"""Streams: gap-free seq, the exact bytes of Envelope.build, snapshot caching per seq,
conflation timing and frozen snapshots."""

from __future__ import annotations

from typing import Any

from gateway.marketdata.sequencing import NEVER, Stream, new_epoch
from gateway.wire.envelope import Envelope


class Feed:
    """A counter feed: pending increments, snapshot = the published total."""

    def __init__(self) -> None:
        self.total = 0
        self.pending: list[int] = []
        self.renders = 0

    def add(self, n: int) -> None:
        self.total += n
        self.pending.append(n)

    def take(self) -> dict[str, Any] | None:
        if not self.pending:
            return None
        out = {"adds": self.pending}
        self.pending = []
        return out

    def render(self) -> dict[str, Any]:
        self.renders += 1
        return {"total": self.total}


def make(interval_us: int = 0, wire: str | None = None) -> tuple[Stream, Feed, list[Envelope]]:
    out: list[Envelope] = []
    feed = Feed()
    stream = Stream(
        "x.A", "ep", out.append, feed.render, take=feed.take, interval_us=interval_us, ts=7,
        wire=wire,
    )  # fmt: skip
    return stream, feed, out


def test_publish_bytes_equal_envelope_build() -> None:
    stream, _, out = make(wire="orders")
    data = {"a": [1, "2.50"], "b": None, "é": 'ü\n"q'}
    env = stream.publish(1_700_000_000_000_123, data)
    want = Envelope.build(
        "update", "x.A", "ep", 1, 1_700_000_000_000_123, data, wire_channel="orders"
    )
    assert env == want and out == [want]
    assert type(env) is Envelope and env.data() == data
    plain, _, _ = make()
    assert plain.publish(5, [1]) == Envelope.build("update", "x.A", "ep", 1, 5, [1])
    sink: list[Envelope] = []
    odd = Stream('orders.100%d"\\', "e%s", sink.append, dict)  # % and escapes in the names
    assert odd.publish(3, {}) == Envelope.build("update", 'orders.100%d"\\', "e%s", 1, 3, {})


def test_seq_is_gap_free_and_snapshot_cached_per_seq() -> None:
    stream, feed, out = make()
    snap0 = stream.snapshot()
    assert (snap0.type, snap0.seq, snap0.ts, snap0.data()) == ("snapshot", 0, 7, {"total": 0})
    assert stream.snapshot() is snap0 and feed.renders == 1
    for k in range(1, 6):
        feed.add(k)
        assert stream.offer(100 * k, 100 * k) is False
    assert [e.seq for e in out] == [1, 2, 3, 4, 5]
    assert [e.ts for e in out] == [100, 200, 300, 400, 500]
    snap = stream.snapshot()
    assert snap.seq == 5 and snap.ts == 500 and snap.data() == {"total": 15}
    assert stream.snapshot() is snap and feed.renders == 2
    assert stream.offer(600, 600) is False and len(out) == 5  # nothing to take: no update


def test_conflation_coalesces_and_freezes_the_snapshot() -> None:
    stream, feed, out = make(interval_us=1_000)
    assert stream.last_emit_us == NEVER
    feed.add(1)
    assert stream.offer(10_000, 10_000) is False  # first change: due at once
    stream.freeze()
    feed.add(2)
    assert stream.offer(10_100, 10_100) is True and stream.pending
    feed.add(3)
    assert stream.offer(10_500, 10_500) is True
    snap = stream.snapshot()  # still the published state at seq 1
    assert snap.seq == 1 and snap.data() == {"total": 1}
    assert not stream.due(10_999) and stream.due(11_000)
    stream.flush(11_000)
    assert [e.data() for e in out] == [{"adds": [1]}, {"adds": [2, 3]}]
    assert out[1].seq == 2 and out[1].ts == 10_500  # ts of the latest included change
    assert stream.snapshot().data() == {"total": 6} and stream.snapshot().seq == 2
    stream.flush(12_000)  # nothing pending: no update
    assert len(out) == 2


def test_epochs_are_short_random_tokens() -> None:
    epochs = {new_epoch() for _ in range(50)}
    assert len(epochs) == 50
    assert all(len(e) == 6 and e.isalnum() and e == e.lower() for e in epochs)
