"""``quotegate run``: everything in one process (engine, feed, gateway, live page).

Each flag has a ``QUOTEGATE_*`` environment variable; a flag wins over the environment, the
environment over the default. The gateway's own tuning (``QUOTEGATE_WS_*``, ``QUOTEGATE_HUB_*``,
...) is read by :meth:`gateway.config.GatewayConfig.from_env`. See ``docs/running.md``.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn

    from gateway.config import GatewayConfig
    from gateway.roots.embedded_config import EmbeddedConfig

DEFAULT_SYMBOLS = "AAPL,MSFT,TSLA"
DEFAULT_CANDLES_DB = "data/candles.sqlite3"
DEFAULT_DATABASE_URL = "sqlite:data/reports.sqlite3"

# flag dest -> (environment variable, default)
ENV: dict[str, tuple[str, Any]] = {
    "host": ("QUOTEGATE_HOST", "127.0.0.1"),
    "port": ("QUOTEGATE_PORT", 8000),
    "symbols": ("QUOTEGATE_SYMBOLS", DEFAULT_SYMBOLS),
    "feed": ("QUOTEGATE_FEED", "synthetic"),
    "rate": ("QUOTEGATE_RATE", 200.0),
    "seed": ("QUOTEGATE_SEED", 1),
    "replay_file": ("QUOTEGATE_REPLAY_FILE", None),
    "replay_speed": ("QUOTEGATE_REPLAY_SPEED", 1.0),
    "accounts": ("QUOTEGATE_ACCOUNTS", None),
    "demo_key": ("QUOTEGATE_DEMO_KEY", None),
    "redis": ("QUOTEGATE_REDIS", None),
    "candles_db": ("QUOTEGATE_CANDLES_DB", DEFAULT_CANDLES_DB),
    "candles_retention_s": ("QUOTEGATE_CANDLES_RETENTION_S", "1s=86400"),
    "web_dir": ("QUOTEGATE_WEB_DIR", None),
    "transports": ("QUOTEGATE_TRANSPORTS", "ws,sse,poll"),
    "log_level": ("QUOTEGATE_LOG_LEVEL", "info"),
    "journal": ("QUOTEGATE_JOURNAL", None),
    "database_url": ("QUOTEGATE_DATABASE_URL", DEFAULT_DATABASE_URL),
    "reporter_queue_records": ("QUOTEGATE_REPORTER_QUEUE_RECORDS", 1_000_000),
    "reporter_batch_records": ("QUOTEGATE_REPORTER_BATCH_RECORDS", 5000),
    "fsync": ("QUOTEGATE_FSYNC", "interval"),
    "fsync_interval_ms": ("QUOTEGATE_FSYNC_INTERVAL_MS", 5.0),
    "book_depth": ("QUOTEGATE_BOOK_DEPTH", 50),
    "conflate_ms": ("QUOTEGATE_CONFLATE_MS", ""),
    "history_max": ("QUOTEGATE_HISTORY_MAX", 1000),
    "store_flush_interval_ms": ("QUOTEGATE_STORE_FLUSH_INTERVAL_MS", 50),
    "gc_threshold": ("QUOTEGATE_GC_THRESHOLD", 50_000),
    "finished_orders_max": ("QUOTEGATE_FINISHED_ORDERS_MAX", 1_000_000),
    "executions_max": ("QUOTEGATE_EXECUTIONS_MAX", 100_000),
}


HTTP_LIMIT_FLAGS: dict[str, tuple[str, str]] = {
    "--http-max-url-bytes": ("http.max_url_bytes", "longest URL, else 414 (default 65536)"),
    "--http-max-header-bytes": (
        "http.max_header_bytes",
        "longest header line, else 431 (default 40960)",
    ),
    "--http-max-headers-bytes": (
        "http.max_headers_bytes",
        "all header lines of a request, else 431 (default 65536)",
    ),
    "--http-max-headers": ("http.max_headers", "header lines per request, else 431 (default 100)"),
}
"""Flags of the HTTP request-head limits (``gateway.config.HttpConfig``): flag -> (config key,
help). Their environment variables are read by ``GatewayConfig.from_env``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``quotegate run`` (defaults ``None``: then the environment, then ``ENV``)."""
    a = parser.add_argument
    a("--host", help="address to bind (QUOTEGATE_HOST, default 127.0.0.1)")
    a("--port", type=int, help="port (QUOTEGATE_PORT, default 8000)")
    a("--web-dir", help="directory served at / (QUOTEGATE_WEB_DIR, default the repo's web/)")
    a(
        "--transports",
        metavar="LIST",
        help="streaming transports to offer, comma-separated; one left out is refused as a "
        "blocking proxy would (WebSocket handshake 403, SSE/poll 404) "
        "(QUOTEGATE_TRANSPORTS, default ws,sse,poll)",
    )
    for flag, (key, what) in HTTP_LIMIT_FLAGS.items():
        env = "QUOTEGATE_" + key.upper().replace(".", "_")
        a(flag, type=int, dest=flag[2:].replace("-", "_"), help=f"{what} ({env})")
    add_engine_arguments(parser)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the engine side (feed, accounts, storage, journal, publisher, GC): shared
    by ``quotegate run`` and ``quotegate engine``."""
    a = parser.add_argument
    a("--symbols", help=f"comma-separated symbols (QUOTEGATE_SYMBOLS, default {DEFAULT_SYMBOLS})")
    a(
        "--feed",
        choices=("synthetic", "replay", "none"),
        help="order flow (QUOTEGATE_FEED, default synthetic)",
    )
    a("--rate", type=float, help="synthetic orders per second (QUOTEGATE_RATE, default 200)")
    a("--seed", type=int, help="synthetic feed seed (QUOTEGATE_SEED, default 1)")
    a("--replay-file", help="commands JSON-lines file for --feed replay (QUOTEGATE_REPLAY_FILE)")
    a(
        "--replay-speed",
        type=float,
        help="replay speed: 1 = recorded, 10 = ten times faster, 0 = as fast as possible "
        "(QUOTEGATE_REPLAY_SPEED, default 1)",
    )
    a("--accounts", metavar="FILE", help="accounts, API keys and deposits (QUOTEGATE_ACCOUNTS)")
    a("--demo-key", help="API key of the demo account when no --accounts (QUOTEGATE_DEMO_KEY)")
    a("--redis", metavar="URL", help="keep snapshots in Redis (QUOTEGATE_REDIS)")
    a(
        "--candles-db",
        metavar="PATH",
        help=f"SQLite file of closed candles, ':memory:' for none on disk "
        f"(QUOTEGATE_CANDLES_DB, default {DEFAULT_CANDLES_DB})",
    )
    a(
        "--candles-retention-s",
        metavar="RES=S,...",
        help="how far behind the newest candle each resolution is kept in the candles db, in "
        "seconds; resolutions not named are kept forever, '' keeps all "
        "(QUOTEGATE_CANDLES_RETENTION_S, default 1s=86400)",
    )
    a("--log-level", help="debug, info, warning, error (QUOTEGATE_LOG_LEVEL, default info)")
    a(
        "--journal",
        metavar="PATH",
        help="journal every command to PATH and restore from it at start (QUOTEGATE_JOURNAL; "
        "default none: nothing is written)",
    )
    a(
        "--database-url",
        metavar="URL",
        help="reporting database for history, statements and reconciliation: "
        "sqlite:PATH, postgresql://user@host:port/db, or 'none' for no reporter "
        f"(QUOTEGATE_DATABASE_URL, default {DEFAULT_DATABASE_URL})",
    )
    a(
        "--reporter-queue-records",
        type=int,
        help="records the reporter's queue holds before it overflows "
        "(QUOTEGATE_REPORTER_QUEUE_RECORDS, default 1000000)",
    )
    a(
        "--reporter-batch-records",
        type=int,
        help="records per reporting transaction at most "
        "(QUOTEGATE_REPORTER_BATCH_RECORDS, default 5000)",
    )
    a(
        "--fsync",
        choices=("every", "interval", "never"),
        help="when the journal reaches the disk (QUOTEGATE_FSYNC, default interval)",
    )
    a(
        "--fsync-interval-ms",
        type=float,
        help="group-commit interval of --fsync interval (QUOTEGATE_FSYNC_INTERVAL_MS, default 5)",
    )
    a("--book-depth", type=int, help="book levels per side (QUOTEGATE_BOOK_DEPTH, default 50)")
    a(
        "--conflate-ms",
        metavar="KIND=MS,...",
        help="publish interval per channel kind, e.g. book=100,ticker=250 (kinds: book, "
        "ticker, candles, trades; QUOTEGATE_CONFLATE_MS, default none: every change)",
    )
    a(
        "--history-max",
        type=int,
        help="updates kept per channel for resuming (QUOTEGATE_HISTORY_MAX, default 1000)",
    )
    a(
        "--store-flush-interval-ms",
        type=int,
        help="Redis store write batching (QUOTEGATE_STORE_FLUSH_INTERVAL_MS, default 50)",
    )
    a(
        "--gc-threshold",
        type=int,
        help="GC generation-0 threshold after setup, 0 leaves the GC alone "
        "(QUOTEGATE_GC_THRESHOLD, default 50000)",
    )
    a(
        "--finished-orders-max",
        type=int,
        help="finished orders the engine keeps for lookup, by newest order id; 0 keeps all "
        "(QUOTEGATE_FINISHED_ORDERS_MAX, default 1000000)",
    )
    a(
        "--executions-max",
        type=int,
        help="executions each account keeps, the newest; 0 keeps all "
        "(QUOTEGATE_EXECUTIONS_MAX, default 100000)",
    )


def settings(
    args: argparse.Namespace,
    env: Mapping[str, str] | None = None,
    *,
    table: Mapping[str, tuple[str, Any]] = ENV,
) -> dict[str, Any]:
    """Flag, else environment, else default, converted to the default's type (``table``:
    flag dest -> (variable, default); ``quotegate run``'s by default)."""
    env = os.environ if env is None else env
    out: dict[str, Any] = {}
    for dest, (var, default) in table.items():
        value = getattr(args, dest, None)
        if value is None:
            raw = env.get(var)
            if raw is None or raw == "":
                value = default
            else:
                try:
                    value = type(default)(raw) if isinstance(default, int | float) else raw
                except ValueError:
                    raise ValueError(f"{var}={raw!r} is not a valid {dest}") from None
        out[dest] = value
    return out


def embedded_config(s: Mapping[str, Any]) -> EmbeddedConfig:
    """The embedded runtime's config from :func:`settings` (``quotegate run`` and ``quotegate
    engine``). Bad values raise ``ValueError``."""
    from engine import EngineConfig
    from gateway.marketdata.publisher import PublisherConfig, parse_conflate_ms
    from gateway.roots.embedded_config import EmbeddedConfig
    from gateway.roots.run_journal import RunJournalConfig
    from gateway.seams.candle_buffer import parse_retention_s

    return EmbeddedConfig(
        symbols=[x for x in str(s["symbols"]).split(",") if x.strip()],
        feed=s["feed"],
        rate_orders_per_s=s["rate"],
        seed=s["seed"],
        replay_file=s["replay_file"],
        replay_speed=s["replay_speed"],
        accounts_file=s["accounts"],
        demo_api_key=s["demo_key"],
        redis_url=s["redis"],
        candles_db=s["candles_db"],
        candles_retention_ms=parse_retention_s(str(s["candles_retention_s"])),
        store_history_max=s["history_max"],
        store_flush_interval_ms=s["store_flush_interval_ms"],
        publisher=PublisherConfig(
            book_depth=s["book_depth"],
            history_max=s["history_max"],
            conflate_ms=parse_conflate_ms(str(s["conflate_ms"])),
        ),
        journal=(
            RunJournalConfig(
                path=s["journal"], fsync=s["fsync"], fsync_interval_ms=s["fsync_interval_ms"]
            )
            if s["journal"]
            else None
        ),
        database_url=None if s["database_url"] == "none" else s["database_url"],
        reporter_queue_records=s["reporter_queue_records"],
        reporter_batch_records=s["reporter_batch_records"],
        gc_threshold=s["gc_threshold"],
        engine=EngineConfig(
            finished_orders_max=s["finished_orders_max"] or None,
            executions_per_account_max=s["executions_max"] or None,
        ),
    )


def default_web_dir() -> str | None:
    """The repository's ``web/`` (a source checkout), else ``gateway/static`` (installed)."""
    package = Path(__file__).resolve().parents[1]  # gateway/
    for candidate in (package.parent / "web", package / "static"):
        if (candidate / "index.html").is_file():
            return str(candidate)
    return None


def _check_database(url: str) -> str | None:
    """Open the reporting database once; the problem, or ``None``."""
    import asyncio

    from gateway.reporting.database import open_database

    async def check() -> None:
        db = open_database(url)
        try:
            await db.open()
        finally:
            await db.close()

    try:
        asyncio.run(check())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _redacted(url: str) -> str:
    """A database URL without its password."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        userinfo, _, host = rest.rpartition("@")
        user = userinfo.split(":", 1)[0]
        return f"{scheme}://{user}@{host}"
    return url


def uvicorn_config(app: Any, gateway: GatewayConfig, **overrides: Any) -> uvicorn.Config:
    """The ``uvicorn.Config`` quotegate serves ``app`` with: the lifespan and
    :func:`gateway.roots.http_server.uvicorn_config_kwargs` (uvloop, the request-head limits,
    the direct lanes for WebSocket frames and SSE bodies); ``overrides`` win (e.g. ``port``,
    ``log_level``). Also installs the access-log token redaction (after uvicorn has configured
    its loggers). ``quotegate run`` and ``quotegate bench fanout`` both serve with it."""
    import uvicorn

    from gateway.roots.http_server import install_log_redaction, uvicorn_config_kwargs

    config = uvicorn.Config(
        app, **{"lifespan": "on", **uvicorn_config_kwargs(gateway), **overrides}
    )
    install_log_redaction()
    return config


def _terminate(signum: int, frame: FrameType | None) -> None:
    # uvicorn captures SIGTERM, shuts down cleanly, then raises it again: exit 0 then.
    raise SystemExit(0)


def bind_listener(host: str, port: int) -> socket.socket:
    """The listening socket of ``host:port``, bound before anything is announced (so a busy
    port is reported first, not after the banner and the app's startup). ``OSError`` when it
    cannot be bound."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def bind_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        why = f"port {port} on {host} is already in use (is another server running there?)"
    else:
        why = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return f"quotegate run: {why}; choose another with --port N (or QUOTEGATE_PORT), --host A"


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from engine.journal import JournalError
    from gateway.config import TRANSPORTS, GatewayConfig
    from gateway.edge.app import create_app
    from gateway.roots.embedded import EmbeddedRuntime
    from gateway.trading.accounts import AccountsError

    try:
        s = settings(args)
        logging.basicConfig(
            level=str(s["log_level"]).upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        embedded = embedded_config(s)
        gateway = GatewayConfig.from_env(
            overrides={
                "host": s["host"],
                "port": s["port"],
                "log_level": s["log_level"],
                "web_dir": s["web_dir"] or default_web_dir(),
                "transports": s["transports"],
                **{
                    key: getattr(args, flag[2:].replace("-", "_"), None)
                    for flag, (key, _) in HTTP_LIMIT_FLAGS.items()
                },
            }
        )
        if embedded.database_url:
            # opened (and migrated) once before the server: a database that cannot be reached
            # stops the command with one line, not a traceback from the app's startup
            problem = _check_database(embedded.database_url)
            if problem is not None:
                url = _redacted(embedded.database_url)
                raise ValueError(f"reporting database {url}: {problem}")
    except (AccountsError, JournalError, ValueError, OSError) as exc:
        print(f"quotegate run: {exc}", file=sys.stderr)
        return 2
    try:
        listener = bind_listener(gateway.host, gateway.port)
    except OSError as exc:
        print(bind_error(gateway.host, gateway.port, exc), file=sys.stderr)
        return 2
    try:
        runtime = EmbeddedRuntime(embedded)
    except (AccountsError, JournalError, ValueError, OSError) as exc:
        listener.close()
        print(f"quotegate run: {exc}", file=sys.stderr)
        return 2

    app = create_app(gateway, services=runtime.session)
    config = uvicorn_config(app, gateway)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # stop the order flow before the app's lifespan closes the stores it writes to
            await runtime.stop_feed()
            await super().shutdown(sockets)

    server = Server(config)
    host = gateway.host if ":" not in gateway.host else f"[{gateway.host}]"
    symbols = "(from the replay file)" if embedded.feed == "replay" else ",".join(embedded.symbols)
    banner = [
        f"quotegate: feed={embedded.feed} symbols={symbols} "
        f"accounts={embedded.accounts_file or 'demo'}",
        f"quotegate: open http://{host}:{gateway.port}/",
        "quotegate: transports "
        + ",".join(t for t in TRANSPORTS if t in gateway.enabled_transports()),
    ]
    if runtime.journal is not None:
        jc = runtime.journal.config
        banner.append(
            f"quotegate: journal {jc.path} (fsync={jc.fsync}, "
            f"{runtime.journal.restored_records} commands to restore; "
            f"{runtime.journal.epoch_reason or 'epoch given'})"
        )
    if embedded.database_url:
        banner.append(f"quotegate: reporting to {_redacted(embedded.database_url)}")
    if runtime.accounts.demo_key is not None:
        banner.append(f"quotegate: demo account 'demo', API key: {runtime.accounts.demo_key}")
    print("\n".join(banner), file=sys.stderr, flush=True)  # always shown, whatever the level
    signal.signal(signal.SIGTERM, _terminate)
    with listener:
        server.run(sockets=[listener])
    return 0 if server.started else 1
