// quotegate trading page: watchlist, ticker, L2 ladder, candles, tape, order entry and the
// account, all from one client (quotegate.js) that falls back WS -> SSE -> polling by itself.
// No framework, no build step. Page options in the query string (for operators and tests):
// ?transports=sse,poll&start=poll&probeMs=5000&openTimeoutMs=3000&heartbeatTimeoutMs=25000

import { connect } from "./quotegate.js";
import { mergeCandles, RESOLUTIONS } from "./lib/candles.js";

const BOOK_ROWS = 14;
const TAPE_ROWS = 40;
const FILLS_MAX = 100;
const WATCH_MAX = 50;
const CHART_LIB = "./node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.mjs";
const TRANSPORT_LABEL = { ws: "WS", sse: "SSE", poll: "polling" };

const $ = (id) => document.getElementById(id);

// ---- the client ------------------------------------------------------------------------------
const params = new URLSearchParams(location.search);
const options = { url: location.origin };
if (params.get("transports")) options.transports = params.get("transports").split(",");
if (params.get("start")) options.start = params.get("start");
for (const name of ["probeMs", "openTimeoutMs", "heartbeatTimeoutMs", "pollWaitS"]) {
  if (params.get(name)) options[name] = Number(params.get(name));
}
const client = connect(options);

const page = {
  symbol: null,
  resolution: "1m",
  symbols: [],
  tickers: new Map(),
  key: null,
  book: null,
  bookChanged: { bids: new Set(), asks: new Set() },
  trades: [],
  chart: null,
  candles: [], // REST history merged with the stream, oldest first
  candleChannel: null,
  fills: new Map(),
  orders: null,
  transportsSeen: [],
  errors: [],
};
// for tests and the curious: window.quotegate.client.stats()
window.quotegate = { client, page };

client.on("state", (s) => {
  if (s.transport && page.transportsSeen.at(-1) !== s.transport) page.transportsSeen.push(s.transport);
  renderBadge();
});
client.on("error", (e) => {
  page.errors.push(e);
  console.warn("quotegate:", e.code, e.message);
});

// ---- helpers ---------------------------------------------------------------------------------
function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function td(text, cls) { return el("td", cls, text); }

const fmtInt = new Intl.NumberFormat("en-US");
function fmtNum(v) {
  if (v === null || v === undefined || v === "") return "–";
  return typeof v === "number" ? fmtInt.format(v) : String(v);
}
function fmtCompact(v) {
  if (v === null || v === undefined) return "–";
  const n = Number(v);
  if (n >= 1e9) return (n / 1e9).toFixed(2) + "B";
  if (n >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "K";
  return fmtNum(v);
}
function decimals(price) {
  const dot = String(price).indexOf(".");
  return dot < 0 ? 0 : String(price).length - dot - 1;
}
function timeOf(tsUs) {
  return new Date(Math.floor(tsUs / 1000)).toLocaleTimeString([], { hour12: false });
}
function signClass(text) {
  if (text === null || text === undefined) return "";
  return String(text).startsWith("-") ? "down" : Number(text) === 0 ? "" : "up";
}

/** Render at most once a frame, whatever the message rate. */
function scheduler(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; fn(); });
  };
}

async function api(path, init = {}) {
  const headers = { ...(init.headers || {}) };
  if (page.key) headers.Authorization = `Bearer ${page.key}`;
  if (init.body) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { ...init, headers });
  let body = null;
  try { body = await resp.json(); } catch { body = null; }
  if (!resp.ok) {
    const err = body && body.error ? body.error : { code: String(resp.status), message: resp.statusText };
    throw Object.assign(new Error(err.message), { code: err.code, status: resp.status });
  }
  return body;
}

// ---- connection badge ------------------------------------------------------------------------
function renderBadge() {
  const s = client.stats();
  const badge = $("badge");
  badge.dataset.state = s.state;
  badge.dataset.transport = s.transport || "";
  $("badge-transport").textContent = s.transport ? TRANSPORT_LABEL[s.transport] : s.state;
  $("badge-delay").textContent = s.transport && s.delayMs !== null ? ` · ${Math.max(0, Math.round(s.delayMs))} ms` : "";
  const c = s.counters;
  $("counters").textContent =
    `${fmtInt.format(c.updates)} updates · ${c.gaps} gaps · ${c.checksumMismatches} checksum mismatches · ` +
    `${c.resyncs} resyncs · ${c.switches} transport switches`;
}
setInterval(renderBadge, 500);

// ---- watchlist and ticker --------------------------------------------------------------------
// Rows are made once and updated in place, so a click never lands on a row being replaced.
const watchRows = new Map();
function renderWatchlist() {
  for (const sym of page.symbols) {
    let row = watchRows.get(sym);
    if (!row) {
      const tr = el("tr");
      tr.dataset.symbol = sym;
      const cells = [td(sym, "sym"), td("–", "num"), td("–", "num")];
      tr.append(...cells);
      tr.addEventListener("click", () => selectSymbol(sym));
      $("watchlist").append(tr);
      row = { tr, cells, last: null };
      watchRows.set(sym, row);
    }
    const t = page.tickers.get(sym) || {};
    row.tr.classList.toggle("selected", sym === page.symbol);
    row.cells[1].textContent = fmtNum(t.last);
    row.cells[2].textContent = t.changePct === undefined || t.changePct === null ? "–" : `${t.changePct}%`;
    row.cells[2].className = `num ${signClass(t.change)}`;
    if (row.last !== null && t.last !== row.last) flash(row.tr);
    row.last = t.last ?? null;
  }
}
const drawWatchlist = scheduler(renderWatchlist);

/** Restart the flash animation of a row that stays in place. */
function flash(tr) {
  const next = tr.classList.contains("flash-a") ? "flash-b" : "flash-a";
  tr.classList.remove("flash-a", "flash-b");
  tr.classList.add(next);
}

function renderTicker() {
  const t = page.tickers.get(page.symbol) || {};
  $("t-symbol").textContent = page.symbol || "–";
  const last = $("t-last");
  last.textContent = fmtNum(t.last);
  last.className = `big ${signClass(t.change)}`;
  const chg = $("t-change");
  chg.textContent = t.change === undefined || t.change === null ? "–" : `${t.change} (${t.changePct}%)`;
  chg.className = signClass(t.change);
  $("t-high").textContent = fmtNum(t.high);
  $("t-low").textContent = fmtNum(t.low);
  $("t-volume").textContent = fmtCompact(t.volume);
  $("t-turnover").textContent = fmtCompact(t.turnover);
  document.title = t.last ? `${page.symbol} ${t.last} · quotegate` : "quotegate · trading";
}
const drawTicker = scheduler(renderTicker);

// ---- order book ------------------------------------------------------------------------------
// BOOK_ROWS rows per side, made once: asks fill from the bottom (best ask next to the spread).
function bookRows(id) {
  const rows = [];
  for (let i = 0; i < BOOK_ROWS; i++) {
    const tr = el("tr");
    const cells = [td("", "price"), td("", "num"), td("", "num muted")];
    tr.append(...cells);
    rows.push({ tr, cells, key: null });
  }
  $(id).replaceChildren(...rows.map((r) => r.tr));
  return rows;
}
const bookDom = { asks: bookRows("asks"), bids: bookRows("bids") };

function fillRow(row, level, max, changed) {
  if (!level) {
    if (row.key !== null) {
      row.key = null;
      delete row.tr.dataset.price;
      row.tr.style.setProperty("--depth", "0%");
      for (const c of row.cells) c.textContent = "";
    }
    return;
  }
  const [p, q, total] = level;
  row.tr.dataset.price = p;
  row.cells[0].textContent = p;
  row.cells[1].textContent = fmtNum(q);
  row.cells[2].textContent = fmtNum(total);
  row.tr.style.setProperty("--depth", `${((total / max) * 100).toFixed(1)}%`);
  const key = `${p}:${q}`;
  if (changed && row.key !== null && row.key !== key) flash(row.tr);
  row.key = key;
}

function renderBook() {
  const view = page.book || { bids: [], asks: [] };
  const changed = page.bookChanged; // every price touched since the last frame
  page.bookChanged = { bids: new Set(), asks: new Set() };
  const cum = (levels) => { let s = 0; return levels.slice(0, BOOK_ROWS).map(([p, q]) => [p, q, (s += q)]); };
  const cb = cum(view.bids);
  const ca = cum(view.asks);
  const max = Math.max(1, cb.length ? cb[cb.length - 1][2] : 0, ca.length ? ca[ca.length - 1][2] : 0);
  for (let i = 0; i < BOOK_ROWS; i++) {
    fillRow(bookDom.bids[i], cb[i], max, cb[i] && changed.bids.has(cb[i][0]));
    const a = ca[BOOK_ROWS - 1 - i];
    fillRow(bookDom.asks[i], a, max, a && changed.asks.has(a[0]));
  }
  const bids = view.bids;
  const asks = view.asks;
  if (bids.length && asks.length) {
    const d = Math.max(decimals(bids[0][0]), decimals(asks[0][0]));
    const spread = Number(asks[0][0]) - Number(bids[0][0]);
    $("mid").textContent = ((Number(asks[0][0]) + Number(bids[0][0])) / 2).toFixed(d + 1);
    $("spread").textContent = `spread ${spread.toFixed(d)}`;
  } else {
    $("mid").textContent = "–";
    $("spread").textContent = "";
  }
  $("book-info").textContent = page.book && page.bookSeq ? `seq ${page.bookSeq} · checksum ✓` : "";
}
const drawBook = scheduler(renderBook);

for (const id of ["asks", "bids"]) {
  // pointerdown: the row under the finger may be refreshed before the button comes up
  $(id).addEventListener("pointerdown", (ev) => {
    const tr = ev.target.closest("tr");
    if (!tr || !tr.dataset.price) return;
    $("o-type").value = "limit";
    $("o-price").value = tr.dataset.price;
    setSide(id === "asks" ? "buy" : "sell");
    updateFormState();
  });
}

// ---- trade tape ------------------------------------------------------------------------------
function renderTape() {
  const fresh = new Set(page.freshTrades || []);
  const rows = page.trades.slice(-TAPE_ROWS).reverse().map((t) => {
    const tr = el("tr", `${t.side === "buy" ? "up" : "down"}${fresh.has(t) ? " flash-a" : ""}`);
    tr.append(td(t.price, "price"), td(fmtNum(t.qty), "num"), td(timeOf(t.ts), "num muted"));
    return tr;
  });
  page.freshTrades = [];
  $("trades").replaceChildren(...rows);
}
const drawTape = scheduler(renderTape);

// ---- chart -----------------------------------------------------------------------------------
async function loadChartLibrary() {
  try {
    const lib = await import(CHART_LIB);
    const host = $("chart");
    const chart = lib.createChart(host, {
      autoSize: true,
      layout: { background: { type: "solid", color: "#10161d" }, textColor: "#8796a8", fontSize: 11, attributionLogo: true },
      grid: { vertLines: { color: "#1a232d" }, horzLines: { color: "#1a232d" } },
      rightPriceScale: { borderColor: "#243140" },
      timeScale: { borderColor: "#243140", timeVisible: true, secondsVisible: true },
      crosshair: { mode: 0 },
    });
    const candles = chart.addSeries(lib.CandlestickSeries, {
      upColor: "#2ebd85", downColor: "#f6465d", wickUpColor: "#2ebd85", wickDownColor: "#f6465d", borderVisible: false,
    });
    candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.28 } });
    const volume = chart.addSeries(lib.HistogramSeries, { priceFormat: { type: "volume" }, priceScaleId: "" });
    volume.priceScale().applyOptions({ scaleMargins: { top: 0.78, bottom: 0 } });
    page.chart = { chart, candles, volume, points: 0 };
    $("chart-note").textContent = "";
    drawAllCandles();
  } catch (err) {
    $("chart-note").textContent = "Chart library not installed (run: npm ci --prefix web). Everything else works.";
    console.warn("lightweight-charts:", err);
  }
}

function bar(c) {
  return { time: c.t / 1000, open: Number(c.o), high: Number(c.h), low: Number(c.l), close: Number(c.c) };
}
function volumeBar(c) {
  return { time: c.t / 1000, value: c.v, color: Number(c.c) >= Number(c.o) ? "rgba(46,189,133,0.45)" : "rgba(246,70,93,0.45)" };
}

function drawAllCandles() {
  const ch = page.chart;
  if (!ch) return;
  ch.candles.setData(page.candles.map(bar));
  ch.volume.setData(page.candles.map(volumeBar));
  ch.points = page.candles.length;
}

function onCandles(view, info) {
  if (info.type === "snapshot") {
    mergeCandles(page.candles, view.candles);
    drawAllCandles();
    return;
  }
  const last = page.candles.length ? page.candles[page.candles.length - 1].t : -Infinity;
  const older = view.changed.some((c) => c.t < last);
  mergeCandles(page.candles, view.changed);
  const ch = page.chart;
  if (!ch) return;
  if (older) {
    drawAllCandles();
    return;
  }
  for (const c of view.changed) {
    ch.candles.update(bar(c));
    ch.volume.update(volumeBar(c));
  }
  ch.points = page.candles.length;
}

async function loadHistory(symbol, resolution) {
  try {
    const body = await api(`/v1/marketdata/candles?symbol=${encodeURIComponent(symbol)}&resolution=${resolution}&limit=500`);
    if (page.symbol !== symbol || page.resolution !== resolution) return;
    // what the stream already brought is newer than (or as new as) the REST answer
    const streamed = page.candles;
    page.candles = mergeCandles(body.candles.slice(), streamed);
    drawAllCandles();
  } catch (err) {
    if (err.status !== 404) console.warn("candles history:", err.message);
  }
}

function renderResolutions() {
  const buttons = RESOLUTIONS.map((r) => {
    const b = el("button", r === page.resolution ? "active" : "", r);
    b.type = "button";
    b.dataset.res = r;
    b.addEventListener("click", () => selectResolution(r));
    return b;
  });
  $("resolutions").replaceChildren(...buttons);
}

function selectResolution(resolution) {
  if (resolution === page.resolution && page.candleChannel) return;
  page.resolution = resolution;
  renderResolutions();
  subscribeCandles();
}

function subscribeCandles() {
  if (page.candleChannel) client.unsubscribe(page.candleChannel);
  page.candles = [];
  drawAllCandles();
  if (page.chart) {
    page.chart.chart.applyOptions({ timeScale: { secondsVisible: page.resolution === "1s" } });
  }
  page.candleChannel = `candles.${page.symbol}.${page.resolution}`;
  client.subscribe(page.candleChannel, onCandles);
  loadHistory(page.symbol, page.resolution);
}

// ---- symbol selection ------------------------------------------------------------------------
function selectSymbol(symbol) {
  if (symbol === page.symbol) return;
  if (page.symbol) {
    client.unsubscribe(`book.${page.symbol}`);
    client.unsubscribe(`trades.${page.symbol}`);
  }
  page.symbol = symbol;
  page.book = null;
  page.trades = [];
  if (location.hash !== `#${symbol}`) history.replaceState(null, "", `${location.search}#${symbol}`);
  client.subscribe(`book.${symbol}`, (view, info) => {
    page.book = view;
    page.bookSeq = info.seq;
    for (const side of ["bids", "asks"]) for (const p of view.changed[side]) page.bookChanged[side].add(p);
    drawBook();
  });
  client.subscribe(`trades.${symbol}`, (view, info) => {
    page.trades = view.trades;
    page.freshTrades = info.type === "update" ? (page.freshTrades || []).concat(view.added) : [];
    drawTape();
  });
  subscribeCandles();
  drawBook();
  drawTape();
  renderWatchlist();
  renderTicker();
  updateFormState();
}

// ---- order entry and account -----------------------------------------------------------------
let side = "buy";
function setSide(s) {
  side = s;
  for (const b of document.querySelectorAll(".side")) b.classList.toggle("active", b.dataset.side === s);
  updateFormState();
}
for (const b of document.querySelectorAll(".side")) b.addEventListener("click", () => setSide(b.dataset.side));

function updateFormState() {
  const market = $("o-type").value === "market";
  $("o-price").disabled = market;
  $("o-tif").disabled = market;
  const submit = $("o-submit");
  submit.disabled = !page.key || !page.symbol;
  submit.className = `submit ${side}`;
  submit.textContent = `${side === "buy" ? "Buy" : "Sell"} ${page.symbol || ""}`;
}
$("o-type").addEventListener("change", updateFormState);

function showResult(text, ok) {
  const r = $("o-result");
  r.textContent = text;
  r.className = `result ${ok ? "ok" : "bad"}`;
}

$("order-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!page.key) return;
  const type = $("o-type").value;
  const order = { symbol: page.symbol, side, type, qty: Number($("o-qty").value) };
  if (type === "limit") {
    order.price = $("o-price").value.trim();
    order.tif = $("o-tif").value;
  }
  try {
    const body = await api("/v1/order", { method: "POST", body: JSON.stringify(order) });
    const o = body.order;
    showResult(`${o.side} ${o.qty} ${o.symbol}${o.price ? " @ " + o.price : ""}: ${o.status} (#${o.orderId})`, true);
  } catch (err) {
    showResult(err.message, false);
  }
});

$("key-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const key = $("api-key").value.trim();
  if (key) await useKey(key);
});

async function useKey(key) {
  const previous = page.key;
  page.key = key;
  try {
    await refreshBalances();
  } catch (err) {
    page.key = previous;
    $("account-note").textContent = err.status === 401 ? "Unknown API key." : `Cannot check the key: ${err.message}`;
    return;
  }
  sessionStorage.setItem("quotegate.key", key);
  $("api-key").value = "";
  $("api-key").placeholder = "API key ✓";
  $("account-note").textContent = "";
  client.auth(key);
  if (!previous) client.subscribe("orders", onOrders);
  loadFills();
  updateFormState();
}

function onOrders(view, info) {
  page.orders = view;
  if (info.type === "snapshot" && info.resync) loadFills(); // fills in a gap are not replayed
  if (info.type === "update" && view.event && view.event.event === "trade") addFills([view.event]);
  renderOrders();
  if (info.type === "update") scheduleBalances();
}

function renderOrders() {
  const open = page.orders ? page.orders.open : [];
  $("open-count").textContent = open.length ? `(${open.length})` : "";
  const rows = open.slice().reverse().map((o) => {
    const tr = el("tr");
    tr.dataset.orderId = o.orderId;
    const cancel = el("button", "cancel", "Cancel");
    cancel.type = "button";
    cancel.addEventListener("click", () => cancelOrder(o.orderId));
    const act = td("");
    act.append(cancel);
    tr.append(td(o.symbol), td(o.side, o.side === "buy" ? "up" : "down"), td(o.price ?? "mkt", "num"),
      td(fmtNum(o.qty), "num"), td(fmtNum(o.filled), "num"), td(o.tif), act);
    return tr;
  });
  $("open-orders").replaceChildren(...rows);
}

async function cancelOrder(orderId) {
  try {
    await api(`/v1/order/${orderId}`, { method: "DELETE" });
  } catch (err) {
    showResult(`cancel #${orderId}: ${err.message}`, false);
  }
}

function addFills(list) {
  for (const f of list) page.fills.set(`${f.tradeId}:${f.orderId}:${f.side}`, f);
  for (const key of page.fills.keys()) {
    if (page.fills.size <= FILLS_MAX * 5) break;
    page.fills.delete(key); // the oldest arrivals
  }
  renderFills();
}

function renderFills() {
  const fills = [...page.fills.values()].sort((a, b) => b.ts - a.ts).slice(0, FILLS_MAX);
  const rows = fills.map((f) => {
    const tr = el("tr");
    tr.append(td(timeOf(f.ts), "muted"), td(f.symbol), td(f.side, f.side === "buy" ? "up" : "down"),
      td(f.price, "num"), td(fmtNum(f.qty), "num"), td(f.liquidity || "", "muted"));
    return tr;
  });
  $("fills").replaceChildren(...rows);
}

async function loadFills() {
  try {
    const body = await api(`/v1/execution?limit=${FILLS_MAX}`);
    addFills(body.executions || []);
  } catch (err) {
    console.warn("fills:", err.message);
  }
}

async function refreshBalances() {
  const body = await api("/v1/account");
  const rows = Object.entries(body.balances).map(([asset, b]) => {
    const tr = el("tr");
    tr.dataset.asset = asset;
    tr.append(td(asset), td(fmtNum(b.available), "num"), td(fmtNum(b.reserved), "num muted"));
    return tr;
  });
  $("balances").replaceChildren(...rows);
}

let balanceTimer = null;
function scheduleBalances() {
  if (balanceTimer !== null) return;
  balanceTimer = setTimeout(() => {
    balanceTimer = null;
    refreshBalances().catch((err) => console.warn("balances:", err.message));
  }, 150);
}

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === tab);
    for (const body of document.querySelectorAll(".tab-body")) body.hidden = body.dataset.body !== tab.dataset.tab;
  });
}

// ---- start -----------------------------------------------------------------------------------
async function main() {
  renderResolutions();
  updateFormState();
  loadChartLibrary();
  let symbols = [];
  try {
    symbols = (await api("/v1/symbols")).symbols.map((s) => s.symbol);
  } catch (err) {
    $("chart-note").textContent = `cannot load /v1/symbols: ${err.message}`;
  }
  page.symbols = symbols.slice(0, WATCH_MAX);
  for (const sym of page.symbols) {
    client.subscribe(`ticker.${sym}`, (view) => {
      page.tickers.set(sym, view.ticker);
      drawWatchlist();
      if (sym === page.symbol) drawTicker();
    });
  }
  const wanted = decodeURIComponent(location.hash.slice(1));
  const first = page.symbols.includes(wanted) ? wanted : page.symbols[0];
  if (first) selectSymbol(first);
  const saved = sessionStorage.getItem("quotegate.key");
  if (saved) useKey(saved);
}

main();
