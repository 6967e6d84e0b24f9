"""The request-head limits of the HTTP server (gateway.roots.http_server) on a real uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.config import GatewayConfig, HttpConfig
from gateway.roots.http_server import (
    NoClientTracebacks,
    RedactTokens,
    install_log_redaction,
    redact_tokens,
    uvicorn_config_kwargs,
)
from tests.services import free_port

LIMITS = HttpConfig(
    max_url_bytes=2000, max_header_bytes=1000, max_headers_bytes=3000, max_headers=20
)


async def _echo(request: Request) -> Response:
    return Response(orjson.dumps({"len": len(str(request.url))}), media_type="application/json")


@contextlib.asynccontextmanager
async def _serving(limits: HttpConfig = LIMITS) -> AsyncIterator[int]:
    app = Starlette(routes=[Route("/echo", _echo)])
    port = free_port()
    kwargs = {**uvicorn_config_kwargs(GatewayConfig(http=limits)), "port": port}
    kwargs["log_level"] = "error"
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", **kwargs))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def _request(port: int, head: bytes, *, trickle: bytes = b"") -> tuple[int, bytes]:
    """Send a request head (then ``trickle`` in 16 KiB pieces, stopping when the server
    answers or resets); the status and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for i in range(0, len(trickle), 16384):
            if reader.at_eof() or len(reader._buffer) > 0:  # type: ignore[attr-defined]
                break
            try:
                writer.write(trickle[i : i + 16384])
                await writer.drain()
            except ConnectionError:
                break
        data = await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status_line, _, rest = data.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), body


def _error(body: bytes) -> str:
    code: str = orjson.loads(body)["error"]["code"]
    return code


async def test_limits_answer_414_431_and_400_as_json_errors() -> None:
    async with _serving() as port:
        ok = await _request(port, b"GET /echo?x=" + b"a" * 1500 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
        assert ok[0] == 200
        status, body = await _request(port, b"GET /echo?x=" + b"a" * 3000 + b" HTTP/1.1\r\n\r\n")
        assert (status, _error(body)) == (414, "too_large")
        one = b"GET /echo HTTP/1.1\r\nX-A: " + b"a" * 1200 + b"\r\n\r\n"
        status, body = await _request(port, one)
        assert (status, _error(body)) == (431, "too_large") and b"header" in body
        many = b"GET /echo HTTP/1.1\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(25))
        status, body = await _request(port, many + b"\r\n")
        assert (status, _error(body)) == (431, "too_large")
        total = b"GET /echo HTTP/1.1\r\n" + b"".join(
            b"X-%d: %b\r\n" % (i, b"a" * 900) for i in range(5)
        )
        status, body = await _request(port, total + b"\r\n")
        assert (status, _error(body)) == (431, "too_large")
        status, body = await _request(port, b"NOT\x01HTTP\r\n\r\n")
        assert (status, _error(body)) == (400, "bad_request")


async def test_a_huge_header_is_refused_before_it_is_read_whole() -> None:
    async with _serving() as port:
        # a header of 8 MB sent in pieces: refused after about the limits, not buffered
        status, body = await _request(
            port, b"GET /echo HTTP/1.1\r\nX-Big: ", trickle=b"a" * (8 << 20)
        )
        assert (status, _error(body)) == (431, "too_large")
        # a URL growing without end: 414
        status, body = await _request(port, b"GET /echo?x=", trickle=b"a" * (8 << 20))
        assert (status, _error(body)) == (414, "too_large")
        # the server still answers
        assert (await _request(port, b"GET /echo HTTP/1.1\r\n\r\n"))[0] == 200


def test_limits_come_from_the_environment_and_are_checked() -> None:
    config = GatewayConfig.from_env(
        {"QUOTEGATE_HTTP_MAX_URL_BYTES": "1234"}, overrides={"http.max_headers": 7}
    )
    assert config.http.max_url_bytes == 1234 and config.http.max_headers == 7
    assert config.uvicorn_kwargs()["h11_max_incomplete_event_size"] == 1234 + 65536
    with pytest.raises(ValueError, match="max_header_bytes"):
        HttpConfig(max_header_bytes=0)


def test_tokens_are_redacted_from_logged_request_lines() -> None:
    assert redact_tokens("/v1/sse?ch=orders&token=sk-123&cursor=x") == (
        "/v1/sse?ch=orders&token=[redacted]&cursor=x"
    )
    assert redact_tokens("/v1/poll?token=abc") == "/v1/poll?token=[redacted]"
    assert redact_tokens("/v1/poll?mytoken=abc") == "/v1/poll?mytoken=abc"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", "/v1/poll?ch=orders&token=secret-key", "1.1", 200),
        None,
    )
    assert RedactTokens().filter(record)
    assert "secret-key" not in record.getMessage() and "[redacted]" in record.getMessage()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_the_access_log_of_a_real_server_has_no_token() -> None:
    collect = _Collect()
    access = logging.getLogger("uvicorn.access")
    async with _serving() as port:
        install_log_redaction()  # after uvicorn.Config configured its loggers, as run.py does
        access.addHandler(collect)
        saved = access.level
        access.setLevel(logging.INFO)
        try:
            status, _ = await _request(
                port, b"GET /echo?token=very-secret-key HTTP/1.1\r\nConnection: close\r\n\r\n"
            )
            await asyncio.sleep(0.05)
        finally:
            access.removeHandler(collect)
            access.setLevel(saved)
    assert status == 200
    assert collect.lines and all("very-secret-key" not in x for x in collect.lines)
    assert any("token=[redacted]" in x for x in collect.lines)


def test_a_client_fault_is_logged_without_a_traceback() -> None:
    try:
        b"\xff".decode()
    except UnicodeDecodeError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "uvicorn.error", logging.ERROR, __file__, 1,
        "Invalid UTF-8 sequence received from client.", None, exc_info,
    )  # fmt: skip
    assert NoClientTracebacks().filter(record)
    assert record.exc_info is None and record.levelno == logging.WARNING
    other = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "boom", None, exc_info)
    assert NoClientTracebacks().filter(other) and other.exc_info is not None
