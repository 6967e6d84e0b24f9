"""The trading page in Chromium against a real ``quotegate run``: market data on the page, an
order's round trip through book, my orders and balances, and the transport fallbacks
(WebSocket refused -> SSE, SSE refused too -> polling, all allowed again -> WebSocket) with the
page's own seq and checksum checks seeing no gap and no mismatch across every switch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.conftest import KEY, QuotegateServer, stats, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUICK = "?probeMs=3000&openTimeoutMs=3000"


def _updates(pg: Any) -> int:
    value: int = pg.evaluate("() => window.quotegate.client.counters.updates")
    return value


def _flowing(pg: Any, timeout_s: float = 20.0) -> None:
    """Updates keep arriving and the book and tape show them."""
    before = _updates(pg)
    wait_for(pg, f"return window.quotegate.client.counters.updates > {before + 20}", timeout_s)
    wait_for(pg, "return document.querySelectorAll('#bids tr').length >= 5", timeout_s)
    wait_for(pg, "return document.querySelectorAll('#trades tr').length >= 3", timeout_s)


def _clean(pg: Any) -> None:
    s = stats(pg)
    c = s["counters"]
    assert c["gaps"] == 0, s
    assert c["checksumMismatches"] == 0, s
    # nothing was applied twice: the tape's trade ids are unique
    trades = pg.evaluate("() => window.quotegate.page.trades.map((t) => t.id)")
    assert len(trades) == len(set(trades)), trades


def test_page_streams_book_chart_tape_and_watchlist(
    quotegate: Callable[..., QuotegateServer], page: Any
) -> None:
    server = quotegate()
    page.goto(server.base + "/")
    wait_for(page, "return window.quotegate.client.transport === 'ws'")
    _flowing(page)
    # watchlist: every symbol with a last price and a change %
    rows = page.locator("#watchlist tr")
    assert rows.count() == 2
    wait_for(page, "return [...document.querySelectorAll('#watchlist tr td:nth-child(2)')]"
                   ".every((td) => /\\d/.test(td.textContent))")  # fmt: skip
    assert "%" in rows.nth(0).locator("td").nth(2).inner_text()
    # ticker header
    wait_for(page, "return /\\d/.test(document.getElementById('t-last').textContent)")
    assert page.locator("#t-symbol").inner_text() == "AAPL"
    # the ladder: both sides, asks above bids, cumulative totals grow away from the spread
    ladder = page.evaluate(
        """() => Object.fromEntries(["asks", "bids"].map((id) => [id,
            [...document.querySelectorAll(`#${id} tr`)]
              .filter((tr) => tr.dataset.price)
              .map((tr) => [...tr.children].map((td) => td.textContent))]))"""
    )
    asks, bids = ladder["asks"], ladder["bids"]
    assert 5 <= len(bids) <= 20 and 5 <= len(asks) <= 20
    assert float(asks[-1][0]) > float(bids[0][0])  # best ask (bottom of the asks) above best bid
    assert [float(a[0]) for a in asks] == sorted((float(a[0]) for a in asks), reverse=True)
    for side in (bids, list(reversed(asks))):  # totals grow away from the spread
        totals = [int(level[2].replace(",", "")) for level in side]
        assert totals == sorted(totals)
    # the chart: lightweight-charts drew candles and volume, and the live candle moves
    wait_for(page, "return window.quotegate.page.chart && window.quotegate.page.chart.points > 0")
    assert page.locator("#chart canvas").count() >= 1
    page.click("#resolutions button[data-res='1s']")
    wait_for(page, "return window.quotegate.page.candleChannel === 'candles.AAPL.1s'")
    newest = "const c = window.quotegate.page.candles; return c.length && c[c.length - 1].t"
    first = wait_for(page, newest)
    wait_for(page, newest + " > arg", arg=first)
    # switching symbols from the watchlist
    page.locator("#watchlist tr[data-symbol='MSFT']").click()
    wait_for(page, "return document.getElementById('t-symbol').textContent === 'MSFT'")
    wait_for(page, "return window.quotegate.page.candleChannel === 'candles.MSFT.1s'")
    _flowing(page)
    assert page.locator("#badge-transport").inner_text() == "WS"
    assert "ms" in page.locator("#badge-delay").inner_text()
    _clean(page)


def test_an_order_placed_on_the_page_reaches_book_orders_and_balances(
    quotegate: Callable[..., QuotegateServer], page: Any
) -> None:
    server = quotegate(rate=20)  # a quiet market: the order rests where we put it
    page.goto(server.base + "/")
    _flowing(page)
    page.fill("#api-key", KEY)
    page.click("#key-button")
    wait_for(page, "return !document.getElementById('o-submit').disabled")
    page.click(".tab[data-tab='balances']")
    wait_for(page, "return document.querySelector('#balances tr[data-asset=USD]')")
    usd_reserved = page.locator("#balances tr[data-asset=USD] td").nth(2)
    assert usd_reserved.inner_text() == "0.00"
    # click a bid ten levels deep: the form takes its price (whatever the row shows just then)
    page.locator("#bids tr").nth(10).click()
    price = page.input_value("#o-price")
    assert float(price) > 0
    page.click(".side[data-side='buy']")
    page.fill("#o-qty", "700")
    page.click("#o-submit")
    wait_for(page, "return /new|partially/.test(document.getElementById('o-result').textContent)")
    # the book shows it (our 700 on that level), my orders list it, the cash is reserved
    wait_for(page, "const tr = document.querySelector(`#bids tr[data-price='${arg}']`);"
                   "return tr && Number(tr.children[1].textContent.replace(/,/g, '')) >= 700",
             arg=price)  # fmt: skip
    page.click(".tab[data-tab='open']")
    wait_for(page, "return document.querySelectorAll('#open-orders tr').length === 1")
    row = page.locator("#open-orders tr").first
    assert row.locator("td").nth(0).inner_text() == "AAPL"
    assert row.locator("td").nth(2).inner_text() == price
    page.click(".tab[data-tab='balances']")
    reserved = f"{float(price) * 700:.2f}"
    wait_for(page, "return document.querySelector('#balances tr[data-asset=USD] td:nth-child(3)')"
                   ".textContent === arg", arg=reserved)  # fmt: skip
    # cancel from my orders: gone from the list, the book and the reservation
    page.click(".tab[data-tab='open']")
    page.locator("#open-orders tr button.cancel").click()
    wait_for(page, "return document.querySelectorAll('#open-orders tr').length === 0")
    wait_for(page, "const tr = document.querySelector(`#bids tr[data-price='${arg}']`);"
                   "return !tr || Number(tr.children[1].textContent.replace(/,/g, '')) < 700",
             arg=price)  # fmt: skip
    page.click(".tab[data-tab='balances']")
    wait_for(page, "return document.querySelector('#balances tr[data-asset=USD] td:nth-child(3)')"
                   ".textContent === '0.00'")  # fmt: skip
    # a market order fills: it shows in my fills
    page.select_option("#o-type", "market")
    page.fill("#o-qty", "3")
    page.click("#o-submit")
    page.click(".tab[data-tab='fills']")
    wait_for(page, "return document.querySelectorAll('#fills tr').length >= 1")
    assert page.locator("#fills tr").first.locator("td").nth(1).inner_text() == "AAPL"
    _clean(page)


def test_fallback_to_sse_then_polling_then_upgrade_to_websocket(
    quotegate: Callable[..., QuotegateServer], page: Any
) -> None:
    server = quotegate(transports="sse,poll")  # a proxy that blocks WebSockets
    page.goto(server.base + "/" + QUICK)
    page.fill("#api-key", KEY)
    page.click("#key-button")
    wait_for(page, "return window.quotegate.client.transport === 'sse'")
    _flowing(page)
    assert page.locator("#badge-transport").inner_text() == "SSE"
    assert stats(page)["seen"] == ["sse"]
    _clean(page)

    server.stop()  # and back with SSE blocked too
    server.start("poll")
    wait_for(page, "return window.quotegate.client.transport === 'poll'", 40)
    _flowing(page, 40)
    assert page.locator("#badge-transport").inner_text() == "polling"
    _clean(page)

    server.stop()  # and back with every transport
    server.start()
    wait_for(page, "return window.quotegate.client.transport === 'ws'", 60)
    _flowing(page)
    s = stats(page)
    assert s["seen"] == ["sse", "poll", "ws"], s
    _clean(page)
    # the private stream came along: an order placed now shows in my orders over the WebSocket
    page.fill("#o-price", "1.00")
    page.fill("#o-qty", "2")
    page.click("#o-submit")
    wait_for(page, "return document.querySelectorAll('#open-orders tr').length === 1")


def test_a_probe_upgrades_a_live_fallback_without_a_gap(
    quotegate: Callable[..., QuotegateServer], page: Any
) -> None:
    """Polling is working and WebSocket is there too: the page's probe moves it to WS."""
    server = quotegate()
    # the page starts on polling only (as if it had fallen back), then probes the better ones
    page.goto(server.base + "/" + QUICK + "&start=poll")
    wait_for(page, "return window.quotegate.client.transport === 'poll'")
    _flowing(page)
    wait_for(page, "return window.quotegate.client.transport === 'ws'", 20)
    _flowing(page)
    s = stats(page)
    assert s["counters"]["upgrades"] >= 1 and s["seen"] == ["poll", "ws"], s
    _clean(page)
