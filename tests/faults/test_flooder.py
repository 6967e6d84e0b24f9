"""A WebSocket client that sends as fast as it can and never reads.

It sends ping frames (answered with pongs by the server) and malformed ops (answered with
``error`` messages) through a socket with a 4 KiB receive buffer that it never reads, so every
reply stays on the server. Every byte a connection can make the server hold counts against its
bound: the server's resident memory stays within a stated bound while the flood lasts, the
flooder's connection is closed once past it, and a reading bystander's stream stays gap-free
(checksums verified) without stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import pytest

from tests.faults.harness import (
    bystander,
    client_frame,
    running,
    ws_handshake,
)

pytestmark = pytest.mark.slow

MB = 1 << 20
STALL_MAX_S = 3.0
"""The longest a bystander may go without a frame (at 300 orders/s it gets several a second;
the unbounded server stalled everyone for 14 s). Generous for a shared 2-core machine."""
FLOOD_S = 6.0
RSS_GROWTH_MAX = 64 * MB
"""The bound on the server's RSS growth while one client floods (its send queue is bounded by
``HubConfig.queue_max_bytes``, 4 MiB by default)."""


def _flood(port: int, seconds: float) -> tuple[int, bool]:
    """Flood for ``seconds`` without reading; (frames sent, whether the server closed us)."""
    sock = ws_handshake(port, rcvbuf_bytes=4096)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    ping = client_frame(0x9, b"x" * 100)
    bad = client_frame(0x1, b'{"op":"nope","id":1}')
    batch = (ping + bad) * 500
    sent = 0
    closed = False
    deadline = time.monotonic() + seconds
    sock.settimeout(0.2)
    try:
        while time.monotonic() < deadline:
            try:
                sock.sendall(batch)
                sent += 1000
            except TimeoutError:
                continue  # the server stopped reading us for now: keep pushing
            except OSError:
                closed = True
                break
        if not closed:  # nothing was read: is the connection still open?
            with contextlib.suppress(OSError):
                sock.settimeout(2.0)
                sock.sendall(batch)
                sock.sendall(batch)
    finally:
        sock.close()
    return sent, closed


async def test_a_non_reading_flooder_is_bounded_and_others_unaffected(tmp_path: Path) -> None:
    with running(tmp_path / "qg.log", "--symbols", "AAPL", "--rate", "300") as qg:
        async with bystander(qg) as watch:
            rss_before = qg.rss_bytes()
            peak = rss_before
            flood = asyncio.create_task(asyncio.to_thread(_flood, qg.port, FLOOD_S))
            while not flood.done():
                peak = max(peak, qg.rss_bytes())
                await asyncio.sleep(0.05)
            sent, closed = flood.result()
        growth = peak - rss_before
        assert sent > 10_000, "the flood did not get going"
        assert growth < RSS_GROWTH_MAX, f"RSS grew by {growth / MB:.0f} MB ({sent} frames)"
        assert closed, "the flooder was never disconnected"
        assert watch.client.updates > 100 and not watch.client.gaps, watch.client.gaps[:5]
        assert not watch.client.checksum_mismatches
        stall = watch.longest_stall_s()
        assert stall < STALL_MAX_S, f"the bystander's stream stalled for {stall:.2f} s"
