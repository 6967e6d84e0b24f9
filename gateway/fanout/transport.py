"""The one seam between the hub and the three transports (WebSocket, SSE, polling).

A :class:`~gateway.fanout.connection.Connection`'s writer task hands its transport everything that
is pending in one :meth:`Transport.send` call; the transport writes it in one go (one
WebSocket text frame with messages joined by ``\\n``, one SSE write, one poll response).
Items are envelopes (data, whose wire bytes are ``envelope.payload``) or pre-encoded control
messages (``bytes``: replies, errors, heartbeats). Transports never encode envelopes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.wire.envelope import Envelope

Outgoing = Envelope | bytes
"""One queued item: an envelope (data) or a pre-encoded control message."""


class Transport(Protocol):
    """What a connection writes to.

    ``send`` is called by one writer task at a time, never concurrently, and may block as long
    as the client is slow (only that client's writer waits). An exception from ``send`` means
    the client is gone: the connection closes. ``close`` may be called while a ``send`` is
    pending (the slow-client close) and must not raise.
    """

    name: str
    """``"ws"``, ``"sse"`` or ``"poll"``: the metrics label."""

    async def send(self, batch: Sequence[Outgoing]) -> None:
        """Write every item of ``batch``, in order, in one write."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the client's stream (WebSocket close code; others end the response)."""
        ...


def payload(item: Outgoing) -> bytes:
    """The wire bytes of one item."""
    return item if type(item) is bytes else item.payload  # type: ignore[union-attr]


def join(batch: Sequence[Outgoing], sep: bytes = b"\n") -> bytes:
    """The wire bytes of a batch, ``sep``-joined (no trailing separator)."""
    return sep.join([item if type(item) is bytes else item.payload for item in batch])  # type: ignore[union-attr]
