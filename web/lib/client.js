// The quotegate browser client: connect({url, transports, token}) -> Client.
//
// One logical stream over whichever transport works: WebSocket first, then SSE, then long
// polling (docs/client.md). Every channel's envelopes go through a ChannelSync (sync.js), so
// no update is applied twice or skipped, whichever link (or two links, during an upgrade)
// delivers it; handlers get the local state (views.js), never raw envelopes.

import { Backoff, jittered } from "./backoff.js";
import { LINKS } from "./links.js";
import { APPLY_SNAPSHOT, APPLY_UPDATE, ChannelSync, DUPLICATE, GAP, NEW_EPOCH } from "./sync.js";
import { modelFor } from "./views.js";

export const DEFAULTS = Object.freeze({
  transports: ["ws", "sse", "poll"],
  start: null, // the transport to try first (default: the first of `transports`)
  openTimeoutMs: 4000, // a link that has not answered by then has failed
  heartbeatTimeoutMs: 25000, // silence this long on an open link (heartbeats come every 10 s) = dead
  probeMs: 30000, // while on a fallback, try the better transports about this often (+-50 %)
  dropsToFallBack: 3, // a link that works but drops this often ...
  dropWindowMs: 60000, // ... within this window counts as failing: fall back
  pollWaitS: 20,
  resyncRetryMs: 5000, // a resync not answered by then is asked for again
  backoff: { baseMs: 500, maxMs: 30000, jitter: 0.5 },
  delaySmoothing: 0.2,
});

function defaultEnv() {
  const g = globalThis;
  return {
    WebSocket: g.WebSocket,
    fetch: g.fetch ? g.fetch.bind(g) : undefined,
    setTimeout: g.setTimeout.bind(g),
    clearTimeout: g.clearTimeout.bind(g),
    now: () => Date.now(),
    random: Math.random,
  };
}

/** A started Client. It connects on the next microtask, so that subscriptions and listeners
 * added right after connect() see everything from the first state on. */
export function connect(options = {}) {
  const client = new Client(options);
  queueMicrotask(() => client.start());
  return client;
}

export class Client {
  constructor(options = {}) {
    const o = { ...DEFAULTS, ...options };
    this.options = o;
    this.url = o.url || (globalThis.location ? globalThis.location.origin : "http://127.0.0.1:8000");
    this.transports = o.transports.filter((t) => t in LINKS);
    if (!this.transports.length) throw new Error("connect: no known transport in `transports`");
    this.token = o.token || null;
    this.env = { ...defaultEnv(), ...(o.env || {}) };
    this.links = { ...LINKS, ...(o.links || {}) };
    this.backoff = new Backoff({ ...DEFAULTS.backoff, ...(o.backoff || {}), random: this.env.random });

    this.state = "idle"; // connecting | live | reconnecting | closed
    this.transport = null; // "ws" | "sse" | "poll" while live
    this.delayMs = null; // smoothed publish-to-receive delay of updates
    this.lastDelayMs = null;
    this.counters = {
      messages: 0, snapshots: 0, updates: 0, duplicates: 0, gaps: 0, epochChanges: 0,
      checksumMismatches: 0, resyncs: 0, switches: 0, upgrades: 0, reconnects: 0,
    };
    this.channels = new Map(); // channel -> {sync, model, handlers, resyncReason}
    this.listeners = { state: new Set(), error: new Set() };
    this.active = null; // the link carrying the stream
    this.probe = null; // a better link being tried while on a fallback
    // the active (or next) link's place in `transports`; `start` begins lower (a page that
    // knows WebSockets are blocked where it runs), probing still moves it up
    this.index = o.start ? Math.max(0, this.transports.indexOf(o.start)) : 0;
    this.probeIndex = 0;
    this.drops = [];
    this.timers = { retry: null, open: null, probeOpen: null, watchdog: null, probe: null };
    this.syncQueued = false;
    this.resyncQueue = new Set();
  }

  // -- public API ---------------------------------------------------------------------------

  /** Follow `channel`; `handler(view, info)` gets its local state after every change. */
  subscribe(channel, handler) {
    let entry = this.channels.get(channel);
    if (!entry) {
      entry = { sync: new ChannelSync(channel), model: modelFor(channel), handlers: new Set(), resyncReason: null, hadState: false, resyncAt: 0 };
      this.channels.set(channel, entry);
      this._queueSync();
    } else if (entry.sync.position() !== null) {
      handler(entry.model.view(), { channel, type: "snapshot", resync: null, epoch: entry.sync.epoch, seq: entry.sync.seq });
    }
    entry.handlers.add(handler);
    return () => this.unsubscribe(channel, handler);
  }

  /** Stop `handler` (or every handler) of `channel`; the channel is dropped with its last one. */
  unsubscribe(channel, handler) {
    const entry = this.channels.get(channel);
    if (!entry) return;
    if (handler) entry.handlers.delete(handler);
    if (handler && entry.handlers.size) return;
    this.channels.delete(channel);
    this._queueSync();
  }

  /** Listen to "state" ({state, transport, delayMs}) or "error" ({code, message}). */
  on(event, fn) {
    this.listeners[event].add(fn);
    return () => this.listeners[event].delete(fn);
  }

  /** Authenticate (for `orders`) with an API key entered after connect. */
  auth(token) {
    this.token = token;
    for (const link of [this.active, this.probe]) if (link && link.auth) link.auth(token);
  }

  /** A copy of what the page shows about the connection. */
  stats() {
    return { state: this.state, transport: this.transport, delayMs: this.delayMs, counters: { ...this.counters } };
  }

  close() {
    this.state = "closed";
    for (const name of Object.keys(this.timers)) this._clear(name);
    for (const link of [this.active, this.probe]) if (link) link.close();
    this.active = this.probe = null;
    this.transport = null;
    this._emitState();
  }

  start() {
    if (this.state !== "idle") return;
    this._setState("connecting");
    this._openActive();
  }

  // -- links ----------------------------------------------------------------------------------

  _newLink(kind) {
    const Link = this.links[kind];
    const link = new Link({
      url: this.url,
      token: this.token,
      env: this.env,
      pollWaitS: this.options.pollWaitS,
      wanted: () => [...this.channels.keys()],
      position: (ch) => {
        const entry = this.channels.get(ch);
        return entry ? entry.sync.position() : null;
      },
      hooks: {
        open: (l) => this._onOpen(l),
        message: (l, msg) => this._onMessage(l, msg),
        alive: (l) => this._onAlive(l),
        close: (l, reason) => this._onClose(l, reason),
      },
    });
    link.delivered = false;
    return link;
  }

  _openActive() {
    if (this.state === "closed") return;
    const kind = this.transports[this.index];
    const link = this._newLink(kind);
    this.active = link;
    this._timer("open", this.options.openTimeoutMs, () => {
      if (this.active === link && !link.opened) {
        link.close();
        this._onClose(link, `${kind} did not open within ${this.options.openTimeoutMs} ms`);
      }
    });
    link.start();
  }

  _onOpen(link) {
    if (link === this.probe) {
      this._clear("probeOpen");
      this._promote(link);
      return;
    }
    if (link !== this.active) return;
    this._clear("open");
    this.transport = link.kind;
    this._watch();
    this._setState("live");
    this._scheduleProbe();
  }

  /** The probe answered: it carries the stream from now on (it resumed from our positions, so
   * closing the old link loses nothing; what both deliver is dropped once). */
  _promote(link) {
    const old = this.active;
    this.probe = null;
    this.active = link;
    this.index = this.transports.indexOf(link.kind);
    if (old) old.close();
    this._clear("open");
    this.counters.switches += 1;
    this.counters.upgrades += 1;
    this.transport = link.kind;
    this.drops = [];
    this._watch();
    this._setState("live");
    this._scheduleProbe();
  }

  _onAlive(link) {
    if (link === this.active) this._watch();
  }

  _onClose(link, reason) {
    if (this.state === "closed") return;
    if (link === this.probe) {
      this._clear("probeOpen");
      this.probe = null;
      this._scheduleProbe();
      return;
    }
    if (link !== this.active) return;
    this.active = null;
    this.transport = null;
    this._clear("open");
    this._clear("watchdog");
    this._clear("probe");
    if (this.probe) {
      this.probe.close();
      this.probe = null;
      this._clear("probeOpen");
    }
    const now = this.env.now();
    let fallBack = !link.opened || !link.delivered;
    if (!fallBack) {
      this.drops = this.drops.filter((t) => now - t < this.options.dropWindowMs);
      this.drops.push(now);
      fallBack = this.drops.length >= this.options.dropsToFallBack;
    }
    this.lastCloseReason = reason;
    this.counters.reconnects += 1;
    if (fallBack) {
      this.drops = [];
      if (this.index + 1 < this.transports.length) {
        // the next transport right away: a refused WebSocket must not hold up the page
        this.index += 1;
        this.counters.switches += 1;
        this._setState("connecting");
        this._timer("retry", 0, () => this._openActive());
        return;
      }
      this.index = 0; // every transport failed: wait, then start again from the best one
    }
    this._setState("reconnecting");
    this._timer("retry", this.backoff.next(), () => this._openActive());
  }

  _watch() {
    const link = this.active;
    if (!this.channels.size) return this._clear("watchdog"); // an idle link has nothing to say
    this._timer("watchdog", this.options.heartbeatTimeoutMs, () => {
      if (this.active !== link) return;
      link.close();
      this._onClose(link, `no message for ${this.options.heartbeatTimeoutMs} ms`);
    });
  }

  _scheduleProbe() {
    this._clear("probe");
    if (this.index === 0 || this.state === "closed") return;
    this._timer("probe", jittered(this.options.probeMs, 0.5, this.env.random), () => this._probe());
  }

  _probe() {
    if (this.index === 0 || this.probe || !this.active || !this.active.opened) return;
    const target = this.probeIndex % this.index; // the better transports in turn
    this.probeIndex = target + 1;
    const link = this._newLink(this.transports[target]);
    this.probe = link;
    this._timer("probeOpen", this.options.openTimeoutMs, () => {
      if (this.probe === link) {
        link.close();
        this._onClose(link, "probe did not open");
      }
    });
    link.start();
  }

  // -- messages -------------------------------------------------------------------------------

  _onMessage(link, msg) {
    if (link !== this.active && link !== this.probe) return;
    if (link === this.active) this._watch();
    this.counters.messages += 1;
    switch (msg.type) {
      case "snapshot":
      case "update":
        link.delivered = true;
        if (link === this.active) this.backoff.reset();
        this._onEnvelope(msg);
        break;
      case "error":
        this._emit("error", { code: msg.code, message: msg.message });
        break;
      default:
        break; // heartbeat, pong, subscribed, unsubscribed, authed
    }
  }

  _onEnvelope(msg) {
    const entry = this.channels.get(msg.ch);
    if (!entry) return; // a channel we have just left
    const verdict = entry.sync.accept(msg);
    switch (verdict) {
      case APPLY_SNAPSHOT:
        this.counters.snapshots += 1;
        if (!entry.model.snapshot(msg.data)) return this._mismatch(entry);
        // a snapshot replacing a state we had, unasked: a resume past the server's history,
        // or a slow link's conflation
        if (entry.resyncReason === null && entry.hadState) entry.resyncReason = "server";
        entry.hadState = true;
        this._deliver(entry, msg, "snapshot");
        entry.resyncReason = null;
        return;
      case APPLY_UPDATE:
        this.counters.updates += 1;
        this._measure(msg.ts);
        if (!entry.model.update(msg.data)) return this._mismatch(entry);
        this._deliver(entry, msg, "update");
        return;
      case DUPLICATE:
        this.counters.duplicates += 1;
        return;
      case GAP:
        if (!entry.sync.resyncing) this.counters.gaps += 1;
        return this._resync(entry, "gap");
      case NEW_EPOCH:
        if (!entry.sync.resyncing) this.counters.epochChanges += 1;
        return this._resync(entry, "epoch");
      default:
        return; // EARLY: the snapshot follows
    }
  }

  _mismatch(entry) {
    this.counters.checksumMismatches += 1;
    entry.sync.forget(); // our copy is wrong: only a snapshot will do
    entry.sync.resyncing = false;
    this._resync(entry, "checksum");
  }

  _resync(entry, reason) {
    // asked already: the missed updates or a snapshot follow (unless the request got lost,
    // e.g. refused as rate_limited: then ask again after resyncRetryMs)
    const now = this.env.now();
    if (entry.sync.resyncing && now - entry.resyncAt < this.options.resyncRetryMs) return;
    entry.resyncAt = now;
    entry.sync.resyncing = true;
    entry.resyncReason = reason;
    this.counters.resyncs += 1;
    this.resyncQueue.add(entry.sync.channel);
    this._queueSync();
  }

  _deliver(entry, msg, type) {
    const info = { channel: msg.ch, type, resync: type === "snapshot" ? entry.resyncReason : null, epoch: msg.epoch, seq: msg.seq };
    const view = entry.model.view();
    for (const handler of [...entry.handlers]) {
      try { handler(view, info); } catch (err) { console.error(`handler of ${msg.ch}`, err); }
    }
  }

  _measure(tsUs) {
    if (typeof tsUs !== "number") return;
    const ms = this.env.now() - tsUs / 1000;
    this.lastDelayMs = ms;
    const a = this.options.delaySmoothing;
    this.delayMs = this.delayMs === null ? ms : this.delayMs + a * (ms - this.delayMs);
  }

  /** One sync() of the links per turn of the event loop, however many changes it had. */
  _queueSync() {
    if (this.syncQueued) return;
    this.syncQueued = true;
    queueMicrotask(() => {
      this.syncQueued = false;
      const resync = [...this.resyncQueue];
      this.resyncQueue.clear();
      for (const link of [this.active, this.probe]) if (link && !link.closed) link.sync(resync);
      if (this.active && this.active.opened) this._watch(); // channels it must now deliver
    });
  }

  // -- plumbing -------------------------------------------------------------------------------

  _timer(name, ms, fn) {
    this._clear(name);
    this.timers[name] = this.env.setTimeout(() => {
      this.timers[name] = null;
      fn();
    }, ms);
  }

  _clear(name) {
    if (this.timers[name] !== null) this.env.clearTimeout(this.timers[name]);
    this.timers[name] = null;
  }

  _setState(state) {
    if (this.state === "closed") return;
    this.state = state;
    this._emitState();
  }

  _emitState() {
    this._emit("state", { state: this.state, transport: this.transport, delayMs: this.delayMs });
  }

  _emit(event, value) {
    for (const fn of [...this.listeners[event]]) {
      try { fn(value); } catch (err) { console.error(`${event} listener`, err); }
    }
  }
}
