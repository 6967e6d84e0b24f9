// Test doubles for the client: a manual clock with timers, and links driven by the test.

export class FakeClock {
  constructor() {
    this.t = 1_700_000_000_000;
    this.timers = new Map();
    this.nextId = 1;
  }

  env(extra = {}) {
    return {
      setTimeout: (fn, ms) => {
        const id = this.nextId++;
        this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
        return id;
      },
      clearTimeout: (id) => { this.timers.delete(id); },
      now: () => this.t,
      random: () => 0.5,
      ...extra,
    };
  }

  /** Run every timer due within `ms`, in time order (microtasks flushed after each). */
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      await flush();
      let next = null;
      for (const [id, tm] of this.timers) if (tm.at <= end && (next === null || tm.at < next[1].at)) next = [id, tm];
      if (next === null) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
    await flush();
  }
}

export async function flush() {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** Link classes that record what the client asks and let the test play the server. */
export function fakeLinks() {
  const made = [];
  const make = (kind) => class {
    constructor(opts) {
      this.kind = kind;
      this.opts = opts;
      this.hooks = opts.hooks;
      this.opened = false;
      this.closed = false;
      this.started = false;
      this.syncs = [];
      this.tokens = [];
      made.push(this);
    }
    start() { this.started = true; }
    sync(resync = []) { this.syncs.push({ wanted: this.opts.wanted(), resync: [...resync], positions: this.positions() }); }
    auth(token) { this.tokens.push(token); }
    close() { this.closed = true; }
    positions() {
      const out = {};
      for (const ch of this.opts.wanted()) out[ch] = this.opts.position(ch);
      return out;
    }
    // the test's side
    open() { this.opened = true; this.hooks.open(this); }
    send(msg) { this.hooks.message(this, msg); }
    fail(reason = "gone") { if (!this.closed) { this.closed = true; this.hooks.close(this, reason); } }
  };
  return { made, links: { ws: make("ws"), sse: make("sse"), poll: make("poll") } };
}
