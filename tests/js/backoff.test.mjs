import assert from "node:assert/strict";
import { test } from "node:test";

import { Backoff, jittered } from "../../web/lib/backoff.js";

test("delays double from 0.5 s up to 30 s", () => {
  const b = new Backoff({ random: () => 0.5 }); // no jitter at the midpoint
  const seen = Array.from({ length: 10 }, () => b.next());
  assert.deepEqual(seen, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
});

test("jitter stays within +-50 % of the nominal delay", () => {
  for (const r of [0, 0.25, 0.999999, 1]) {
    const b = new Backoff({ random: () => r });
    for (let i = 0; i < 12; i++) {
      const nominal = b.nominalMs();
      const d = b.next();
      assert.ok(d >= nominal * 0.5 && d <= nominal * 1.5, `${d} vs ${nominal}`);
    }
  }
  const low = new Backoff({ random: () => 0 });
  assert.equal(low.next(), 250);
  const high = new Backoff({ random: () => 1 });
  for (let i = 0; i < 20; i++) high.next();
  assert.equal(high.next(), 45000);
});

test("with Math.random every delay is in [0.25 s, 45 s]", () => {
  const b = new Backoff();
  for (let i = 0; i < 1000; i++) {
    const d = b.next();
    assert.ok(d >= 250 && d <= 45000);
    if (i % 13 === 0) b.reset();
  }
});

test("reset starts again at the base", () => {
  const b = new Backoff({ random: () => 0.5 });
  b.next(); b.next(); b.next();
  b.reset();
  assert.equal(b.next(), 500);
});

test("jittered scales by [1 - j, 1 + j]", () => {
  assert.equal(jittered(1000, 0.5, () => 0), 500);
  assert.equal(jittered(1000, 0.5, () => 1), 1500);
});
