"""The replay feed: order, pacing by ts (with an injected clock), ts handling, bad lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.commands import Command, Deposit, Malformed, NewOrder
from feeds.replay import ReplayConfig, ReplayFeed, due_offset_s, read_commands

LINES = [
    b'{"op":"instrument","symbol":"AAPL","tick":"0.01","lot":1,"ts":1000000}',
    b'{"op":"deposit","account":"a","asset":"USD","amount":"1000.00","ts":1000000}',
    b"",
    b"not json",
    b'{"op":"new","account":"a","clientOrderId":"1","symbol":"AAPL","side":"buy",'
    b'"type":"limit","price":"10.00","qty":5,"ts":3000000}',
    b'{"op":"new","account":"a","clientOrderId":"2","symbol":"AAPL","side":"buy",'
    b'"type":"limit","price":"10.00","qty":5,"ts":5000000}',
]


@pytest.fixture
def commands_file(tmp_path: Path) -> Path:
    path = tmp_path / "commands.jsonl"
    path.write_bytes(b"\n".join(LINES) + b"\n")
    return path


def test_read_commands_skips_blanks_and_keeps_bad_lines(commands_file: Path) -> None:
    cmds = list(read_commands(commands_file))
    assert len(cmds) == 5
    assert isinstance(cmds[1], Deposit)
    assert isinstance(cmds[2], Malformed)
    assert isinstance(cmds[3], NewOrder) and cmds[3].ts == 3_000_000


def test_due_offsets() -> None:
    assert due_offset_s(3_000_000, 1_000_000, 1.0) == 2.0
    assert due_offset_s(3_000_000, 1_000_000, 4.0) == 0.5
    assert due_offset_s(3_000_000, 1_000_000, 0.0) == 0.0
    assert due_offset_s(None, 1_000_000, 1.0) == 0.0
    assert due_offset_s(500_000, 1_000_000, 1.0) == 0.0


class FakeTime:
    """A clock that only moves when the feed sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(("speed", "sleeps"), [(1.0, [2.0, 2.0]), (2.0, [1.0, 1.0]), (0.0, [])])
async def test_paced_by_recorded_ts(commands_file: Path, speed: float, sleeps: list[float]) -> None:
    got: list[Command] = []
    fake = FakeTime()
    feed = ReplayFeed(
        ReplayConfig(path=str(commands_file), speed=speed),
        got.append,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    await feed.start()
    await feed.finished.wait()
    await feed.close()
    await feed.close()
    assert fake.sleeps == sleeps
    assert len(got) == 5 and feed.submitted == 5
    assert all(c.ts is None for c in got)  # live time is stamped by the sequencer


async def test_keep_ts(commands_file: Path) -> None:
    got: list[Command] = []
    fake = FakeTime()
    feed = ReplayFeed(
        ReplayConfig(path=str(commands_file), speed=0, keep_ts=True),
        got.append,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    await feed.start()
    await feed.finished.wait()
    await feed.close()
    assert [c.ts for c in got] == [1_000_000, 1_000_000, None, 3_000_000, 5_000_000]


async def test_submit_errors_do_not_stop_the_feed(commands_file: Path) -> None:
    calls: list[Command] = []

    def submit(cmd: Command) -> None:
        calls.append(cmd)
        if len(calls) == 2:
            raise RuntimeError("boom")

    feed = ReplayFeed(ReplayConfig(path=str(commands_file), speed=0), submit)
    await feed.start()
    await feed.finished.wait()
    await feed.close()
    assert len(calls) == 5 and feed.errors == 1 and feed.submitted == 4


def test_missing_file_and_bad_speed(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ReplayFeed(ReplayConfig(path=str(tmp_path / "nope")), lambda c: None)
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError):
        ReplayFeed(ReplayConfig(path=str(tmp_path / "f"), speed=-1), lambda c: None)


def test_leading_instruments_scans_only_the_first_lines(tmp_path: Path) -> None:
    from feeds.replay import leading_instruments

    path = tmp_path / "cmds.jsonl"
    path.write_text(
        '{"op":"instrument","symbol":"AAA","tick":"0.01","lot":1}\n'
        '{"op":"deposit","account":"a","asset":"USD","amount":"10"}\n'
        '{"op":"instrument","symbol":"BBB","tick":"0.01","lot":1}\n'
    )
    assert [i.symbol for i in leading_instruments(str(path))] == ["AAA", "BBB"]
    assert [i.symbol for i in leading_instruments(str(path), scan_lines=2)] == ["AAA"]
