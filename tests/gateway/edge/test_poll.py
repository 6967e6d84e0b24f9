from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from gateway.config import GatewayConfig, PollConfig
from gateway.edge.app import create_app
from gateway.fanout.hub import Hub
from gateway.wire import cursor
from tests.gateway.conftest import EPOCH, Stack, make_config, make_stack, serving

WAIT_MAX_S = 0.3


@pytest.fixture
def gateway_config() -> GatewayConfig:
    return dataclasses.replace(make_config(), poll=PollConfig(wait_max_s=WAIT_MAX_S))


@asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and an in-process client on the same loop."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as c:
        yield c


def seqs(body: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(m["type"], m["ch"], m["seq"]) for m in body["messages"]]


async def test_no_cursor_gives_snapshots_and_a_cursor(http: httpx.AsyncClient) -> None:
    r = await http.get("/v1/poll", params={"ch": "book.AAPL,trades.AAPL"})
    assert r.status_code == 200
    body = r.json()
    assert seqs(body) == [("snapshot", "book.AAPL", 1), ("snapshot", "trades.AAPL", 1)]
    assert cursor.decode(body["cursor"]) == {"book.AAPL": (EPOCH, 1), "trades.AAPL": (EPOCH, 1)}


async def test_cursor_gives_exactly_the_missed_updates(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    first = (await http.get("/v1/poll", params={"ch": "book.AAPL,trades.AAPL"})).json()
    sent = stack.publisher.emit_many("book.AAPL", 3)
    r = await http.get(
        "/v1/poll", params={"ch": "book.AAPL,trades.AAPL", "cursor": first["cursor"]}
    )
    body = r.json()
    assert seqs(body) == [
        ("update", "book.AAPL", 2),
        ("update", "book.AAPL", 3),
        ("update", "book.AAPL", 4),
    ]
    # the body is the envelopes' bytes, joined, not re-encoded
    assert b",".join(env.payload for env in sent) in r.content
    assert cursor.decode(body["cursor"]) == {"book.AAPL": (EPOCH, 4), "trades.AAPL": (EPOCH, 1)}
    again = (
        await http.get("/v1/poll", params={"ch": "book.AAPL,trades.AAPL", "cursor": body["cursor"]})
    ).json()
    assert again["messages"] == []
    assert cursor.decode(again["cursor"]) == cursor.decode(body["cursor"])


async def test_every_cursor_continues_without_gap_or_duplicate(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    got: list[int] = []
    cur = None
    for round_ in range(6):
        stack.publisher.emit_many("trades.MSFT", round_)
        params = {"ch": "trades.MSFT"} | ({"cursor": cur} if cur else {})
        body = (await http.get("/v1/poll", params=params)).json()
        got.extend(m["seq"] for m in body["messages"])
        cur = body["cursor"]
    assert got == list(range(1, stack.publisher.seqs["trades.MSFT"] + 1))


async def test_outside_the_history_gives_a_snapshot(gateway_config: GatewayConfig) -> None:
    stack = make_stack(history_max=5)
    stack.publisher.emit("book.AAPL")
    app = create_app(gateway_config, services=stack.services, metrics=stack.metrics)
    async with running(app) as http:
        first = (await http.get("/v1/poll", params={"ch": "book.AAPL"})).json()
        stack.publisher.emit_many("book.AAPL", 20)
        body = (
            await http.get("/v1/poll", params={"ch": "book.AAPL", "cursor": first["cursor"]})
        ).json()
        assert seqs(body) == [("snapshot", "book.AAPL", 21)]
        old_epoch = cursor.encode({"book.AAPL": ("gone", 21)})
        body = (await http.get("/v1/poll", params={"ch": "book.AAPL", "cursor": old_epoch})).json()
        assert seqs(body) == [("snapshot", "book.AAPL", 21)]


async def test_wait_returns_when_an_update_arrives(stack: Stack) -> None:
    config = dataclasses.replace(make_config(), poll=PollConfig(wait_max_s=30))
    app = create_app(config, services=stack.services, metrics=stack.metrics)
    async with running(app) as http:
        first = (await http.get("/v1/poll", params={"ch": "book.AAPL,trades.AAPL"})).json()
        params = {"ch": "book.AAPL,trades.AAPL", "cursor": first["cursor"], "wait": "20"}
        task = asyncio.create_task(http.get("/v1/poll", params=params))
        hub: Hub = app.state.hub
        for _ in range(2000):  # until the long poll waits on the hub
            if hub.connection_count:
                break
            await asyncio.sleep(0.005)
        stack.publisher.emit("trades.AAPL")
        r = await asyncio.wait_for(task, 10)
        body = r.json()
        assert seqs(body) == [("update", "trades.AAPL", 2)]
        assert cursor.decode(body["cursor"]) == {"book.AAPL": (EPOCH, 1), "trades.AAPL": (EPOCH, 2)}
        assert hub.connection_count == 0  # the short-lived connection is gone


async def test_wait_returns_empty_after_the_capped_wait(
    http: httpx.AsyncClient, app: Starlette
) -> None:
    first = (await http.get("/v1/poll", params={"ch": "book.AAPL"})).json()
    r = await http.get("/v1/poll", params={"ch": "book.AAPL", "cursor": first["cursor"], "wait": 1})
    assert r.status_code == 200
    assert r.json()["messages"] == []
    assert r.json()["cursor"] == first["cursor"]
    assert app.state.hub.connection_count == 0


async def test_an_idle_long_poll_answers_a_heartbeat_within_the_interval(
    stack: Stack,
) -> None:
    """The protocol's heartbeat (at least every heartbeat interval on an idle link) holds for
    polling too: a long poll longer than the interval answers the heartbeat when it is due,
    with the cursor unchanged, and sooner than the wait it asked for."""
    config = dataclasses.replace(
        make_config(heartbeat_interval_s=0.2), poll=PollConfig(wait_max_s=30)
    )
    app = create_app(config, services=stack.services, metrics=stack.metrics)
    async with running(app) as http:
        first = (await http.get("/v1/poll", params={"ch": "book.AAPL"})).json()
        params = {"ch": "book.AAPL", "cursor": first["cursor"], "wait": 20}
        loop = asyncio.get_running_loop()
        started = loop.time()
        r = await asyncio.wait_for(http.get("/v1/poll", params=params), 10)
        took = loop.time() - started
        body = r.json()
        assert [m["type"] for m in body["messages"]] == ["heartbeat"]
        assert body["messages"][0]["ts"] > 1_700_000_000_000_000
        assert body["cursor"] == first["cursor"]
        assert 0.15 <= took < 10  # the heartbeat interval, not the 20 s asked for
        # a wait shorter than the interval ends empty, without a heartbeat
        short = await http.get("/v1/poll", params={**params, "wait": 0.05})
        assert short.json()["messages"] == []


async def test_a_bad_wait_says_what_a_wait_is(http: httpx.AsyncClient) -> None:
    r = await http.get("/v1/poll", params={"ch": "book.AAPL", "wait": "-1"})
    assert r.json()["error"] == {
        "code": "bad_request",
        "message": f"wait must be a number of seconds, 0 or more (at most {WAIT_MAX_S:g} is "
        'used), not "-1"',
    }


async def test_orders_needs_a_token(http: httpx.AsyncClient, stack: Stack) -> None:
    r = await http.get("/v1/poll", params={"ch": "orders"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = await http.get("/v1/poll", params={"ch": "orders", "token": "wrong"})
    assert r.status_code == 401
    stack.publisher.emit("orders.alice", {"event": "accepted"})
    stack.publisher.emit("orders.bob", {"event": "accepted"})
    r = await http.get("/v1/poll", params={"ch": "orders", "token": "key-alice"})
    assert seqs(r.json()) == [("snapshot", "orders", 1)]
    assert cursor.decode(r.json()["cursor"]) == {"orders": (EPOCH, 1)}
    stack.publisher.emit("orders.alice", {"event": "done"})
    stack.publisher.emit("orders.bob", {"event": "done"})
    r2 = await http.get(
        "/v1/poll",
        params={"ch": "orders", "cursor": r.json()["cursor"]},
        headers={"Authorization": "Bearer key-alice"},
    )
    assert [m["data"] for m in r2.json()["messages"]] == [{"event": "done"}]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"ch": "book.AAPL", "cursor": "garbage"}, 400, "bad_request"),
        ({"ch": "book.AAPL", "cursor": "v1.e30x!"}, 400, "bad_request"),
        ({"ch": "book.AAPL", "wait": "soon"}, 400, "bad_request"),
        ({"ch": "book.AAPL", "wait": "-1"}, 400, "bad_request"),
        ({"ch": "book.AAPL", "wait": "nan"}, 400, "bad_request"),
        ({}, 400, "bad_request"),
        ({"ch": ","}, 400, "bad_request"),
        ({"ch": "nope.AAPL"}, 400, "unknown_channel"),
        ({"ch": "book.NOPE"}, 400, "unknown_channel"),
        ({"ch": ",".join(f"book.S{i}" for i in range(101))}, 429, "too_many_subscriptions"),
    ],
)
async def test_bad_requests(
    http: httpx.AsyncClient, params: dict[str, str], status: int, code: str
) -> None:
    r = await http.get("/v1/poll", params=params)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


async def test_cursor_alone_names_the_channels(http: httpx.AsyncClient, stack: Stack) -> None:
    start = cursor.encode({"book.MSFT": (EPOCH, 1)})
    stack.publisher.emit("book.MSFT")
    body = (await http.get("/v1/poll", params={"cursor": start})).json()
    assert seqs(body) == [("update", "book.MSFT", 2)]


async def test_messages_are_valid_json(http: httpx.AsyncClient) -> None:
    r = await http.get("/v1/poll", params={"ch": "book.AAPL,book.MSFT,trades.MSFT"})
    assert orjson.loads(r.content)["messages"][0]["epoch"] == EPOCH


async def test_connection_limit_gives_503_when_waiting(stack: Stack) -> None:
    app = create_app(make_config(max_connections=0), services=stack.services, metrics=stack.metrics)
    async with running(app) as http:
        first = (await http.get("/v1/poll", params={"ch": "book.AAPL"})).json()  # no wait: ok
        r = await http.get(
            "/v1/poll", params={"ch": "book.AAPL", "cursor": first["cursor"], "wait": 1}
        )
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "unavailable"


async def test_client_leaving_ends_the_long_poll(stack: Stack) -> None:
    async with serving(
        stack, dataclasses.replace(make_config(), poll=PollConfig(wait_max_s=30))
    ) as server:
        hub: Hub = server.app.state.hub
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            first = (await client.get("/v1/poll", params={"ch": "book.AAPL"})).json()
            params = {"ch": "book.AAPL", "cursor": first["cursor"], "wait": 25}
            task = asyncio.create_task(client.get("/v1/poll", params=params))
            for _ in range(2000):
                if hub.connection_count:
                    break
                await asyncio.sleep(0.005)
            assert hub.connection_count == 1
            task.cancel()  # the client goes away mid-wait
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for _ in range(1000):  # well before the 25 s wait is over
            if hub.connection_count == 0:
                break
            await asyncio.sleep(0.005)
        assert hub.connection_count == 0
