"""The HTTP server in front of the app: uvicorn with httptools, and the request-head limits.

uvicorn's httptools protocol puts no bound on a request's head: httptools accumulates a header
value in memory until its end arrives, so one 128 MB header was read whole (hundreds of MB of
RSS, and the event loop busy for seconds: every stream stalled). :class:`LimitedHttpToolsProtocol`
bounds it with :class:`gateway.config.HttpConfig`:

- the URL (request target), as its fragments arrive (``on_url``): past ``max_url_bytes``,
  ``414 too_large``;
- each header line (``on_header``: name and value) against ``max_header_bytes``, all of them
  against ``max_headers_bytes`` and their number against ``max_headers``: ``431 too_large``;
- the raw bytes of a head still incomplete after a read (the header httptools is still
  accumulating) against ``max_url_bytes + max_headers_bytes``: ``414`` while the URL is still
  being read, else ``431``. So at most about one read (64-256 KiB) more than the limits is ever
  held.

Each refusal is the API's JSON error body (``{"error":{"code":"too_large",..}}``) with
``Connection: close``; the connection is then half-closed, whatever the client still sends is
read and dropped (never buffered) and it is closed after :data:`LINGER_S`. A request httptools
cannot parse at all gets ``400 bad_request`` in the same JSON form, not uvicorn's plain-text
400. The limits apply to every request, including the WebSocket upgrade.

API keys passed as ``token=`` in a stream URL (``/v1/sse``, ``/v1/poll``, ``/v1/ws``) would
otherwise reach uvicorn's access log (``uvicorn.access``; WebSocket handshakes are logged on
``uvicorn.error``): :func:`install_log_redaction` puts a :class:`RedactTokens` filter on both
loggers that rewrites ``token=<key>`` to ``token=[redacted]`` in every logged argument, and a
:class:`NoClientTracebacks` filter that keeps uvicorn from logging a stack trace for a frame a
client got wrong (invalid UTF-8: one warning line instead).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.config import GatewayConfig, HttpConfig
from gateway.edge.lane import LaneHttpProtocol, lane_protocol
from gateway.wire.errors import BAD_REQUEST, TOO_LARGE, error_body

LINGER_S = 2.0
"""How long a refused connection's further input is read and dropped before it is closed."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the request-head limits of ``limits`` (a class
    attribute: :func:`limited_protocol` makes a subclass per configuration)."""

    limits: HttpConfig = HttpConfig()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._begin_head()
        self._refused = False

    def _begin_head(self) -> None:
        self._head_pending = True
        self._head_bytes = 0
        self._url_bytes = 0
        self._header_count = 0
        self._header_bytes = 0
        self._refusal: tuple[int, str] | None = None

    # -- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begin_head()

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self.limits.max_url_bytes:
            self._refusal = (414, f"the URL is longer than {self.limits.max_url_bytes} bytes")
            raise _Refused
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        limits = self.limits
        size = len(name) + len(value)
        self._header_count += 1
        self._header_bytes += size
        if size > limits.max_header_bytes:
            self._refusal = (431, f"a header is longer than {limits.max_header_bytes} bytes")
        elif self._header_bytes > limits.max_headers_bytes:
            self._refusal = (431, f"the headers are longer than {limits.max_headers_bytes} bytes")
        elif self._header_count > limits.max_headers:
            self._refusal = (431, f"more than {limits.max_headers} headers")
        if self._refusal is not None:
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_pending = False
        super().on_headers_complete()

    # -- reading -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._refused or not self._head_pending or self.parser is None:
            return
        # the whole read belonged to a head that is still incomplete
        self._head_bytes += len(data)
        limits = self.limits
        if self._head_bytes > limits.max_url_bytes + limits.max_headers_bytes:
            if self._header_count == 0 and self._url_bytes >= self._head_bytes - 16:
                self._send_refusal(414, "the URL is too long")
            else:
                self._send_refusal(431, "the request headers are too long")

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this for a request httptools refused, our limits included."""
        refusal = self._refusal
        if refusal is not None:
            self._send_refusal(refusal[0], refusal[1])
        else:
            self._send_refusal(400, "malformed HTTP request", code=BAD_REQUEST)

    def _send_refusal(self, status: int, message: str, *, code: str = TOO_LARGE) -> None:
        if self._refused:
            return
        self._refused = True
        body = error_body(code, message)
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(b"".join(content))
        # a lingering close: what the client is still sending is read and dropped for a moment
        # (closing with unread input would reset the connection, and the client could lose
        # the answer before reading it)
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(LINGER_S, transport.close)
        else:
            transport.close()


class _Refused(httptools.HttpParserError):
    """Raised from a parser callback to stop parsing a request past a limit."""


def limited_protocol(limits: HttpConfig) -> type[LimitedHttpToolsProtocol]:
    """A :class:`LimitedHttpToolsProtocol` subclass with these limits (uvicorn's ``http=``)."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


def uvicorn_config_kwargs(config: GatewayConfig) -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments: the gateway's own, uvloop, and the protocol
    classes: httptools with the request-head limits and the SSE body lane, websockets-sansio
    with the WebSocket lane (:mod:`gateway.edge.lane`)."""
    http = type("GatewayHttpProtocol", (LaneHttpProtocol, limited_protocol(config.http)), {})
    return {
        **config.uvicorn_kwargs(),
        "http": http,
        "ws": lane_protocol(
            max_held_bytes=config.hub.queue_max_bytes,
            close_timeout_s=config.ws.close_timeout_s,
        ),
        "loop": "uvloop",
    }


_TOKEN_RE = re.compile(r"(?i)((?:^|[?&;])token=)[^&;#\s\"]*")
REDACTED = "[redacted]"
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact_tokens(text: str) -> str:
    """``text`` with every ``token=<value>`` query parameter's value replaced."""
    if "oken=" not in text and "OKEN=" not in text:
        return text
    return _TOKEN_RE.sub(r"\g<1>" + REDACTED, text)


class RedactTokens(logging.Filter):
    """Rewrites ``token=`` values in a record's message and string arguments (the request
    line uvicorn logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in args)
        elif isinstance(args, dict):
            record.args = {
                k: redact_tokens(v) if isinstance(v, str) else v for k, v in args.items()
            }
        return True


CLIENT_FAULTS = frozenset({"Invalid UTF-8 sequence received from client."})
"""uvicorn messages about what a client sent, logged with a traceback (``logger.exception``):
one line is enough, or every bad frame a client sends writes a stack into the log."""


class NoClientTracebacks(logging.Filter):
    """Drops the traceback of the :data:`CLIENT_FAULTS` records (the line stays)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.msg in CLIENT_FAULTS:
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install_log_redaction() -> None:
    """Put the :class:`RedactTokens` and :class:`NoClientTracebacks` filters on uvicorn's
    loggers (once; call it after ``uvicorn.Config`` configured logging)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        for kind in (RedactTokens, NoClientTracebacks):
            if not any(isinstance(f, kind) for f in logger.filters):
                logger.addFilter(kind())
