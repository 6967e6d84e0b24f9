// The three transports as "links" of one shape, driven by the Client (client.js):
//
//   link.start()            connect
//   link.sync(resync = [])  bring the server in line with the wanted channels; `resync` names
//                           channels to restart from their position (or from a snapshot)
//   link.close()            end it (no hook is called after this)
//
// and hooks the Client passes in: open(link) once the server answered, message(link, msg) for
// every message, alive(link) for a sign of life that carries no message (a poll answer), and
// close(link, reason) once when the link ends by itself. `wanted()` gives the channels to
// carry and `position(ch)` where the client stands in one ({epoch, seq} or null).
//
// WebSocket: the token goes in an `auth` op, subscriptions carry `since`. SSE (read with
// fetch, so the token travels as an Authorization header, not in the URL) and polling carry
// the channel list and a cursor built from the positions; changing either restarts the
// request.

import { encodeCursor } from "./sync.js";

function joinUrl(base, path) {
  return base.replace(/\/+$/, "") + path;
}

function cursorOf(channels, position) {
  const positions = {};
  for (const ch of channels) {
    const p = position(ch);
    if (p !== null) positions[ch] = p;
  }
  return Object.keys(positions).length ? encodeCursor(positions) : null;
}

function streamQuery(channels, position) {
  const q = new URLSearchParams({ ch: channels.join(",") });
  const cursor = cursorOf(channels, position);
  if (cursor !== null) q.set("cursor", cursor);
  return q;
}

class BaseLink {
  constructor(opts) {
    this.url = opts.url;
    this.token = opts.token || null;
    this.hooks = opts.hooks;
    this.wanted = opts.wanted;
    this.position = opts.position;
    this.env = opts.env; // {WebSocket, fetch, setTimeout, clearTimeout}
    this.opened = false;
    this.closed = false;
  }

  _open() {
    if (this.opened || this.closed) return;
    this.opened = true;
    this.hooks.open(this);
  }

  _end(reason) {
    if (this.closed) return;
    this.closed = true;
    this._teardown();
    this.hooks.close(this, reason);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this._teardown();
  }

  _teardown() {}
}

export class WsLink extends BaseLink {
  constructor(opts) {
    super(opts);
    this.kind = "ws";
    this.ws = null;
    this.subscribed = new Set();
    this.nextId = 1;
  }

  start() {
    const wsUrl = joinUrl(this.url, "/v1/ws").replace(/^http/, "ws");
    let ws;
    try {
      ws = new this.env.WebSocket(wsUrl);
    } catch (err) {
      this.env.setTimeout(() => this._end(`websocket: ${err.message}`), 0);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.closed) return;
      if (this.token) this._send({ op: "auth", token: this.token });
      this.sync();
      this._send({ op: "ping" }); // its pong (after the subscribe's answer) says the link works
    };
    ws.onmessage = (ev) => {
      if (this.closed) return;
      for (const line of String(ev.data).split("\n")) {
        if (!line) continue;
        let msg;
        try { msg = JSON.parse(line); } catch { continue; }
        this._open();
        if (this.closed) return;
        this.hooks.message(this, msg);
        if (this.closed) return;
      }
    };
    ws.onclose = (ev) => this._end(`websocket closed (${ev.code})`);
    ws.onerror = () => {}; // a close follows
  }

  _send(obj) {
    if (this.ws === null || this.ws.readyState !== 1) return;
    obj.id = this.nextId++;
    this.ws.send(JSON.stringify(obj));
  }

  /** Send an `auth` op (a token entered after the link opened). */
  auth(token) {
    this.token = token;
    this._send({ op: "auth", token });
  }

  sync(resync = []) {
    if (this.ws === null || this.ws.readyState !== 1) return; // onopen syncs
    const wanted = new Set(this.wanted());
    const gone = [...this.subscribed].filter((ch) => !wanted.has(ch));
    if (gone.length) {
      this._send({ op: "unsubscribe", ch: gone });
      for (const ch of gone) this.subscribed.delete(ch);
    }
    const again = new Set(resync);
    const chs = [...wanted].filter((ch) => !this.subscribed.has(ch) || again.has(ch));
    if (!chs.length) return;
    const since = {};
    for (const ch of chs) {
      const p = this.position(ch);
      if (p !== null) since[ch] = p;
    }
    // `orders` needs the auth op first; the server answers ops in order
    for (const ch of chs) this.subscribed.add(ch);
    this._send({ op: "subscribe", ch: chs, since });
  }

  _teardown() {
    if (this.ws !== null) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
      try { this.ws.close(1000, "bye"); } catch { /* not open yet */ }
    }
  }
}

/** Common part of SSE and polling: one request at a time, restarted on sync(). */
class RequestLink extends BaseLink {
  constructor(opts) {
    super(opts);
    this.controller = null;
    this.generation = 0;
    // `orders` without a token would make the server refuse the whole request (401): it waits
    // for auth() instead, and the public channels flow meanwhile
    const wanted = this.wanted;
    this.wanted = () => wanted().filter((ch) => ch !== "orders" || this.token);
  }

  headers() {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }

  auth(token) {
    this.token = token;
    this.sync();
  }

  /** Abort the running request and start again with the current channels and positions. */
  sync() {
    if (this.closed) return;
    this._abort();
    this.start();
  }

  _abort() {
    this.generation += 1;
    if (this.controller !== null) this.controller.abort();
    this.controller = null;
  }

  _teardown() { this._abort(); }
}

export class SseLink extends RequestLink {
  constructor(opts) {
    super(opts);
    this.kind = "sse";
  }

  start() {
    const gen = this.generation;
    const channels = this.wanted();
    if (!channels.length) {
      this._open(); // nothing to carry yet; sync() starts the stream
      return;
    }
    this.controller = new AbortController();
    const url = joinUrl(this.url, "/v1/sse") + "?" + streamQuery(channels, this.position);
    this._read(url, gen, this.controller.signal).catch((err) => {
      if (gen === this.generation) this._end(`sse: ${err.message || err}`);
    });
  }

  async _read(url, gen, signal) {
    const resp = await this.env.fetch(url, {
      headers: { Accept: "text/event-stream", ...this.headers() },
      signal,
      cache: "no-store",
    });
    if (gen !== this.generation) return;
    const type = resp.headers.get("content-type") || "";
    if (!resp.ok || !type.startsWith("text/event-stream")) {
      throw new Error(`HTTP ${resp.status}`);
    }
    this._open();
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (gen !== this.generation) return;
      if (done) throw new Error("stream ended");
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = parseSseData(event);
        if (data === null) {
          this.hooks.alive(this); // retry: field, comments
          continue;
        }
        let msg;
        try { msg = JSON.parse(data); } catch { continue; }
        this.hooks.message(this, msg);
        if (gen !== this.generation || this.closed) return;
      }
    }
  }
}

/** The `data:` lines of one SSE event, joined with "\n"; null when it has none. */
export function parseSseData(event) {
  const lines = [];
  for (const line of event.split("\n")) {
    if (line.startsWith("data:")) lines.push(line.slice(line[5] === " " ? 6 : 5));
  }
  return lines.length ? lines.join("\n") : null;
}

export class PollLink extends RequestLink {
  constructor(opts) {
    super(opts);
    this.kind = "poll";
    this.waitS = opts.pollWaitS ?? 20;
    this.timer = null;
  }

  start() {
    const gen = this.generation;
    const channels = this.wanted();
    if (!channels.length) {
      this._open();
      return;
    }
    this.controller = new AbortController();
    const q = streamQuery(channels, this.position);
    q.set("wait", String(this.waitS));
    const url = joinUrl(this.url, "/v1/poll") + "?" + q;
    const controller = this.controller;
    // a long poll answers within `wait`: past wait + 10 s the link is dead
    this.timer = this.env.setTimeout(() => controller.abort(), (this.waitS + 10) * 1000);
    this._poll(url, gen, controller.signal).then(
      () => {
        this.env.clearTimeout(this.timer);
        if (gen === this.generation && !this.closed) this.start();
      },
      (err) => {
        this.env.clearTimeout(this.timer);
        if (gen === this.generation) this._end(`poll: ${err.message || err}`);
      },
    );
  }

  async _poll(url, gen, signal) {
    const resp = await this.env.fetch(url, { headers: this.headers(), signal, cache: "no-store" });
    if (gen !== this.generation) return;
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const body = await resp.json();
    if (gen !== this.generation) return;
    if (!body || !Array.isArray(body.messages)) throw new Error("not a poll answer");
    this._open();
    this.hooks.alive(this);
    for (const msg of body.messages) {
      if (gen !== this.generation || this.closed) return;
      this.hooks.message(this, msg);
    }
  }

  _teardown() {
    this.env.clearTimeout(this.timer);
    super._teardown();
  }
}

export const LINKS = { ws: WsLink, sse: SseLink, poll: PollLink };
