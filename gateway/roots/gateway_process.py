"""``quotegate gateway --kafka B --redis R``: a stateless gateway node of distributed mode.

Builds the :class:`~gateway.seams.services.Services` the edge serves from, all of them remote:

* **bus**: a consuming :class:`~gateway.seams.bus_kafka.KafkaBus`; every node reads every
  partition of the market-data topic from the end (no shared consumer group), so each node's
  clients get every channel, private ``orders.<account>`` channels included;
* **store** and **candles**: Redis (:class:`~gateway.seams.store_redis.RedisSnapshotStore`,
  :class:`~gateway.seams.candles_redis.RedisCandleArchive`), written by the engine process and
  only read here: REST snapshots, polling, late subscribers and resumes (on any node);
* **orders**: :class:`~gateway.trading.order_service_kafka.KafkaOrderService` over the command
  channel (answers within ``--command-timeout-s``, else 504 ``timeout``);
* **symbols**: the engine's instrument list from Redis
  (:class:`~gateway.seams.symbols_redis.RedisSymbols`);
* **authenticate**: the same ``--accounts`` file (or ``--demo-key``) as the engine's.

Nothing here holds state that another node needs: a client can reconnect to any node and
resume with its positions.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gateway.roots.distributed_args import add_kafka_arguments, kafka_config
from gateway.seams.bus_kafka import KafkaBus
from gateway.seams.candles_redis import RedisCandleArchive, RedisCandleConfig
from gateway.seams.commands_kafka import CommandClient, new_node_id
from gateway.seams.kafka_config import KafkaConfig
from gateway.seams.services import Services
from gateway.seams.store_config import RedisStoreConfig
from gateway.seams.store_redis import RedisSnapshotStore
from gateway.seams.symbols_redis import RedisSymbols
from gateway.trading.accounts import Accounts
from gateway.trading.order_service_kafka import KafkaOrderService

log = logging.getLogger("quotegate.gateway")

ENV: dict[str, tuple[str, Any]] = {
    "host": ("QUOTEGATE_HOST", "127.0.0.1"),
    "port": ("QUOTEGATE_PORT", 8000),
    "redis": ("QUOTEGATE_REDIS", None),
    "accounts": ("QUOTEGATE_ACCOUNTS", None),
    "demo_key": ("QUOTEGATE_DEMO_KEY", None),
    "web_dir": ("QUOTEGATE_WEB_DIR", None),
    "log_level": ("QUOTEGATE_LOG_LEVEL", "info"),
    "key_prefix": ("QUOTEGATE_KEY_PREFIX", "qg:"),
    "command_timeout_s": ("QUOTEGATE_COMMAND_TIMEOUT_S", 5.0),
    "node_id": ("QUOTEGATE_NODE_ID", None),
}


@dataclass(kw_only=True)
class GatewayProcessConfig:
    """``accounts``: who may trade (the engine's accounts file, or a demo key: the same keys
    must authenticate on every node). ``node_id``: names this node's answers on the events
    topic (unique per process; ``None``: a random one)."""

    kafka: KafkaConfig
    redis_url: str
    accounts: Accounts
    key_prefix: str = "qg:"
    command_timeout_s: float = 5.0
    node_id: str | None = None

    def __post_init__(self) -> None:
        if not self.redis_url:
            raise ValueError("a gateway node needs Redis (--redis URL)")
        if self.command_timeout_s <= 0:
            raise ValueError("the command timeout must be positive")


class GatewayProcess:
    """The remote services of one gateway node (see the module docstring)."""

    def __init__(self, config: GatewayProcessConfig) -> None:
        self.config = config
        self.node = config.node_id or new_node_id()
        self.bus = KafkaBus(config.kafka, publish=False, name=self.node)
        self.store = RedisSnapshotStore(
            RedisStoreConfig(url=config.redis_url, key_prefix=config.key_prefix)
        )
        self.candles = RedisCandleArchive(
            RedisCandleConfig(url=config.redis_url, key_prefix=config.key_prefix)
        )
        self.commands = CommandClient(
            config.kafka, node=self.node, timeout_s=config.command_timeout_s
        )
        self.symbols = RedisSymbols(config.redis_url, key_prefix=config.key_prefix)
        self.services = Services(
            bus=self.bus,
            store=self.store,
            candles=self.candles,
            orders=KafkaOrderService(self.commands),
            authenticate=config.accounts.authenticate,
            symbols=self.symbols.current,
            extra={"gateway_process": self},
        )

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Services]:
        """Started services for ``create_app(services=process.session)``; closed at exit."""
        stack = contextlib.AsyncExitStack()
        async with stack:
            for component in (self.symbols, self.store, self.candles, self.commands, self.bus):
                await component.start()
                stack.push_async_callback(component.close)
            yield self.services


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--host", help="address to bind (QUOTEGATE_HOST, default 127.0.0.1)")
    a("--port", type=int, help="port (QUOTEGATE_PORT, default 8000)")
    a("--redis", metavar="URL", help="the engine's Redis (QUOTEGATE_REDIS, required)")
    add_kafka_arguments(parser)
    a("--accounts", metavar="FILE", help="the engine's accounts file (QUOTEGATE_ACCOUNTS)")
    a("--demo-key", help="the engine's demo API key when no --accounts (QUOTEGATE_DEMO_KEY)")
    a(
        "--command-timeout-s",
        type=float,
        help="how long order entry waits for the engine's answer before 504 "
        "(QUOTEGATE_COMMAND_TIMEOUT_S, default 5)",
    )
    a("--node-id", help="this node's name on the events topic (QUOTEGATE_NODE_ID, default random)")
    a("--key-prefix", help="prefix of every Redis key (QUOTEGATE_KEY_PREFIX, default qg:)")
    a("--web-dir", help="directory served at / (QUOTEGATE_WEB_DIR, default the repo's web/)")
    a("--log-level", help="debug, info, warning, error (QUOTEGATE_LOG_LEVEL, default info)")


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.config import GatewayConfig
    from gateway.edge.app import create_app
    from gateway.roots.run import (
        bind_error,
        bind_listener,
        default_web_dir,
        settings,
        uvicorn_config,
    )
    from gateway.trading.accounts import AccountsError

    try:
        s = settings(args, env=os.environ, table=ENV)
        logging.basicConfig(
            level=str(s["log_level"]).upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        if s["accounts"]:
            accounts = Accounts.load(s["accounts"])
        elif s["demo_key"]:
            accounts = Accounts.demo([], api_key=s["demo_key"])
        else:
            raise ValueError("a gateway node needs --accounts FILE or --demo-key KEY")
        process = GatewayProcess(
            GatewayProcessConfig(
                kafka=kafka_config(args, client_id="quotegate-gateway"),
                redis_url=s["redis"] or "",
                accounts=accounts,
                key_prefix=s["key_prefix"],
                command_timeout_s=s["command_timeout_s"],
                node_id=s["node_id"],
            )
        )
        gateway = GatewayConfig.from_env(
            overrides={
                "host": s["host"],
                "port": s["port"],
                "log_level": s["log_level"],
                "web_dir": s["web_dir"] or default_web_dir(),
            }
        )
    except (AccountsError, ValueError, OSError) as exc:
        print(f"quotegate gateway: {exc}", file=sys.stderr)
        return 2

    try:
        listener = bind_listener(gateway.host, gateway.port)
    except OSError as exc:
        print(bind_error(gateway.host, gateway.port, exc), file=sys.stderr)
        return 2
    app = create_app(gateway, services=process.session)
    server = uvicorn.Server(uvicorn_config(app, gateway))  # with the token redaction
    host = gateway.host if ":" not in gateway.host else f"[{gateway.host}]"
    print(
        f"quotegate gateway: node {process.node}, kafka {process.config.kafka.bootstrap}, "
        f"redis {process.config.redis_url}\nquotegate gateway: open http://{host}:{gateway.port}/",
        file=sys.stderr,
        flush=True,
    )
    signal.signal(signal.SIGTERM, _terminate)
    with listener:
        server.run(sockets=[listener])
    return 0 if server.started else 1
