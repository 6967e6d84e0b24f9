"""What the fault tests share: a real ``quotegate run`` process, stream clients that check what
they receive (gap-free seqs, the book checksum, trades by id), raw sockets for hostile clients,
and the server's memory as the kernel sees it.

Every process gets a free loopback port and is ended by its own id; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = "fault-test-key-0123456789"


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _LIBC = None


def die_with_parent() -> None:
    """In a child before ``exec``: SIGKILL it when the test process dies (killed by a timeout,
    say), so that no server outlives its test (Linux ``PR_SET_PDEATHSIG``; libc is loaded in
    the parent, the child only makes the call)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Quotegate:
    """``quotegate run`` as a child process on a free port (``--demo-key KEY``, candles in
    memory, the reporting database too: nothing shared between tests on disk; warnings only).
    ``env`` adds ``QUOTEGATE_*`` variables; the parent's are dropped."""

    def __init__(self, log: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.args = args
        self.env = env or {}
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float = 30.0, *, healthy: bool = True) -> Quotegate:
        """Start and wait until ``/healthz`` answers (200 when ``healthy``, any status else)."""
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTEGATE_")}
        env.update(self.env)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "gateway.roots.cli", "run",
                    "--port", str(self.port), "--candles-db", ":memory:",
                    "--database-url", "none",  # fan-out faults: no reporter, as before it existed
                    "--demo-key", KEY, "--log-level", "warning", *self.args,
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"quotegate run exited:\n{self.log_text()}")
            with contextlib.suppress(httpx.TransportError):
                status = httpx.get(f"{self.base}/healthz", timeout=1).status_code
                if status == 200 or not healthy:
                    return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"quotegate run did not come up:\n{self.log_text()}")

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (a clean stop), SIGKILL after 15 s. Idempotent."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def running(log: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Quotegate]:
    qg = Quotegate(log, *args, env=env).start()
    try:
        yield qg
    finally:
        qg.stop()


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (``VmRSS`` of ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


# -- what a client checks ------------------------------------------------------------------------


def book_checksum(book: dict[str, dict[str, Any]]) -> int:
    """The protocol's book checksum over a client's copy (docs/protocol.md)."""
    bids = sorted(book["bids"].items(), key=lambda lv: -float(lv[0]))[:10]
    asks = sorted(book["asks"].items(), key=lambda lv: float(lv[0]))[:10]
    text = ",".join(f"{p}:{q}" for p, q in bids) + "|" + ",".join(f"{p}:{q}" for p, q in asks)
    return zlib.crc32(text.encode())


@dataclass
class Client:
    """A client's copy of its channels: positions, the book (checksum verified after every
    message), trades by id; and every problem it saw."""

    positions: dict[str, tuple[str, int]] = field(default_factory=dict)
    books: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    trades: dict[str, dict[int, Any]] = field(default_factory=dict)
    gaps: list[str] = field(default_factory=list)
    checksum_mismatches: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[tuple[str, str, int]] = field(default_factory=list)
    updates: int = 0
    first_after_resume: dict[str, dict[str, Any]] = field(default_factory=dict)
    resumed: bool = False

    def resume_marker(self) -> None:
        """What arrives from now on is the answer to a resume (first message per channel)."""
        self.resumed = True
        self.first_after_resume.clear()

    def on_line(self, line: bytes | str) -> dict[str, Any]:
        msg: dict[str, Any] = orjson.loads(line)
        kind = msg.get("type")
        if kind == "error":
            self.errors.append(msg)
        if kind not in ("snapshot", "update"):
            return msg
        ch, epoch, seq = msg["ch"], msg["epoch"], msg["seq"]
        if self.resumed and ch not in self.first_after_resume:
            self.first_after_resume[ch] = msg
        known = self.positions.get(ch)
        if kind == "snapshot":
            self.snapshots.append((ch, epoch, seq))
            if ch.startswith("book."):
                self.books[ch] = {"bids": {}, "asks": {}}
            if ch.startswith("trades."):
                self.trades[ch] = {}
        else:
            self.updates += 1
            if known is None or known[0] != epoch or seq != known[1] + 1:
                self.gaps.append(f"{ch}: {known} -> {epoch}/{seq}")
        self.positions[ch] = (epoch, seq)
        data = msg["data"]
        if ch.startswith("book.") and ch in self.books:
            book = self.books[ch]
            for side in ("bids", "asks"):
                for price, qty in data[side]:
                    if qty:
                        book[side][price] = qty
                    else:
                        book[side].pop(price, None)
            if book_checksum(book) != data["checksum"]:
                self.checksum_mismatches.append(f"{ch} {epoch}/{seq}")
        if ch.startswith("trades.") and ch in self.trades:
            for trade in data["trades"]:
                self.trades[ch][trade["id"]] = trade
        return msg

    def on_frame(self, frame: bytes | str) -> None:
        text = frame.encode() if isinstance(frame, str) else frame
        for line in text.split(b"\n"):
            if line.strip():
                self.on_line(line)


async def read_ws(ws: Any, client: Client, seconds: float) -> None:
    """Feed what the WebSocket receives for ``seconds`` into ``client`` (stops early if the
    connection ends)."""
    deadline = asyncio.get_running_loop().time() + seconds
    with contextlib.suppress(TimeoutError, ConnectionClosed):
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            frame = await asyncio.wait_for(ws.recv(), left)
            client.on_frame(frame)


async def read_ws_until(ws: Any, client: Client, updates: int, max_s: float) -> None:
    """Read until ``client`` has seen ``updates`` more updates (or ``max_s`` passed)."""
    target = client.updates + updates
    deadline = asyncio.get_running_loop().time() + max_s
    while client.updates < target:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return
        await read_ws(ws, client, min(left, 0.2))


@dataclass
class Bystander:
    """A reading client beside a fault: what it got (``client``) and when each frame came."""

    client: Client = field(default_factory=lambda: Client())
    arrivals: list[float] = field(default_factory=list)

    def longest_stall_s(self) -> float:
        """The longest time the stream went without a frame."""
        return max(b - a for a, b in itertools.pairwise(self.arrivals))


@contextlib.asynccontextmanager
async def bystander(qg: Quotegate) -> AsyncIterator[Bystander]:
    """A WebSocket client on ``book.AAPL`` and ``trades.AAPL`` reading in the background; it
    has read for a second when the body starts, and goes on for half a second after it."""
    watch = Bystander()

    async def follow(ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for frame in ws:
                watch.arrivals.append(time.monotonic())
                watch.client.on_frame(frame)

    async with connect(qg.ws_url) as ws:
        await ws.send(subscribe_op(["book.AAPL", "trades.AAPL"]))
        reader = asyncio.create_task(follow(ws))
        try:
            await asyncio.sleep(1.0)
            yield watch
            await asyncio.sleep(0.5)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


def subscribe_op(channels: Sequence[str], since: dict[str, tuple[str, int]] | None = None) -> str:
    op: dict[str, Any] = {"op": "subscribe", "ch": list(channels), "id": 1}
    if since:
        op["since"] = {ch: {"epoch": e, "seq": s} for ch, (e, s) in since.items()}
    return orjson.dumps(op).decode()


# -- raw sockets (hostile clients) -------------------------------------------------------------


def ws_handshake(port: int, *, rcvbuf_bytes: int = 4096, path: str = "/v1/ws") -> socket.socket:
    """A WebSocket opened by hand (so the client can refuse to read), with a small receive
    buffer so the server's replies back up at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise AssertionError("the handshake was refused")
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (mask key 0: the payload goes as is), payload < 64 KiB."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    else:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


def read_close_code(sock: socket.socket, timeout_s: float = 5.0) -> int | None:
    """Read server frames until a close frame: its code (``None`` if the connection ended
    without one). Server frames are not masked."""
    sock.settimeout(timeout_s)
    buf = b""

    def need(n: int) -> bool:
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                return False
            buf += chunk
        return True

    while need(2):
        opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
        at = 2
        if n == 126:
            if not need(4):
                return None
            n, at = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if not need(10):
                return None
            n, at = int.from_bytes(buf[2:10], "big"), 10
        if not need(at + n):
            return None
        payload, buf = buf[at : at + n], buf[at + n :]
        if opcode == 0x8:
            return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
    return None


def http_head_response(sock: socket.socket, timeout_s: float) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response (status, lower-case headers, body by Content-Length)."""
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body
