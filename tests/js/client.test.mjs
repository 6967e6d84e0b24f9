// The client's decisions: fallback order, backoff, probing and upgrading, resume after a gap
// or an epoch change, checksum resyncs and dead links. The server is played by fake links.
import assert from "node:assert/strict";
import { test } from "node:test";

import { bookChecksum } from "../../web/lib/book.js";
import { Client } from "../../web/lib/client.js";
import { FakeClock, fakeLinks, flush } from "./fakes.mjs";

function setup(options = {}) {
  const clock = new FakeClock();
  const { made, links } = fakeLinks();
  const client = new Client({ url: "http://x", links, env: clock.env(), probeMs: 10000, ...options });
  const states = [];
  client.on("state", (s) => states.push(`${s.state}/${s.transport}`));
  client.start();
  const last = () => made[made.length - 1];
  return { clock, made, client, states, last };
}

const tick = (ch, seq, epoch = "e1", extra = {}) => ({ type: "update", ch, epoch, seq, ts: 0, data: { last: String(seq) }, ...extra });
const tickSnap = (ch, seq, epoch = "e1") => ({ type: "snapshot", ch, epoch, seq, ts: 0, data: { last: String(seq) } });

test("a WebSocket that never opens gives way to SSE, then SSE to polling", async () => {
  const { clock, made, client, last } = setup();
  assert.equal(last().kind, "ws");
  last().fail("refused (403)"); // closes before it opened
  await clock.advance(1);
  assert.equal(last().kind, "sse");
  await clock.advance(4000); // SSE does not answer within openTimeoutMs
  assert.equal(made[1].closed, true);
  await clock.advance(1);
  assert.equal(last().kind, "poll");
  last().open();
  assert.equal(client.transport, "poll");
  assert.equal(client.state, "live");
});

test("a link that opened but closed before delivering anything counts as failed", async () => {
  const { clock, client, last } = setup();
  client.subscribe("ticker.A", () => {});
  last().open();
  last().fail();
  await clock.advance(1);
  assert.equal(last().kind, "sse");
});

test("a working link that drops reconnects the same transport after a backed-off delay", async () => {
  const { clock, made, client, last } = setup();
  client.subscribe("ticker.A", () => {});
  await flush();
  last().open();
  last().send(tickSnap("ticker.A", 5));
  last().fail();
  assert.equal(client.state, "reconnecting");
  await clock.advance(499); // random() = 0.5: the nominal 500 ms
  assert.equal(made.length, 1);
  await clock.advance(1);
  assert.equal(last().kind, "ws");
  // it resumes from where it stood
  last().sync();
  assert.deepEqual(last().syncs.at(-1).positions, { "ticker.A": { epoch: "e1", seq: 5 } });
});

test("a link that keeps dropping is given up for the next transport", async () => {
  const { clock, client, last } = setup();
  client.subscribe("ticker.A", () => {});
  let seq = 1;
  for (let i = 0; i < 3; i++) {
    assert.equal(last().kind, "ws");
    last().open();
    last().send(i === 0 ? tickSnap("ticker.A", seq) : tick("ticker.A", ++seq));
    last().fail();
    await clock.advance(2000);
  }
  assert.equal(last().kind, "sse");
});

test("when every transport fails it backs off and starts again from WebSocket", async () => {
  const { clock, made, last } = setup();
  for (const kind of ["ws", "sse", "poll"]) {
    assert.equal(last().kind, kind);
    last().fail();
    await clock.advance(1);
  }
  assert.equal(made.length, 3);
  await clock.advance(500);
  assert.equal(last().kind, "ws");
  last().fail();
  await clock.advance(1);
  last().fail();
  await clock.advance(1);
  last().fail(); // second round: 1 s
  await clock.advance(999);
  assert.equal(made.length, 6);
  await clock.advance(1);
  assert.equal(made.length, 7);
});

test("on a fallback it probes WebSocket and upgrades without a gap or a double", async () => {
  const { clock, made, client, last } = setup();
  const seen = [];
  client.subscribe("ticker.A", (view, info) => seen.push(`${info.type}:${info.seq}`));
  last().fail(); // ws refused
  await clock.advance(1);
  const sse = last();
  sse.open();
  sse.send(tickSnap("ticker.A", 10));
  sse.send(tick("ticker.A", 11));
  await clock.advance(10000); // probeMs 10 s, +-50 %: 10 s at random() = 0.5
  const probe = last();
  assert.equal(probe.kind, "ws");
  assert.equal(made.length, 3);
  probe.sync();
  assert.deepEqual(probe.syncs.at(-1).positions, { "ticker.A": { epoch: "e1", seq: 11 } });
  // both links deliver for a while; the probe's first messages overlap the old link's
  sse.send(tick("ticker.A", 12));
  probe.send(tick("ticker.A", 12));
  probe.open();
  assert.equal(client.transport, "ws");
  assert.equal(sse.closed, true);
  probe.send(tick("ticker.A", 13));
  sse.send(tick("ticker.A", 14)); // the old link is closed: ignored
  probe.send(tick("ticker.A", 14));
  assert.deepEqual(seen, ["snapshot:10", "update:11", "update:12", "update:13", "update:14"]);
  assert.equal(client.counters.gaps, 0);
  assert.equal(client.counters.duplicates, 1);
  assert.equal(client.counters.upgrades, 1);
});

test("a probe that fails leaves the fallback in place and tries again later", async () => {
  const { clock, made, client, last } = setup();
  client.subscribe("ticker.A", () => {});
  last().fail();
  await clock.advance(1);
  last().fail(); // sse refused too
  await clock.advance(1);
  const poll = last();
  poll.open();
  poll.send(tickSnap("ticker.A", 1));
  await clock.advance(10000);
  assert.equal(last().kind, "ws"); // the first probe: the best transport
  last().fail();
  assert.equal(client.transport, "poll");
  assert.equal(poll.closed, false);
  await clock.advance(10000);
  assert.equal(last().kind, "sse"); // then the next better one
  last().open();
  assert.equal(client.transport, "sse");
  assert.equal(poll.closed, true);
  assert.equal(made.length, 5);
});

test("a gap asks for the missed updates with since, then the stream goes on", async () => {
  const { client, last } = setup();
  const seen = [];
  client.subscribe("ticker.A", (view, info) => seen.push(info.seq));
  await flush();
  const ws = last();
  ws.open();
  ws.send(tickSnap("ticker.A", 1));
  ws.send(tick("ticker.A", 2));
  ws.send(tick("ticker.A", 5)); // 3 and 4 are missing
  await flush();
  assert.deepEqual(ws.syncs.at(-1).resync, ["ticker.A"]);
  assert.deepEqual(ws.syncs.at(-1).positions["ticker.A"], { epoch: "e1", seq: 2 });
  ws.send(tick("ticker.A", 6)); // still live while we wait: no second request
  await flush();
  assert.equal(ws.syncs.filter((s) => s.resync.length).length, 1);
  for (const s of [3, 4, 5, 6, 7]) ws.send(tick("ticker.A", s));
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(client.counters.gaps, 1);
  assert.equal(client.counters.resyncs, 1);
});

test("a new epoch resyncs from a snapshot, and the handler is told why", async () => {
  const { client, last } = setup();
  const seen = [];
  client.subscribe("ticker.A", (view, info) => seen.push([info.type, info.epoch, info.seq, info.resync]));
  await flush();
  const ws = last();
  ws.open();
  ws.send(tickSnap("ticker.A", 40));
  ws.send(tick("ticker.A", 1, "e2")); // the publisher restarted without its history
  await flush();
  assert.deepEqual(ws.syncs.at(-1).resync, ["ticker.A"]);
  ws.send(tick("ticker.A", 2, "e2")); // ignored until the snapshot
  ws.send(tickSnap("ticker.A", 2, "e2"));
  ws.send(tick("ticker.A", 3, "e2"));
  assert.deepEqual(seen, [
    ["snapshot", "e1", 40, null],
    ["snapshot", "e2", 2, "epoch"],
    ["update", "e2", 3, null],
  ]);
  assert.equal(client.counters.epochChanges, 1);
  assert.equal(client.counters.gaps, 0);
});

test("resuming after a reconnect: the server's missed updates follow on, nothing twice", async () => {
  const { clock, client, last } = setup();
  const seen = [];
  client.subscribe("ticker.A", (view, info) => seen.push(info.seq));
  await flush();
  let ws = last();
  ws.open();
  ws.send(tickSnap("ticker.A", 1));
  ws.send(tick("ticker.A", 2));
  ws.fail();
  await clock.advance(1000);
  ws = last();
  ws.sync();
  assert.deepEqual(ws.syncs.at(-1).positions["ticker.A"], { epoch: "e1", seq: 2 });
  ws.open();
  ws.send(tick("ticker.A", 2)); // a server may resend what the client has
  ws.send(tick("ticker.A", 3));
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(client.counters.duplicates, 1);
});

test("a checksum mismatch drops the position and resyncs from a snapshot", async () => {
  const { client, last } = setup();
  const seen = [];
  client.subscribe("book.A", (view, info) => seen.push([info.type, info.resync, view.bids.length]));
  await flush();
  const ws = last();
  ws.open();
  const bids = [["10.00", 1]];
  const snap = { type: "snapshot", ch: "book.A", epoch: "e", seq: 1, ts: 0, data: { bids, asks: [], checksum: bookChecksum(bids, []) } };
  ws.send(snap);
  ws.send({ type: "update", ch: "book.A", epoch: "e", seq: 2, ts: 0, data: { bids: [["9.99", 2]], asks: [], checksum: 12345 } });
  await flush();
  assert.equal(client.counters.checksumMismatches, 1);
  assert.deepEqual(ws.syncs.at(-1).resync, ["book.A"]);
  assert.deepEqual(ws.syncs.at(-1).positions, { "book.A": null }); // only a snapshot will do
  ws.send({ ...snap, seq: 3 });
  assert.deepEqual(seen, [["snapshot", null, 1], ["snapshot", "checksum", 1]]);
});

test("an open link that goes silent past the heartbeat timeout is dead", async () => {
  const { clock, client, last } = setup({ heartbeatTimeoutMs: 25000 });
  client.subscribe("ticker.A", () => {});
  const ws = last();
  ws.open();
  ws.send(tickSnap("ticker.A", 1));
  await clock.advance(20000);
  ws.send({ type: "heartbeat", ts: 0 });
  await clock.advance(20000);
  assert.equal(ws.closed, false);
  await clock.advance(5000);
  assert.equal(ws.closed, true);
  assert.equal(client.state, "reconnecting");
});

test("delay is measured from the envelope's ts", async () => {
  const { clock, client, last } = setup();
  client.subscribe("ticker.A", () => {});
  const ws = last();
  ws.open();
  ws.send(tickSnap("ticker.A", 1));
  ws.send(tick("ticker.A", 2, "e1", { ts: (clock.t - 40) * 1000 }));
  assert.equal(client.delayMs, 40);
  assert.equal(client.stats().transport, "ws");
});

test("the token reaches links opened later and the open one", async () => {
  const { client, last } = setup({ token: "k1" });
  assert.equal(last().opts.token, "k1");
  client.auth("k2");
  assert.deepEqual(last().tokens, ["k2"]);
});

test("`start` begins lower down the list; probing still moves it up", async () => {
  const { clock, client, last } = setup({ start: "poll" });
  client.subscribe("ticker.A", () => {});
  assert.equal(last().kind, "poll");
  last().open();
  last().send(tickSnap("ticker.A", 1));
  await clock.advance(10000);
  assert.equal(last().kind, "ws");
});

test("an unasked snapshot replacing a state says so: resync 'server'", async () => {
  const { clock, client, last } = setup();
  const seen = [];
  client.subscribe("ticker.A", (view, info) => seen.push([info.seq, info.resync]));
  last().open();
  last().send(tickSnap("ticker.A", 1));
  last().fail();
  await clock.advance(1000);
  last().open();
  last().send(tickSnap("ticker.A", 900)); // the history did not reach back that far
  assert.deepEqual(seen, [[1, null], [900, "server"]]);
});

test("a resync that is not answered is asked for again after resyncRetryMs", async () => {
  const { clock, client, last } = setup({ resyncRetryMs: 5000 });
  client.subscribe("ticker.A", () => {});
  await flush();
  const ws = last();
  ws.open();
  ws.send(tickSnap("ticker.A", 1));
  ws.send(tick("ticker.A", 3)); // gap: asks
  await flush();
  const asked = () => ws.syncs.filter((s) => s.resync.length).length;
  assert.equal(asked(), 1);
  await clock.advance(4000);
  ws.send(tick("ticker.A", 4)); // still waiting: no second request yet
  await flush();
  assert.equal(asked(), 1);
  await clock.advance(1500);
  ws.send(tick("ticker.A", 5)); // the answer never came (e.g. rate_limited): ask again
  await flush();
  assert.equal(asked(), 2);
  assert.equal(client.counters.gaps, 1);
});
