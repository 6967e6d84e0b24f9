// The transport links against scripted servers: a fake WebSocket class and a fake fetch that
// answer like the gateway (docs/protocol.md, docs/transports.md).
import assert from "node:assert/strict";
import { test } from "node:test";

import { PollLink, SseLink, WsLink, parseSseData } from "../../web/lib/links.js";
import { flush } from "./fakes.mjs";

function hooksLog() {
  const log = [];
  return {
    log,
    hooks: {
      open: () => log.push("open"),
      message: (l, msg) => log.push(msg),
      alive: () => log.push("alive"),
      close: (l, reason) => log.push(`close: ${reason}`),
    },
  };
}

const env = { setTimeout, clearTimeout };
const positions = { "book.A": { epoch: "e", seq: 7 }, "trades.A": null, orders: null };
const position = (ch) => positions[ch] ?? null;

test("WebSocket: auth, subscribe with since, ping; frames split on newlines", async () => {
  const sockets = [];
  class FakeWs {
    constructor(url) { this.url = url; this.sent = []; this.readyState = 0; sockets.push(this); }
    send(text) { this.sent.push(JSON.parse(text)); }
    close() { this.readyState = 3; }
  }
  const { log, hooks } = hooksLog();
  const link = new WsLink({
    url: "http://h:1", token: "key", hooks, position, env: { ...env, WebSocket: FakeWs },
    wanted: () => ["book.A", "trades.A", "orders"],
  });
  link.start();
  const ws = sockets[0];
  assert.equal(ws.url, "ws://h:1/v1/ws");
  ws.readyState = 1;
  ws.onopen();
  assert.deepEqual(ws.sent.map((m) => m.op), ["auth", "subscribe", "ping"]);
  assert.equal(ws.sent[0].token, "key");
  assert.deepEqual(ws.sent[1].ch, ["book.A", "trades.A", "orders"]);
  assert.deepEqual(ws.sent[1].since, { "book.A": { epoch: "e", seq: 7 } });
  ws.onmessage({ data: '{"type":"subscribed","ch":["book.A"]}\n{"type":"update","ch":"book.A","seq":8}' });
  assert.deepEqual(log.slice(0, 1), ["open"]);
  assert.equal(log[2].seq, 8);
  link.sync(["book.A"]); // a resync: that channel again, from its position
  assert.deepEqual(ws.sent.at(-1).ch, ["book.A"]);
  ws.onclose({ code: 1006 });
  assert.equal(log.at(-1), "close: websocket closed (1006)");
});

test("WebSocket refused before it opened: closed, never opened", () => {
  class Refused {
    constructor() { this.readyState = 0; setTimeout(() => this.onclose({ code: 1006 }), 0); }
    close() {}
  }
  const { log, hooks } = hooksLog();
  const link = new WsLink({ url: "http://h", hooks, position, env: { ...env, WebSocket: Refused }, wanted: () => [] });
  link.start();
  return new Promise((resolve) => setTimeout(() => {
    assert.deepEqual(log, ["close: websocket closed (1006)"]);
    assert.equal(link.opened, false);
    resolve();
  }, 5));
});

function sseResponse(chunks, { status = 200, type = "text/event-stream" } = {}) {
  const enc = new TextEncoder();
  const body = new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(enc.encode(c));
      controller.close();
    },
  });
  return new Response(body, { status, headers: { "content-type": type } });
}

test("SSE: the key in a header, a cursor from the positions, events across chunks", async () => {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init });
    return sseResponse([
      "retry: 2000\n\nid: v1.x\ndata: {\"type\":\"update\",\"ch\":\"book.A\",",
      "\"seq\":8}\n\ndata: {\"type\":\"heartbeat\",\"ts\":1}\r\n\r\n",
    ]);
  };
  const { log, hooks } = hooksLog();
  const link = new SseLink({
    url: "http://h", token: "key", hooks, position, env: { ...env, fetch },
    wanted: () => ["book.A", "trades.A", "orders"],
  });
  link.start();
  for (let i = 0; i < 20; i++) await flush();
  const url = new URL(calls[0].url);
  assert.equal(url.pathname, "/v1/sse");
  assert.equal(url.searchParams.get("ch"), "book.A,trades.A,orders");
  assert.equal(url.searchParams.get("token"), null); // never in the URL
  assert.equal(calls[0].init.headers.Authorization, "Bearer key");
  const cursor = url.searchParams.get("cursor");
  assert.deepEqual(JSON.parse(Buffer.from(cursor.slice(3), "base64url").toString()), { "book.A": ["e", 7] });
  assert.deepEqual(log.slice(0, 4), ["open", "alive", { type: "update", ch: "book.A", seq: 8 }, { type: "heartbeat", ts: 1 }]);
  assert.equal(log.at(-1), "close: sse: stream ended");
});

test("SSE and polling leave `orders` out until there is a token", async () => {
  const urls = [];
  const fetch = async (url) => { urls.push(new URL(url)); return new Response('{"cursor":"c","messages":[]}', { status: 200 }); };
  const { hooks } = hooksLog();
  const link = new PollLink({ url: "http://h", hooks, position, env: { ...env, fetch }, wanted: () => ["book.A", "orders"] });
  link.start();
  await flush();
  assert.equal(urls[0].searchParams.get("ch"), "book.A");
  link.close();
});

test("SSE refused (404) or not an event stream: closed, never opened", async () => {
  for (const resp of [() => sseResponse([], { status: 404, type: "application/json" }), () => sseResponse([], { type: "text/html" })]) {
    const { log, hooks } = hooksLog();
    const link = new SseLink({ url: "http://h", hooks, position, env: { ...env, fetch: async () => resp() }, wanted: () => ["book.A"] });
    link.start();
    for (let i = 0; i < 10; i++) await flush();
    assert.equal(link.opened, false);
    assert.match(log.at(-1), /^close: sse: /);
  }
});

test("polling: wait and cursor on every request, the next request right after an answer", async () => {
  const urls = [];
  let n = 0;
  const fetch = async (url, init) => {
    urls.push(new URL(url));
    n += 1;
    if (n === 3) return new Response("{}", { status: 404 });
    assert.equal(init.headers.Authorization, "Bearer key");
    return new Response(JSON.stringify({ cursor: "c", messages: [{ type: "update", ch: "book.A", seq: 7 + n }] }), { status: 200 });
  };
  const { log, hooks } = hooksLog();
  const link = new PollLink({ url: "http://h", token: "key", pollWaitS: 5, hooks, position, env: { ...env, fetch }, wanted: () => ["book.A"] });
  link.start();
  for (let i = 0; i < 30; i++) await flush();
  assert.equal(urls.length, 3);
  assert.equal(urls[0].searchParams.get("wait"), "5");
  assert.ok(urls[0].searchParams.get("cursor").startsWith("v1."));
  assert.deepEqual(log.filter((x) => typeof x === "object").map((m) => m.seq), [8, 9]);
  assert.equal(log.at(-1), "close: poll: HTTP 404");
});

test("parseSseData joins data lines and ignores the rest", () => {
  assert.equal(parseSseData("id: 1\ndata: a\ndata:b"), "a\nb");
  assert.equal(parseSseData("retry: 2000"), null);
  assert.equal(parseSseData(": comment"), null);
});
