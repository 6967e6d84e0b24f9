"""Hostile requests against ``quotegate run``: a huge header, a huge URL, broken WebSocket
frames.

Each is refused with the API's JSON error (``431`` / ``414 too_large``) after about the
configured limits (``HttpConfig``), not read whole: the server's memory stays flat and the
bystander's stream neither stalls nor skips. A ``ch=`` list of 10,000 channels gets the JSON
error too (``414``; a long list under the URL limit ``400 bad_request``), never uvicorn's
plain-text 400. Frames the WebSocket protocol refuses close the connection with the
protocol-level codes: 1002 (an unmasked client frame), 1007 (a text frame that is not UTF-8),
1009 (a frame over ``WsConfig.max_frame_bytes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import time
from pathlib import Path

import orjson
import pytest

from tests.faults.harness import (
    bystander,
    client_frame,
    http_head_response,
    read_close_code,
    running,
    ws_handshake,
)

pytestmark = pytest.mark.slow

MB = 1 << 20
STALL_MAX_S = 3.0
"""The longest a bystander may go without a frame (at 300 orders/s it gets several a second;
the unbounded server stalled everyone for 14 s). Generous for a shared 2-core machine."""


def _send_huge(port: int, head: bytes, filler_bytes: int) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` then ``filler_bytes`` of ``a`` (1 MiB at a time) until the server answers;
    its answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(head)
        chunk = b"a" * MB
        sent = 0
        while sent < filler_bytes:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except OSError:  # the server closed its side after answering
                break
            sent += len(chunk)
        return http_head_response(sock, 10)
    finally:
        sock.close()


def _plain_get(port: int, target: bytes) -> tuple[int, dict[str, str], bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        return http_head_response(sock, 10)
    finally:
        sock.close()


async def test_huge_header_and_url_are_refused_without_hurting_others(tmp_path: Path) -> None:
    with running(tmp_path / "qg.log", "--symbols", "AAPL", "--rate", "300") as qg:
        async with bystander(qg) as watch:
            rss_before = qg.rss_bytes()
            peak = rss_before
            head = b"GET /v1/poll?ch=book.AAPL HTTP/1.1\r\nHost: h\r\nX-Big: "
            started = time.monotonic()
            flood = asyncio.create_task(asyncio.to_thread(_send_huge, qg.port, head, 128 * MB))
            while not flood.done():
                peak = max(peak, qg.rss_bytes())
                await asyncio.sleep(0.02)
            status, headers, body = flood.result()
            assert (status, orjson.loads(body)["error"]["code"]) == (431, "too_large")
            assert headers["content-type"] == "application/json"
            assert time.monotonic() - started < 5
            url = asyncio.create_task(
                asyncio.to_thread(_send_huge, qg.port, b"GET /v1/poll?ch=", 128 * MB)
            )
            while not url.done():
                peak = max(peak, qg.rss_bytes())
                await asyncio.sleep(0.02)
            status, _, body = url.result()
            assert (status, orjson.loads(body)["error"]["code"]) == (414, "too_large")
        growth = peak - rss_before
        assert growth < 32 * MB, f"RSS grew by {growth / MB:.1f} MB"
        assert watch.client.updates > 50 and not watch.client.gaps, watch.client.gaps[:5]
        assert not watch.client.checksum_mismatches
        stall = watch.longest_stall_s()
        assert stall < STALL_MAX_S, f"the bystander's stream stalled for {stall:.2f} s"

        many = ",".join(f"book.S{i}" for i in range(10_000)).encode()
        status, headers, body = _plain_get(qg.port, b"/v1/poll?ch=" + many)
        assert (status, orjson.loads(body)["error"]["code"]) == (414, "too_large")
        status, headers, body = _plain_get(qg.port, b"/v1/poll?ch=" + many[:60_000])
        assert status == 400 and headers["content-type"] == "application/json"
        assert orjson.loads(body)["error"]["code"] == "bad_request"
        assert "Traceback" not in qg.log_text()


async def test_broken_websocket_frames_get_the_protocol_close_codes(tmp_path: Path) -> None:
    with running(tmp_path / "qg.log", "--feed", "none", "--symbols", "AAPL") as qg:
        unmasked = ws_handshake(qg.port)
        unmasked.sendall(b"\x81\x05hello")  # a client frame without the mask bit
        assert read_close_code(unmasked) == 1002
        unmasked.close()
        not_utf8 = ws_handshake(qg.port)
        not_utf8.sendall(client_frame(0x1, b"\xff\xfe{}"))
        assert read_close_code(not_utf8) == 1007
        not_utf8.close()
        too_big = ws_handshake(qg.port)
        size = 2 * MB  # over the default max_frame_bytes (1 MiB)
        head = bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big") + b"\0\0\0\0"
        with contextlib.suppress(OSError):  # the server may close before taking it all
            too_big.sendall(head + b"a" * size)
        assert read_close_code(too_big) == 1009
        too_big.close()
        assert "Traceback" not in qg.log_text()
