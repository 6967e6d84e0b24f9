"""GatewayConfig: defaults, QUOTEGATE_* environment, flag overrides."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.config import GatewayConfig, HubConfig


def test_defaults_follow_the_protocol() -> None:
    config = GatewayConfig()
    assert config.hub.heartbeat_interval_s <= 10
    assert config.ws.max_subscriptions == 100
    assert config.ws.max_message_bytes == 64 * 1024
    assert config.ws.rate_msgs_per_s == 20
    assert config.sse.retry_ms == 2000 and config.poll.wait_max_s == 30
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        HubConfig(4096)  # type: ignore[call-arg]  # keyword-only


def test_from_env_and_overrides() -> None:
    env = {
        "QUOTEGATE_PORT": "9001",
        "QUOTEGATE_HOST": "0.0.0.0",
        "QUOTEGATE_WS_PING_INTERVAL_S": "2.5",
        "QUOTEGATE_HUB_QUEUE_MAX_MESSAGES": "64",
        "QUOTEGATE_WEB_DIR": "/srv/web",
        "UNRELATED": "x",
    }
    config = GatewayConfig.from_env(
        env, overrides={"port": 9002, "ws.max_subscriptions": 5, "host": None}
    )
    assert config.port == 9002  # flags win over the environment
    assert config.host == "0.0.0.0"  # None overrides leave the environment's value
    assert config.ws.ping_interval_s == 2.5 and config.ws.max_subscriptions == 5
    assert config.hub.queue_max_messages == 64
    assert config.web_dir == "/srv/web"
    assert GatewayConfig.from_env({}) == GatewayConfig()


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="port"):
        GatewayConfig.from_env({"QUOTEGATE_PORT": "eighty"})
    with pytest.raises(ValueError, match="unknown"):
        GatewayConfig.from_env({}, overrides={"nope": 1})
    with pytest.raises(ValueError, match="unknown"):
        GatewayConfig.from_env({}, overrides={"ws.nope": 1})


def test_uvicorn_kwargs_let_the_endpoint_answer_too_large() -> None:
    config = GatewayConfig(port=1234)
    kwargs = config.uvicorn_kwargs()
    assert kwargs["port"] == 1234
    assert kwargs["ws_max_size"] > config.ws.max_message_bytes
    assert kwargs["ws_ping_interval"] == config.ws.ping_interval_s


def test_transports_from_env_and_refused_names() -> None:
    assert GatewayConfig().enabled_transports() == {"ws", "sse", "poll"}
    config = GatewayConfig.from_env({"QUOTEGATE_TRANSPORTS": "sse, poll"})
    assert config.enabled_transports() == {"sse", "poll"}
    assert GatewayConfig.from_env({}, overrides={"transports": "poll"}).transports == "poll"
    with pytest.raises(ValueError, match="unknown 'grpc'"):
        GatewayConfig.from_env({"QUOTEGATE_TRANSPORTS": "ws,grpc"})
    with pytest.raises(ValueError, match="at least one"):
        GatewayConfig(transports=" , ")
