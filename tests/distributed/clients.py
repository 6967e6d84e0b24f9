"""A WebSocket client that records what a user of one gateway node sees, per channel, and the
checks the distributed tests make on it (no gap, no duplicate, same bytes on every node)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

Line = tuple[str, int, str, bytes]  # (type, seq, epoch, the message's bytes)


class Recorder:
    """Connects to ``base``'s ``/v1/ws``, authenticates with ``key`` (if given), subscribes
    to ``channels`` (with ``since`` positions to resume) and records every message."""

    def __init__(self, base: str, channels: list[str], *, key: str | None = None) -> None:
        self.url = base.replace("http://", "ws://") + "/v1/ws"
        self.channels = channels
        self.key = key
        self.got: dict[str, list[Line]] = {ch: [] for ch in channels}
        self.errors: list[dict[str, Any]] = []
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def start(self, since: dict[str, dict[str, Any]] | None = None) -> None:
        self._ws = await connect(self.url, max_size=None)
        if self.key is not None:
            await self._ws.send(orjson.dumps({"op": "auth", "token": self.key, "id": 1}).decode())
        msg: dict[str, Any] = {"op": "subscribe", "ch": self.channels, "id": 2}
        if since:
            msg["since"] = since
        await self._ws.send(orjson.dumps(msg).decode())
        self._task = asyncio.create_task(self._read(self._ws))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for frame in ws:
                data = frame.encode() if isinstance(frame, str) else frame
                for line in data.split(b"\n"):
                    if not line:
                        continue
                    msg = orjson.loads(line)
                    kind = msg.get("type")
                    if kind == "subscribed" and msg.get("id") == 2:
                        self.subscribed.set()
                    elif kind == "error":
                        self.errors.append(msg)
                    elif kind in ("snapshot", "update") and msg["ch"] in self.got:
                        self.got[msg["ch"]].append((kind, msg["seq"], msg["epoch"], line))

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)

    def abort(self) -> None:
        """Drop the connection without a goodbye (the client's side of a node crash)."""
        if self._task is not None:
            self._task.cancel()

    def position(self, channel: str) -> dict[str, Any]:
        _, seq, epoch, _ = self.got[channel][-1]
        return {"epoch": epoch, "seq": seq}

    def updates(self, channel: str) -> dict[int, bytes]:
        return {seq: line for kind, seq, _, line in self.got[channel] if kind == "update"}


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.02)


def assert_contiguous(lines: list[Line], channel: str) -> None:
    """One epoch; a snapshot first, then updates each one past the last: no gap, no duplicate.
    A later snapshot (a resubscription) may restart the count at its own seq."""
    assert lines, f"{channel}: nothing received"
    assert lines[0][0] == "snapshot" or lines[0][1] >= 1, channel
    assert len({epoch for _, _, epoch, _ in lines}) == 1, f"{channel}: more than one epoch"
    seq = lines[0][1]
    for kind, s, _, _ in lines[1:]:
        if kind == "snapshot":
            assert s >= seq, f"{channel}: snapshot {s} goes back from {seq}"
        else:
            assert s == seq + 1, f"{channel}: {s} after {seq}"
        seq = s


def assert_same_stream(a: dict[int, bytes], b: dict[int, bytes], channel: str) -> int:
    """The seqs both saw carry the same bytes; returns how many there were."""
    common = sorted(set(a) & set(b))
    assert common, f"{channel}: the two clients saw no update in common"
    for seq in common:
        assert a[seq] == b[seq], f"{channel} seq {seq}: {a[seq]!r} != {b[seq]!r}"
    return len(common)
