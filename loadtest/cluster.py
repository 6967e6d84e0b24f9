"""Distributed mode as real processes: ``quotegate engine`` and ``quotegate gateway`` started as
subprocesses against a broker and a Redis, with their logs in a folder (the distributed tests
and ``quotegate bench distributed``).

:class:`Cluster` starts and stops them; a node is ready when its log says so (the engine) or
``/healthz`` answers (a gateway). Every process it started is stopped at ``close()``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from loadtest.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
KEY = "dist-test-key-0123456789"
BOB_KEY = "dist-test-bob-0123456789"


def accounts_json(usd: str = "1000000", shares: int = 1000) -> str:
    """Two accounts, ``alice`` (``KEY``) and ``bob`` (``BOB_KEY``), with cash and AAPL, MSFT."""
    return orjson.dumps(
        {
            "accounts": [
                {
                    "account": name,
                    "apiKeys": [key],
                    "deposits": {"USD": usd, "AAPL": shares, "MSFT": shares},
                }
                for name, key in (("alice", KEY), ("bob", BOB_KEY))
            ]
        }
    ).decode()


@dataclass
class Node:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Cluster:
    kafka: str
    redis: str
    folder: Path
    topics: str  # a prefix that keeps this cluster's topics apart from other runs'
    accounts_text: str = field(default_factory=accounts_json)
    log_level: str = "warning"
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.accounts = self.folder / "accounts.json"
        self.accounts.write_text(self.accounts_text)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTEGATE_")}
        env.update(
            QUOTEGATE_KAFKA=self.kafka,
            QUOTEGATE_REDIS=self.redis,
            QUOTEGATE_KAFKA_COMMANDS_TOPIC=f"{self.topics}.commands",
            QUOTEGATE_KAFKA_MARKETDATA_TOPIC=f"{self.topics}.marketdata",
            QUOTEGATE_KAFKA_EVENTS_TOPIC=f"{self.topics}.events",
            QUOTEGATE_LOG_LEVEL=self.log_level,
        )
        return env

    def _spawn(self, name: str, args: list[str]) -> Node:
        log = self.folder / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.roots.cli", *args],
                cwd=ROOT,
                env=self._env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        node = Node(name, proc, log)
        self.nodes.append(node)
        return node

    def engine(self, *extra: str, name: str = "engine", timeout_s: float = 60.0) -> Node:
        """Start ``quotegate engine`` and wait until it says it is ready."""
        journal = self.folder / name / "journal.log"
        node = self._spawn(
            name,
            [
                "engine", "--accounts", str(self.accounts), "--journal", str(journal),
                "--symbols", "AAPL,MSFT", "--candles-db", ":memory:", *extra,
            ],
        )  # fmt: skip
        before = node.text().count("quotegate engine: ready")
        deadline = time.monotonic() + timeout_s
        while node.text().count("quotegate engine: ready") <= before:
            if node.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{name} did not come up:\n{node.text()}")
            time.sleep(0.05)
        return node

    def gateway(self, *extra: str, name: str = "gateway", timeout_s: float = 60.0) -> Node:
        """Start ``quotegate gateway`` and wait until ``/healthz`` answers."""
        port = free_port()
        node = self._spawn(
            name,
            [
                "gateway", "--port", str(port), "--accounts", str(self.accounts),
                "--command-timeout-s", "5", *extra,
            ],
        )  # fmt: skip
        node.port = port
        deadline = time.monotonic() + timeout_s
        while True:
            if node.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{name} did not come up:\n{node.text()}")
            try:
                if httpx.get(f"{node.base}/healthz", timeout=1).status_code == 200:
                    return node
            except httpx.TransportError:
                pass
            time.sleep(0.05)

    def stop(self, node: Node, *, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        if node.proc.poll() is None:
            node.proc.send_signal(sig)
        try:
            return node.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            return node.proc.wait()

    def close(self) -> None:
        for node in reversed(self.nodes):
            self.stop(node)
