"""Metrics: a registry per app, and the values the hub and transports move."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Metrics
from tests.gateway.conftest import Stack


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_registries_are_per_instance() -> None:
    a, b = Metrics(), Metrics()
    a.transport("ws").messages_sent.inc(3)
    assert a.value("quotegate_messages_sent_total", {"transport": "ws"}) == 3
    assert b.value("quotegate_messages_sent_total", {"transport": "ws"}) is None
    assert a.transport("ws") is a.transport("ws")


def test_sent_batch_moves_counters_and_histograms() -> None:
    m = Metrics()
    m.transport("sse").sent(5, 500, 0.002, 3)
    m.transport("sse").sent(1, 10, None, 1)
    got = samples(m)
    label = (("transport", "sse"),)
    assert got[("quotegate_messages_sent_total", label)] == 6
    assert got[("quotegate_bytes_sent_total", label)] == 510
    assert got[("quotegate_queue_depth_messages_count", label)] == 2
    assert got[("quotegate_queue_depth_messages_sum", label)] == 4
    assert got[("quotegate_publish_to_send_seconds_count", label)] == 1
    assert got[("quotegate_publish_to_send_seconds_sum", label)] == 0.002


def test_values_change_as_clients_are_served(client: Any, stack: Stack) -> None:
    metrics = stack.metrics
    ws_label = {"transport": "ws"}
    with client.websocket_connect("/v1/ws") as ws:
        ws.send_text('{"op":"subscribe","ch":["book.AAPL"],"id":1}')
        text = ""
        while '"snapshot"' not in text:
            text += ws.receive_text()
        assert metrics.value("quotegate_connections", ws_label) == 1
        client.portal.call(stack.publisher.emit, "book.AAPL")
        while '"update"' not in text:
            text += ws.receive_text()
        assert (metrics.value("quotegate_messages_sent_total", ws_label) or 0) >= 3
        assert (metrics.value("quotegate_bytes_sent_total", ws_label) or 0) > 100
        assert (metrics.value("quotegate_publish_to_send_seconds_count", ws_label) or 0) >= 1
        assert (metrics.value("quotegate_envelopes_received_total") or 0) >= 1
    # the endpoint unregistered the client when it left
    for _ in range(100):
        if metrics.value("quotegate_connections", ws_label) == 0:
            break
        client.portal.call(_tick)
    assert metrics.value("quotegate_connections", ws_label) == 0


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.01)
