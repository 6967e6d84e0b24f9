// quotegate live page: one symbol's L2 book, trades and ticker over the WebSocket.
// No framework, no build step. Protocol: docs/protocol.md.
"use strict";

const BOOK_ROWS = 15;
const CHECKSUM_LEVELS = 10;
const TRADES_MAX = 50;

const $ = (id) => document.getElementById(id);

// ---- CRC32 (the book checksum) -----------------------------------------------------------
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(text) {
  const bytes = new TextEncoder().encode(text);
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ---- the client-side book -----------------------------------------------------------------
class Book {
  constructor() { this.bids = new Map(); this.asks = new Map(); this.depth = 0; }

  reset(data) {
    this.bids = new Map(data.bids.map(([p, q]) => [p, q]));
    this.asks = new Map(data.asks.map(([p, q]) => [p, q]));
    this.depth = Math.max(data.bids.length, data.asks.length, this.depth);
  }

  apply(data) {
    for (const [side, levels] of [[this.bids, data.bids], [this.asks, data.asks]]) {
      for (const [p, q] of levels) {
        if (q === 0) side.delete(p); else side.set(p, q);
      }
    }
  }

  sorted(side) {
    const levels = [...(side === "bids" ? this.bids : this.asks).entries()];
    levels.sort((a, b) => (side === "bids" ? Number(b[0]) - Number(a[0]) : Number(a[0]) - Number(b[0])));
    return levels;
  }

  checksum() {
    const fmt = (levels) => levels.slice(0, CHECKSUM_LEVELS).map(([p, q]) => `${p}:${q}`).join(",");
    return crc32(`${fmt(this.sorted("bids"))}|${fmt(this.sorted("asks"))}`);
  }
}

// ---- state ----------------------------------------------------------------------------------
const state = {
  symbol: null,
  ws: null,
  nextId: 1,
  streams: new Map(), // channel -> {epoch, seq}
  book: new Book(),
  trades: [],
  counters: { messages: 0, resyncs: 0, checksumErrors: 0 },
  retryMs: 500,
};

function channels(symbol) {
  return [`book.${symbol}`, `trades.${symbol}`, `ticker.${symbol}`];
}

function setStatus(text, s) {
  const el = $("status");
  el.textContent = text;
  el.dataset.state = s;
}

function send(obj) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    obj.id = state.nextId++;
    state.ws.send(JSON.stringify(obj));
  }
}

// Subscribe; with `since` for channels we hold, so the server sends only what was missed.
function subscribe(chs) {
  const since = {};
  for (const ch of chs) {
    const st = state.streams.get(ch);
    if (st) since[ch] = { epoch: st.epoch, seq: st.seq };
  }
  send({ op: "subscribe", ch: chs, since });
}

function resync(ch, why) {
  const st = state.streams.get(ch);
  if (st && st.resyncing) return; // asked already: wait for the missed updates or a snapshot
  state.counters.resyncs++;
  console.warn(`resync ${ch}: ${why}`);
  if (why === "checksum") state.streams.delete(ch); // our copy is wrong: take a snapshot
  subscribe([ch]);
  const again = state.streams.get(ch);
  if (again) again.resyncing = true;
}

// ---- messages -------------------------------------------------------------------------------
function onEnvelope(msg) {
  const ch = msg.ch;
  if (!state.symbol || !channels(state.symbol).includes(ch)) return; // an old symbol's tail
  const st = state.streams.get(ch);
  if (msg.type === "snapshot") {
    state.streams.set(ch, { epoch: msg.epoch, seq: msg.seq, resyncing: false });
    applySnapshot(ch, msg.data);
    return;
  }
  if (!st) return; // an update before our snapshot: the snapshot follows
  if (msg.epoch !== st.epoch || msg.seq !== st.seq + 1) {
    if (msg.epoch === st.epoch && msg.seq <= st.seq) return; // already applied
    resync(ch, `gap: have ${st.seq}, got ${msg.seq}`);
    return;
  }
  st.seq = msg.seq;
  st.resyncing = false;
  applyUpdate(ch, msg.data);
}

function applySnapshot(ch, data) {
  const kind = ch.split(".")[0];
  if (kind === "book") {
    state.book.reset(data);
    checkBook(ch, data.checksum);
    renderBook();
  } else if (kind === "trades") {
    state.trades = data.trades.slice().reverse().slice(0, TRADES_MAX);
    renderTrades();
  } else if (kind === "ticker") {
    renderTicker(data);
  }
}

function applyUpdate(ch, data) {
  const kind = ch.split(".")[0];
  if (kind === "book") {
    state.book.apply(data);
    if (checkBook(ch, data.checksum)) renderBook();
  } else if (kind === "trades") {
    state.trades = data.trades.slice().reverse().concat(state.trades).slice(0, TRADES_MAX);
    renderTrades();
  } else if (kind === "ticker") {
    renderTicker(data);
  }
}

function checkBook(ch, expected) {
  if (expected === undefined) return true;
  const got = state.book.checksum();
  if (got !== expected) {
    state.counters.checksumErrors++;
    resync(ch, "checksum");
    return false;
  }
  return true;
}

function onMessage(msg) {
  state.counters.messages++;
  switch (msg.type) {
    case "snapshot":
    case "update":
      onEnvelope(msg);
      break;
    case "error":
      setStatus(`error: ${msg.code}: ${msg.message}`, "error");
      break;
    case "subscribed":
      setStatus("live", "live");
      break;
    default:
      break; // heartbeat, pong, unsubscribed, authed
  }
}

// ---- rendering ------------------------------------------------------------------------------
function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function renderBook() {
  const bids = state.book.sorted("bids").slice(0, BOOK_ROWS);
  const asks = state.book.sorted("asks").slice(0, BOOK_ROWS);
  const maxQty = Math.max(1, ...bids.map((l) => l[1]), ...asks.map((l) => l[1]));
  const rows = (levels) => levels.map(([p, q]) => {
    const tr = document.createElement("tr");
    tr.append(cell(p, "price"), cell(String(q), "qty"));
    const bar = cell("", "bar-col");
    const span = document.createElement("span");
    span.className = "bar";
    span.style.width = `${Math.round((q / maxQty) * 100)}%`;
    bar.append(span);
    tr.append(bar);
    return tr;
  });
  $("asks").replaceChildren(...rows(asks.slice().reverse()));
  $("bids").replaceChildren(...rows(bids));
  const bestBid = bids.length ? bids[0][0] : null;
  const bestAsk = asks.length ? asks[0][0] : null;
  $("spread").textContent = bestBid && bestAsk
    ? `spread ${(Number(bestAsk) - Number(bestBid)).toFixed(Math.max(decimals(bestBid), decimals(bestAsk)))}`
    : "–";
  const st = state.streams.get(`book.${state.symbol}`);
  $("book-info").textContent = st ? `seq ${st.seq} · checksum ok` : "";
  renderCounters();
}

function decimals(price) {
  const dot = price.indexOf(".");
  return dot < 0 ? 0 : price.length - dot - 1;
}

function renderTrades() {
  const rows = state.trades.map((t) => {
    const tr = document.createElement("tr");
    tr.className = t.side === "buy" ? "buy" : "sell";
    const time = new Date(Math.floor(t.ts / 1000)).toLocaleTimeString();
    tr.append(cell(time), cell(t.price, "price"), cell(String(t.qty), "qty"));
    return tr;
  });
  $("trades").replaceChildren(...rows);
}

function renderTicker(t) {
  const show = (id, v) => { $(id).textContent = v === null || v === undefined ? "–" : String(v); };
  show("t-last", t.last);
  show("t-bid", t.bid);
  show("t-ask", t.ask);
  show("t-open", t.open);
  show("t-high", t.high);
  show("t-low", t.low);
  show("t-volume", t.volume);
  const change = t.change === null || t.change === undefined ? "–" : `${t.change} (${t.changePct}%)`;
  $("t-change").textContent = change;
  $("t-change").className = String(t.change || "").startsWith("-") ? "down" : "up";
}

function renderCounters() {
  const c = state.counters;
  $("counters").textContent =
    `${c.messages} messages · ${c.resyncs} resyncs · ${c.checksumErrors} checksum mismatches`;
}

// ---- connection -----------------------------------------------------------------------------
function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/v1/ws`);
  state.ws = ws;
  setStatus("connecting…", "connecting");
  ws.onopen = () => {
    state.retryMs = 500;
    if (state.symbol) subscribe(channels(state.symbol)); // resumes with since after a drop
  };
  ws.onmessage = (ev) => {
    for (const line of String(ev.data).split("\n")) {
      if (!line) continue;
      try { onMessage(JSON.parse(line)); } catch (err) { console.error("bad message", err); }
    }
  };
  ws.onclose = (ev) => {
    setStatus(`disconnected (${ev.code}); reconnecting…`, "down");
    state.ws = null;
    setTimeout(connect, state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, 10000);
  };
}

function chooseSymbol(symbol) {
  if (state.symbol === symbol) return;
  if (state.symbol) send({ op: "unsubscribe", ch: channels(state.symbol) });
  for (const ch of channels(state.symbol || "")) state.streams.delete(ch);
  state.symbol = symbol;
  state.book = new Book();
  state.trades = [];
  renderBook();
  renderTrades();
  renderTicker({});
  if (location.hash !== `#${symbol}`) history.replaceState(null, "", `#${symbol}`);
  subscribe(channels(symbol));
}

async function main() {
  const select = $("symbol");
  let symbols = [];
  try {
    const resp = await fetch("/v1/symbols");
    symbols = (await resp.json()).symbols.map((s) => s.symbol);
  } catch (err) {
    setStatus("cannot load /v1/symbols", "error");
  }
  for (const s of symbols) {
    const opt = document.createElement("option");
    opt.value = opt.textContent = s;
    select.append(opt);
  }
  const wanted = decodeURIComponent(location.hash.slice(1));
  const first = symbols.includes(wanted) ? wanted : symbols[0];
  if (first) select.value = first;
  select.addEventListener("change", () => chooseSymbol(select.value));
  connect();
  if (first) {
    state.symbol = first;
    if (location.hash !== `#${first}`) history.replaceState(null, "", `#${first}`);
  }
}

main();
