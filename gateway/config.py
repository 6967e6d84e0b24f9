"""Gateway configuration: one keyword-only dataclass per component, units in the names.

Every field can be set from the environment as ``QUOTEGATE_<FIELD>`` (top level, e.g.
``QUOTEGATE_PORT``) or ``QUOTEGATE_<SECTION>_<FIELD>`` (e.g. ``QUOTEGATE_WS_PING_INTERVAL_S``,
``QUOTEGATE_HUB_QUEUE_MAX_MESSAGES``) via :meth:`GatewayConfig.from_env`; a command line
parser passes its flags as overrides (``GatewayConfig.from_env(overrides={"port": 9000,
"ws.max_subscriptions": 200})``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "QUOTEGATE_"
TRANSPORTS = ("ws", "sse", "poll")
"""The streaming transports, in the order a client prefers them."""


@dataclass(kw_only=True, frozen=True)
class HubConfig:
    """Fan-out: per-connection send queues and the idle heartbeat.

    A connection's queue holds at most ``queue_max_messages`` envelopes and
    ``queue_max_bytes`` bytes; past that its market-data channels are conflated (resent as a
    fresh snapshot once it drains) and its ``orders`` channel closes it with 4008 (slow).
    """

    queue_max_messages: int = 4096
    queue_max_bytes: int = 4 * 1024 * 1024
    socket_send_buffer_bytes: int = 64 * 1024
    """Each client socket's kernel send buffer (``SO_SNDBUF``; Linux doubles it for its
    bookkeeping) under ``quotegate run``; 0 leaves the kernel's autotuning (up to 4 MiB a
    connection by default, held before a stalled client shows up in the bound above)."""
    heartbeat_interval_s: float = 10.0
    max_connections: int = 10_000
    resume_retries: int = 3
    """Store reads to close a gap between a store read and the live stream (a lagging store),
    and retries of a (re)subscription's store read that failed."""
    resume_retry_delay_s: float = 0.05


@dataclass(kw_only=True, frozen=True)
class WsConfig:
    """The WebSocket endpoint ``/v1/ws`` and its per-connection limits."""

    max_subscriptions: int = 100
    max_message_bytes: int = 64 * 1024
    """Inbound message bound checked by the endpoint (answered with ``too_large``)."""
    max_frame_bytes: int = 1024 * 1024
    """The server's own frame limit (uvicorn ``ws_max_size``); above ``max_message_bytes`` so
    that the endpoint, not the server, answers oversized messages."""
    rate_msgs_per_s: float = 20.0
    rate_burst_msgs: int = 20
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    close_timeout_s: float = 1.0
    """How long a slow client (4008) gets to take what it was sent and the close frame before
    the connection is aborted."""


@dataclass(kw_only=True, frozen=True)
class SseConfig:
    """Server-Sent Events ``/v1/sse``."""

    retry_ms: int = 2000
    heartbeat_interval_s: float = 10.0
    close_timeout_s: float = 1.0
    """How long an ended stream's client gets to take what is left before the connection is
    aborted (under uvicorn with the direct lane)."""


@dataclass(kw_only=True, frozen=True)
class PollConfig:
    """HTTP polling ``/v1/poll``."""

    wait_max_s: float = 30.0
    wait_default_s: float = 0.0


@dataclass(kw_only=True, frozen=True)
class RestConfig:
    """REST snapshot endpoints."""

    cache_max_age_s: float = 0.0
    """``Cache-Control: max-age`` for snapshot responses (0: revalidate with the ETag)."""
    depth_max_levels: int = 50
    trades_max: int = 50


@dataclass(kw_only=True, frozen=True)
class HttpConfig:
    """Limits on what the HTTP server reads of a request before the app sees it (every
    endpoint, including the WebSocket upgrade); past them the request is answered with the
    API's JSON error and the connection closed: ``414 too_large`` for the URL, ``431
    too_large`` for the headers (``gateway.roots.http_server``). The defaults leave room for
    the longest cursor the gateway issues (``gateway.wire.cursor.MAX_CURSOR_CHARS``, sent as
    ``cursor=`` or ``Last-Event-ID``) next to a full ``ch=`` list."""

    max_url_bytes: int = 64 * 1024
    """The request target (path and query): the request line is this plus method and version."""
    max_header_bytes: int = 40 * 1024
    """One header line (name and value)."""
    max_headers_bytes: int = 64 * 1024
    """All header lines of one request together."""
    max_headers: int = 100
    """Header lines per request."""

    def __post_init__(self) -> None:
        for name in ("max_url_bytes", "max_header_bytes", "max_headers_bytes", "max_headers"):
            if getattr(self, name) < 1:
                raise ValueError(f"http.{name} must be at least 1")


@dataclass(kw_only=True, frozen=True)
class GatewayConfig:
    """The ASGI app (:func:`gateway.edge.app.create_app`) and the server in front of it."""

    host: str = "127.0.0.1"
    port: int = 8000
    web_dir: str | None = None
    """Directory served at ``/`` (the repo's ``web/``); ``None`` serves no pages."""
    log_level: str = "info"
    transports: str = ",".join(TRANSPORTS)
    """Comma-separated transports this server offers (``QUOTEGATE_TRANSPORTS``); a transport
    left out answers its endpoint the way a blocking proxy would (see
    :mod:`gateway.edge.app`), so that clients fall back for real."""
    hub: HubConfig = field(default_factory=HubConfig)
    ws: WsConfig = field(default_factory=WsConfig)
    sse: SseConfig = field(default_factory=SseConfig)
    poll: PollConfig = field(default_factory=PollConfig)
    rest: RestConfig = field(default_factory=RestConfig)
    http: HttpConfig = field(default_factory=HttpConfig)

    def __post_init__(self) -> None:
        self.enabled_transports()  # a bad list fails here, not at the first request

    def enabled_transports(self) -> frozenset[str]:
        """The transports of :attr:`transports`; ``ValueError`` for an unknown name or none."""
        names = [n.strip() for n in self.transports.split(",") if n.strip()]
        unknown = [n for n in names if n not in TRANSPORTS]
        if unknown:
            raise ValueError(
                f"transports: unknown {', '.join(map(repr, unknown))}; "
                f"choose from {', '.join(TRANSPORTS)}"
            )
        if not names:
            raise ValueError(f"transports: name at least one of {', '.join(TRANSPORTS)}")
        return frozenset(names)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
    ) -> GatewayConfig:
        """Defaults, then ``QUOTEGATE_*`` variables, then ``overrides`` (dotted keys for
        sections: ``"ws.max_subscriptions"``; ``None`` values are ignored, so argparse
        defaults of ``None`` leave the environment's value). Bad values raise ``ValueError``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, kind in _fields(cls):
            if kind is not None:
                continue
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = raw
        sections: dict[str, dict[str, Any]] = {}
        for name, kind in _fields(cls):
            if kind is None:
                continue
            section: dict[str, Any] = {}
            for sub, _ in _fields(kind):
                raw = env.get(f"{ENV_PREFIX}{name.upper()}_{sub.upper()}")
                if raw is not None:
                    section[sub] = raw
            sections[name] = section
        for key, value in (overrides or {}).items():
            if value is None:
                continue
            if "." in key:
                section_name, sub = key.split(".", 1)
                if section_name not in sections:
                    raise ValueError(f"unknown config section {section_name!r}")
                sections[section_name][sub] = value
            else:
                values[key] = value
        base = cls()
        for name, section in sections.items():
            values[name] = _coerce_into(getattr(base, name), section)
        result: GatewayConfig = _coerce_into(base, values)
        return result

    def uvicorn_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``uvicorn.Config`` that this config decides."""
        return {
            "host": self.host,
            "port": self.port,
            # the websockets library's sans-I/O protocol (uvicorn's legacy "websockets"
            # implementation is deprecated)
            "ws": "websockets-sansio",
            "ws_max_size": max(self.ws.max_frame_bytes, self.ws.max_message_bytes + 1024),
            "ws_ping_interval": self.ws.ping_interval_s,
            "ws_ping_timeout": self.ws.ping_timeout_s,
            "ws_per_message_deflate": False,
            # the h11 implementation's own bound on an unfinished request head (the httptools
            # one gets gateway.roots.http_server's limits)
            "h11_max_incomplete_event_size": self.http.max_url_bytes + self.http.max_headers_bytes,
            "log_level": self.log_level,
        }


def _fields(cls: type) -> list[tuple[str, type | None]]:
    """(name, section class or None) for each dataclass field."""
    out: list[tuple[str, type | None]] = []
    for f in dataclasses.fields(cls):
        kind = _SECTIONS.get(f.name) if cls is GatewayConfig else None
        out.append((f.name, kind))
    return out


_SECTIONS: dict[str, type] = {
    "hub": HubConfig,
    "ws": WsConfig,
    "sse": SseConfig,
    "poll": PollConfig,
    "rest": RestConfig,
    "http": HttpConfig,
}


def _coerce_into(base: Any, values: Mapping[str, Any]) -> Any:
    """``dataclasses.replace(base, **values)`` with text values converted to the field types
    of ``base`` (int, float, bool, str, optional str)."""
    known = {f.name for f in dataclasses.fields(base)}
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known:
            raise ValueError(f"unknown config field {name!r} of {type(base).__name__}")
        changes[name] = coerce_setting(getattr(base, name), value, name)
    return dataclasses.replace(base, **changes)


def coerce_setting(current: Any, value: Any, name: str) -> Any:
    """``value`` (from a flag or the environment) in the type of the setting's ``current``
    value: booleans from 1/true/yes/on and 0/false/no/off, ints, floats; ``ValueError``
    naming the setting when it does not parse."""
    if dataclasses.is_dataclass(current) or not isinstance(value, str):
        return value
    try:
        if isinstance(current, bool):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
    except ValueError:
        raise ValueError(f"bad value {value!r} for {name}") from None
    if current is None and value == "":
        return None
    return value
