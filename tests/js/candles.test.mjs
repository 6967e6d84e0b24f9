import assert from "node:assert/strict";
import { test } from "node:test";

import { mergeCandles } from "../../web/lib/candles.js";
import { CandlesModel } from "../../web/lib/views.js";

const c = (t, close, v = 1) => ({ t, o: "1.00", h: close, l: "1.00", c: close, v, n: 1 });

test("a newer copy of a bucket replaces it; new buckets append", () => {
  const list = [c(1000, "1.00"), c(2000, "1.10")];
  mergeCandles(list, [c(2000, "1.20", 5), c(3000, "1.30")]);
  assert.deepEqual(list.map((x) => [x.t, x.c, x.v]), [[1000, "1.00", 1], [2000, "1.20", 5], [3000, "1.30", 1]]);
});

test("an older bucket goes to its place, a known one is replaced, order holds", () => {
  const list = [c(1000, "1.00"), c(3000, "1.30"), c(5000, "1.50")];
  mergeCandles(list, [c(4000, "1.40"), c(1000, "0.90"), c(500, "0.50")]);
  assert.deepEqual(list.map((x) => x.t), [500, 1000, 3000, 4000, 5000]);
  assert.equal(list[1].c, "0.90");
  assert.equal(new Set(list.map((x) => x.t)).size, list.length);
});

test("at most `max` candles, the newest", () => {
  const list = [];
  for (let i = 0; i < 10; i++) mergeCandles(list, [c(i * 1000, "1.00")], 4);
  assert.deepEqual(list.map((x) => x.t), [6000, 7000, 8000, 9000]);
});

test("the model merges updates into the snapshot and reports the changed buckets", () => {
  const m = new CandlesModel();
  m.snapshot({ candles: [c(1000, "1.00"), c(2000, "1.10")] });
  m.update({ candles: [c(2000, "1.15", 3)] });
  assert.equal(m.view().candles.length, 2);
  assert.equal(m.view().candles[1].c, "1.15");
  assert.deepEqual(m.view().changed.map((x) => x.t), [2000]);
});
