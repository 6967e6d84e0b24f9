"""Shared gateway fixtures: an app over MemoryBus + MemorySnapshotStore fed by a tiny fake
publisher, in-process (``app``/``client``) and on a real uvicorn server (``server``).

``FakePublisher.emit(channel)`` publishes the channel's next update (seq + 1) the way the real
publisher does: record in the store, then publish on the bus. Snapshots (the store's
``snapshot_provider``) carry ``{"seq": n, "n": n}``; update ``i`` carries ``{"i": i}``, so a test
can check that a client saw every seq exactly once after its snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from gateway.config import GatewayConfig, HubConfig, WsConfig
from gateway.edge.app import create_app
from gateway.fanout.transport import Outgoing
from gateway.metrics import Metrics
from gateway.seams.bus_memory import MemoryBus
from gateway.seams.services import Services
from gateway.seams.store_config import StoreConfig
from gateway.seams.store_memory import MemorySnapshotStore
from gateway.wire.envelope import SNAPSHOT, UPDATE, Envelope
from tests.services import free_port as _free_port

SYMBOLS = ("AAPL", "MSFT")
TOKENS = {"key-alice": "alice", "key-bob": "bob"}
EPOCH = "ep1"


class FakePublisher:
    """Seq'd envelopes for any channel: ``emit`` an update, ``snapshot`` the current state."""

    def __init__(self, bus: MemoryBus, store: MemorySnapshotStore, epoch: str = EPOCH) -> None:
        self.bus = bus
        self.store = store
        self.epoch = epoch
        self.seqs: dict[str, int] = {}
        self.ts_us = 1_700_000_000_000_000

    def wire(self, channel: str) -> str:
        return "orders" if channel.startswith("orders.") else channel

    def emit(self, channel: str, data: Any = None) -> Envelope:
        seq = self.seqs.get(channel, 0) + 1
        self.seqs[channel] = seq
        self.ts_us += 1
        env = Envelope.build(
            UPDATE,
            channel,
            self.epoch,
            seq,
            self.ts_us,
            {"i": seq} if data is None else data,
            wire_channel=self.wire(channel),
        )
        self.store.record(env)
        self.bus.publish(env)
        return env

    def emit_many(self, channel: str, n: int) -> list[Envelope]:
        return [self.emit(channel) for _ in range(n)]

    def snapshot(self, channel: str) -> Envelope | None:
        seq = self.seqs.get(channel)
        if seq is None:
            return None
        return Envelope.build(
            SNAPSHOT,
            channel,
            self.epoch,
            seq,
            self.ts_us,
            {"seq": seq, "n": seq},
            wire_channel=self.wire(channel),
        )


class RecordingTransport:
    """A Transport that keeps every batch; ``gate`` (when cleared) makes it not writable like
    a client that stopped reading (``held`` bytes then count as its buffer); ``fail`` makes
    ``write`` raise like a vanished client."""

    def __init__(self, name: str = "ws") -> None:
        self.name = name
        self.batches: list[list[Outgoing]] = []
        self.closed: tuple[int, str] | None = None
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False
        self.held = 0
        self.sent = asyncio.Event()

    def can_write(self) -> bool:
        return self.gate.is_set()

    def write(self, batch: Sequence[Outgoing]) -> int:
        if self.fail:
            raise ConnectionResetError("gone")
        self.batches.append(list(batch))
        self.sent.set()
        return self.buffered()

    def buffered(self) -> int:
        return 0 if self.gate.is_set() else self.held

    async def wait_writable(self) -> None:
        await self.gate.wait()

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def items(self) -> list[Outgoing]:
        return [item for batch in self.batches for item in batch]

    def envelopes(self, channel: str | None = None) -> list[Envelope]:
        return [
            item
            for item in self.items()
            if isinstance(item, Envelope) and (channel is None or item.channel == channel)
        ]

    def controls(self) -> list[dict[str, Any]]:
        return [orjson.loads(item) for item in self.items() if isinstance(item, bytes)]

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        """Wait until ``predicate()`` holds (checked after each send)."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self.sent.clear()
                await self.sent.wait()


@dataclass
class Stack:
    """What the app runs on, for tests to drive."""

    bus: MemoryBus
    store: MemorySnapshotStore
    publisher: FakePublisher
    services: Services
    metrics: Metrics = field(default_factory=Metrics)


def make_stack(history_max: int = 1000) -> Stack:
    bus = MemoryBus()
    store_box: list[FakePublisher] = []
    store = MemorySnapshotStore(
        StoreConfig(history_max=history_max),
        snapshot_provider=lambda ch: store_box[0].snapshot(ch),
    )
    publisher = FakePublisher(bus, store)
    store_box.append(publisher)
    services = Services(
        bus=bus,
        store=store,
        authenticate=TOKENS.get,
        symbols=lambda: [{"symbol": s} for s in SYMBOLS],
    )
    return Stack(bus, store, publisher, services)


def make_config(**hub: Any) -> GatewayConfig:
    """Defaults with a short heartbeat; ``hub`` overrides HubConfig fields."""
    return GatewayConfig(
        hub=HubConfig(**{"heartbeat_interval_s": 10.0, **hub}),
        ws=WsConfig(ping_interval_s=5.0, ping_timeout_s=5.0),
    )


@pytest.fixture
def stack() -> Stack:
    """Bus, store, fake publisher and services (seeded with one update per channel)."""
    s = make_stack()
    for sym in SYMBOLS:
        s.publisher.emit(f"book.{sym}")
        s.publisher.emit(f"trades.{sym}")
    return s


@pytest.fixture
def gateway_config() -> GatewayConfig:
    """Override in a test module to change limits."""
    return make_config()


@pytest.fixture
def app(stack: Stack, gateway_config: GatewayConfig) -> Any:
    return create_app(gateway_config, services=stack.services, metrics=stack.metrics)


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    """A Starlette TestClient (lifespan run) over the app."""
    with warnings.catch_warnings():
        # starlette asks for httpx2 over httpx; the venv has httpx (fine for tests)
        from starlette.exceptions import StarletteDeprecationWarning

        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


class Server:
    """A uvicorn server on a free port, in the test's event loop, configured the way
    ``quotegate run`` is (``uvicorn_config``: the direct lane); ``lane=False`` serves with
    plain uvicorn settings, so the endpoints take their ASGI fallback."""

    def __init__(self, app: Any, config: GatewayConfig, *, lane: bool = True) -> None:
        import uvicorn

        from gateway.roots.run import uvicorn_config

        self.app = app
        self.port = _free_port()
        if lane:
            # the test's loop, whatever it is: uvicorn must not install its own
            uv = uvicorn_config(app, config, port=self.port, log_level="warning", loop="none")
        else:
            kwargs = {**config.uvicorn_kwargs(), "port": self.port, "log_level": "warning"}
            uv = uvicorn.Config(app, lifespan="on", **kwargs)
        self.server = uvicorn.Server(uv)
        self._task: asyncio.Task[None] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        for _ in range(500):
            if self.server.started:
                return
            if self._task.done():
                self._task.result()
                raise RuntimeError("uvicorn exited")
            await asyncio.sleep(0.01)
        raise TimeoutError("uvicorn did not start")

    async def stop(self) -> None:
        if self._task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self._task, 10)


@contextlib.asynccontextmanager
async def serving(
    stack: Stack, config: GatewayConfig, *, lane: bool = True
) -> AsyncIterator[Server]:
    """The stack's services in an app made with ``config``, on a started :class:`Server`."""
    srv = Server(
        create_app(config, services=stack.services, metrics=stack.metrics), config, lane=lane
    )
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture(params=["lane", "asgi"])
async def server(
    app: Any, gateway_config: GatewayConfig, request: pytest.FixtureRequest
) -> AsyncIterator[Server]:
    """The app on a real uvicorn server (127.0.0.1, free port), same event loop as the test;
    once with the direct lane (as ``quotegate run`` serves) and once plain ASGI."""
    srv = Server(app, gateway_config, lane=request.param == "lane")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()
