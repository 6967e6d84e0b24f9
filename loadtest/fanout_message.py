"""The message of ``quotegate bench fanout`` and what a client counts of it.

Every server under test sends the same bytes: a quotegate envelope (``Envelope.build``) of a
book-update-like ``data`` (~200 bytes in all) whose ``ts`` is the publish time in microseconds
(``time.time_ns() // 1000`` in the server process; the clients read the same clock). quotegate
sends the envelope itself; the comparison servers send its payload as their text message
(python-socketio escapes it inside its event array).

A client finds ``type``, ``ch``, ``seq`` and ``ts`` of every message in whatever it received
with one compiled regular expression (:data:`MESSAGE`), escaped quotes allowed, so a frame of
many newline-separated messages, an SSE chunk or a poll body is scanned in one C-level pass,
and :class:`Tally` counts them: messages, per-channel seq gaps (lost) and repeats, and the
publish-to-receive latency of every update in 10 us buckets (a dict increment per message; the
buckets go into an HdrHistogram only when the figures are reported).
"""

from __future__ import annotations

import re
import time
from typing import Any

from gateway.wire.envelope import SNAPSHOT, UPDATE, Envelope

EPOCH = "bench"
SYMBOL = "BENCH"
BUCKET_US = 10
"""Latency resolution of :class:`Tally` (microseconds per bucket)."""

MESSAGE = re.compile(
    rb'type\\?":\\?"(\w)\w*\\?",\\?"ch\\?":\\?"([^"\\]+)\\?",\\?"epoch\\?":\\?"[^"\\]*\\?",'
    rb'\\?"seq\\?":(\d+),\\?"ts\\?":(\d+)'
)
"""``type`` (its first letter), ``ch``, ``seq`` and ``ts`` of an envelope, plain or escaped."""


def book_channels(symbols: int) -> list[str]:
    """Channel names of the benchmark: ``book.BENCH`` for one symbol, else the book and trades
    channels of ``S000``.. ``S<symbols-1>``."""
    if symbols <= 1:
        return [f"book.{SYMBOL}"]
    return [f"{kind}.S{i:03d}" for i in range(symbols) for kind in ("book", "trades")]


def symbol_names(channels: list[str]) -> list[str]:
    """The symbols of ``channels`` (``book.AAPL`` -> ``AAPL``), in order, once each."""
    return list(dict.fromkeys(ch.split(".", 1)[1] for ch in channels))


def _data(seq: int) -> dict[str, Any]:
    price = 10_000 + seq % 97
    return {
        "bids": [[f"{price / 100:.2f}", 5 + seq % 13], [f"{(price - 1) / 100:.2f}", 0]],
        "asks": [[f"{(price + 2) / 100:.2f}", 7 + seq % 11], [f"{(price + 3) / 100:.2f}", 4]],
        "checksum": (seq * 2_654_435_761) % 4_294_967_296,
    }


def update(channel: str, seq: int, ts_us: int | None = None) -> Envelope:
    """Update ``seq`` of ``channel``, stamped now (or at ``ts_us``)."""
    ts = time.time_ns() // 1000 if ts_us is None else ts_us
    return Envelope.build(UPDATE, channel, EPOCH, seq, ts, _data(seq))


def snapshot(channel: str, seq: int) -> Envelope:
    """A snapshot of ``channel`` at ``seq`` (what a quotegate subscriber gets first)."""
    return Envelope.build(SNAPSHOT, channel, EPOCH, seq, time.time_ns() // 1000, _data(seq))


class Tally:
    """What one client process received: call :meth:`feed` with each connection's ``last``
    (channel -> last seq seen) and the bytes it got."""

    __slots__ = ("buckets", "bytes", "lost", "messages", "recording", "repeated")

    def __init__(self) -> None:
        self.recording = False
        self.reset()

    def reset(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.lost = 0
        self.repeated = 0
        self.buckets: dict[int, int] = {}

    def feed(self, last: dict[bytes, int], data: bytes) -> int:
        """Count every message in ``data``; returns how many there were."""
        found = MESSAGE.findall(data)
        if not found:
            return 0
        now = time.time_ns() // 1000
        buckets = self.buckets
        lost = repeated = 0
        for kind, channel, seq_text, ts_text in found:
            seq = int(seq_text)
            before = last.get(channel)
            last[channel] = seq
            if kind != b"u":
                continue  # a snapshot: the stream (re)starts at its seq
            if before is not None:
                if seq > before + 1:
                    lost += seq - before - 1
                elif seq <= before:
                    repeated += 1
            if self.recording:
                key = (now - int(ts_text)) // BUCKET_US
                buckets[key] = buckets.get(key, 0) + 1
        if self.recording:
            self.messages += len(found)
            self.bytes += len(data)
            self.lost += lost
            self.repeated += repeated
        return len(found)

    def report(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "bytes": self.bytes,
            "lost": self.lost,
            "repeated": self.repeated,
            "buckets": dict(self.buckets),
        }


def latency_summary(buckets: dict[int, int]) -> dict[str, float | None]:
    """p50/p99/p99.9/max in milliseconds of merged :attr:`Tally.buckets` (``None`` when there
    were none)."""
    from hdrh.histogram import HdrHistogram

    if not buckets:
        return {"p50_ms": None, "p99_ms": None, "p999_ms": None, "max_ms": None}
    hist = HdrHistogram(1, 3_600_000_000, 3)
    for key, count in buckets.items():
        value = max(1, key * BUCKET_US + BUCKET_US // 2)
        hist.record_value(min(value, 3_600_000_000), count)
    return {
        "p50_ms": hist.get_value_at_percentile(50) / 1000,
        "p99_ms": hist.get_value_at_percentile(99) / 1000,
        "p999_ms": hist.get_value_at_percentile(99.9) / 1000,
        "max_ms": hist.get_max_value() / 1000,
    }


def merge_buckets(reports: list[dict[str, Any]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for report in reports:
        for key, count in report["buckets"].items():
            merged[key] = merged.get(key, 0) + count
    return merged
