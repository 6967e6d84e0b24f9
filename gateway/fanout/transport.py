"""The one seam between the hub and the transports (WebSocket, SSE, polling).

The hub writes from the publish path: once per event-loop tick, every connection with
something pending hands its transport everything pending in one synchronous
:meth:`Transport.write` (batching; no task switch per delivery). Only when a client is slow
(``can_write()`` is false) does its connection wait, on a task of its own, in
:meth:`Transport.wait_writable`.

Items are envelopes (data, whose wire bytes are ``envelope.payload``) or pre-encoded control
messages (``bytes``: replies, errors, heartbeats). Transports never encode envelopes.

Each transport has two implementations behind this one protocol: a direct lane (the server's
socket, when the server offers it, see :mod:`gateway.edge.lane`) and a plain ASGI fallback
that any ASGI server runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.wire.envelope import Envelope

Outgoing = Envelope | bytes
"""One queued item: an envelope (data) or a pre-encoded control message."""


class Transport(Protocol):
    """What a connection writes to.

    ``write`` is only called when ``can_write()``; it never blocks and never awaits, and it
    raises when the client is gone (the connection then closes). ``buffered`` is what the
    transport holds for the client, written but not yet taken: the connection counts it
    against its byte bound. ``close`` is bounded in time: when
    the close cannot be written in time the transport is aborted. ``close`` may be called at
    any time and must not raise.
    """

    name: str
    """``"ws"``, ``"sse"`` or ``"poll"``: the metrics label."""

    def can_write(self) -> bool:
        """True when a write now goes out without piling up (the client keeps up)."""
        ...

    def write(self, batch: Sequence[Outgoing]) -> int:
        """Hand every item of ``batch``, in order, to the client in one write; return
        :meth:`buffered` after it."""
        ...

    def buffered(self) -> int:
        """Bytes written and not yet taken by the client."""
        ...

    async def wait_writable(self) -> None:
        """Return when :meth:`can_write` (or the client is gone)."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the client's stream (WebSocket close code; others end the response)."""
        ...


def payload(item: Outgoing) -> bytes:
    """The wire bytes of one item."""
    return item if type(item) is bytes else item.payload  # type: ignore[union-attr]


def join(batch: Sequence[Outgoing], sep: bytes = b"\n") -> bytes:
    """The wire bytes of a batch, ``sep``-joined (no trailing separator)."""
    if len(batch) == 1:
        item = batch[0]
        return item if type(item) is bytes else item.payload  # type: ignore[union-attr]
    return sep.join([item if type(item) is bytes else item.payload for item in batch])  # type: ignore[union-attr]
