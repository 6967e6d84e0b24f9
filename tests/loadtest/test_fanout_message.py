"""What a fan-out client counts of the bench message: gaps, repeats, snapshots, latency."""

from __future__ import annotations

import time

import orjson

from loadtest import fanout_message
from loadtest.fanout_message import BUCKET_US, Tally, latency_summary, merge_buckets, update


def test_message_is_a_book_update_envelope_of_about_200_bytes() -> None:
    env = update("book.BENCH", 7, ts_us=1_000)
    obj = orjson.loads(env.payload)
    assert (obj["type"], obj["ch"], obj["seq"], obj["ts"]) == ("update", "book.BENCH", 7, 1_000)
    assert {"bids", "asks", "checksum"} <= set(obj["data"])
    assert 150 <= len(update("book.BENCH", 123_456).payload) <= 250


def test_tally_counts_messages_gaps_and_repeats_per_channel() -> None:
    tally = Tally()
    tally.recording = True
    last: dict[bytes, int] = {}
    now = time.time_ns() // 1000
    frame = b"\n".join(
        [
            fanout_message.snapshot("book.A", 4).payload,  # the stream starts at 4
            update("book.A", 5, now).payload,
            update("trades.A", 1, now).payload,
            update("book.A", 8, now).payload,  # 6 and 7 lost
            update("book.A", 8, now).payload,  # repeated
            b'{"type":"heartbeat","ts":1}',  # not an envelope: not counted
        ]
    )
    assert tally.feed(last, frame) == 5
    assert last == {b"book.A": 8, b"trades.A": 1}
    report = tally.report()
    assert (report["messages"], report["lost"], report["repeated"]) == (5, 2, 1)
    assert report["bytes"] == len(frame)
    assert sum(report["buckets"].values()) == 4  # updates only: the snapshot is not timed


def test_tally_reads_messages_escaped_inside_socketio_events() -> None:
    tally = Tally()
    tally.recording = True
    last: dict[bytes, int] = {}
    payload = update("book.BENCH", 3).payload.decode()
    assert tally.feed(last, b"42" + orjson.dumps(["m", payload])) == 1
    assert last == {b"book.BENCH": 3}


def test_tally_counts_nothing_until_recording_and_reset_clears() -> None:
    tally = Tally()
    last: dict[bytes, int] = {}
    tally.feed(last, update("book.A", 1).payload)
    assert tally.report()["messages"] == 0 and last == {b"book.A": 1}  # seqs still followed
    tally.recording = True
    tally.feed(last, update("book.A", 3).payload)
    assert tally.report()["lost"] == 1
    tally.reset()
    assert tally.report() == {"messages": 0, "bytes": 0, "lost": 0, "repeated": 0, "buckets": {}}


def test_latency_summary_of_merged_buckets() -> None:
    one = {"buckets": {100: 98, 1000: 2}}  # 98 at ~1 ms, 2 at ~10 ms
    two = {"buckets": {100: 100}}
    merged = merge_buckets([one, two])
    assert merged == {100: 198, 1000: 2}
    summary = latency_summary(merged)
    assert summary["p50_ms"] is not None and summary["max_ms"] is not None
    assert abs(summary["p50_ms"] - (100 * BUCKET_US + BUCKET_US // 2) / 1000) < 0.01
    assert summary["p99_ms"] is not None and summary["p99_ms"] < 2
    assert 9.9 < summary["max_ms"] < 10.1
    assert latency_summary({})["p99_ms"] is None


def test_channels_of_the_many_channels_scenario() -> None:
    assert fanout_message.book_channels(1) == ["book.BENCH"]
    channels = fanout_message.book_channels(3)
    assert channels == ["book.S000", "trades.S000", "book.S001", "trades.S001", "book.S002",
                        "trades.S002"]  # fmt: skip
    assert fanout_message.symbol_names(channels) == ["S000", "S001", "S002"]
