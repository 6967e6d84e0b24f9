"""The published unit: one envelope, encoded once, fanned out as bytes."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson


def dumps(obj: Any) -> bytes:
    """``orjson.dumps`` for bytes that are kept (queued, stored): orjson returns a bytes
    object that still holds its 4 KiB initial buffer, whatever its length, so a queued
    80-byte reply would cost 4 KiB; the copy holds only its length."""
    return memoryview(orjson.dumps(obj)).tobytes()


SNAPSHOT = "snapshot"
UPDATE = "update"


class Envelope(NamedTuple):
    """A message of one channel, with its wire bytes encoded exactly once.

    ``channel`` is the internal channel name (``orders.<account>`` for private streams; the
    wire ``ch`` of those is ``orders``). ``payload`` is the JSON text the client receives.
    """

    type: str
    channel: str
    epoch: str
    seq: int
    ts: int
    payload: bytes

    @classmethod
    def build(
        cls,
        type_: str,
        channel: str,
        epoch: str,
        seq: int,
        ts: int,
        data: Any,
        *,
        wire_channel: str | None = None,
    ) -> Envelope:
        """Encode ``data`` into the protocol's envelope JSON once."""
        payload = dumps(
            {
                "type": type_,
                "ch": wire_channel or channel,
                "epoch": epoch,
                "seq": seq,
                "ts": ts,
                "data": data,
            }
        )
        return cls(type_, channel, epoch, seq, ts, payload)

    @classmethod
    def parse(cls, payload: bytes, *, channel: str | None = None) -> Envelope:
        """Rebuild an envelope from its wire bytes (bus consumers, store reads)."""
        obj = orjson.loads(payload)
        return cls(obj["type"], channel or obj["ch"], obj["epoch"], obj["seq"], obj["ts"], payload)

    def data(self) -> Any:
        """Decode the ``data`` member (tests and tools; the hot path never decodes)."""
        return orjson.loads(self.payload)["data"]
