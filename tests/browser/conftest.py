"""Browser tests: Playwright driving Debian's Chromium against a real ``quotegate run``.

* ``browser`` (module): Chromium from ``/usr/bin/chromium`` (``QUOTEGATE_CHROMIUM`` to point
  elsewhere). Playwright's own browser download is not used. Without Chromium the tests are
  skipped on a developer machine and FAIL under ``CI=true``.
* ``QuotegateServer``: ``quotegate run`` as a subprocess on a fixed port, stopped with SIGTERM
  and restartable on the same port with other ``--transports`` (what the fallback tests do).
* ``page``: a fresh page; when the test fails, a full-page screenshot goes to
  ``$QUOTEGATE_SCREENSHOTS`` (default ``.pytest-artifacts/`` at the repository root) and its
  path is printed with the page's console log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import wait_healthy
from tests.services import missing_service

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("QUOTEGATE_CHROMIUM", "/usr/bin/chromium")
KEY = "browser-test-key-0123456789"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        missing_service(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    console: list[str] = []
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    try:
        yield pg
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            folder = Path(os.environ.get("QUOTEGATE_SCREENSHOTS", ROOT / ".pytest-artifacts"))
            folder.mkdir(parents=True, exist_ok=True)
            shot = folder / f"{request.node.name}.png"
            try:
                pg.screenshot(path=str(shot), full_page=True)
                print(f"\nscreenshot of the failed page: {shot}")
            except Exception as exc:  # the page may be gone
                print(f"\nno screenshot: {exc}")
            print("page console:\n" + "\n".join(console[-50:]))
        context.close()


class QuotegateServer:
    """``quotegate run`` on ``port``; :meth:`start` again after :meth:`stop` restarts it with
    the same journal (same epoch, the market restored) and, maybe, other transports."""

    def __init__(self, port: int, folder: Path, *, rate: int = 300) -> None:
        self.port = port
        self.folder = folder
        self.rate = rate
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    def start(self, transports: str = "ws,sse,poll") -> None:
        assert self.proc is None
        log = self.folder / f"run-{len(self.logs)}.log"
        self.logs.append(log)
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTEGATE_")}
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "gateway.roots.cli", "run",
                    "--port", str(self.port), "--symbols", "AAPL,MSFT",
                    "--rate", str(self.rate), "--candles-db", ":memory:",
                    "--demo-key", KEY, "--log-level", "warning",
                    "--journal", str(self.folder / "journal.log"),
                    "--database-url", "none",  # the page tests predate the reporter
                    "--transports", transports,
                ],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_healthy(self.proc, self.base, log, timeout_s=60)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def quotegate(free_port: int, tmp_path: Path) -> Iterator[Callable[..., QuotegateServer]]:
    """``quotegate(transports=..., rate=...)`` starts a server; all are stopped at the end."""
    servers: list[QuotegateServer] = []

    def start(transports: str = "ws,sse,poll", rate: int = 300) -> QuotegateServer:
        server = QuotegateServer(free_port, tmp_path, rate=rate)
        servers.append(server)
        server.start(transports)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


def wait_for(pg: Any, expression: str, timeout_s: float = 20.0, arg: Any = None) -> Any:
    """Poll ``expression`` (a JS function body's return value) until truthy; returns it."""
    handle = pg.wait_for_function(f"(arg) => {{ {expression} }}", arg=arg, timeout=timeout_s * 1000)
    return handle.json_value()


def stats(pg: Any) -> dict[str, Any]:
    result: dict[str, Any] = pg.evaluate(
        "() => ({...window.quotegate.client.stats(), seen: window.quotegate.page.transportsSeen})"
    )
    return result
