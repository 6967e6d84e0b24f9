import assert from "node:assert/strict";
import { test } from "node:test";

import { ChannelSync, encodeCursor } from "../../web/lib/sync.js";

test("the cursor is the gateway's v1 format (same text as gateway.wire.cursor.encode)", () => {
  const text = encodeCursor({ "trades.AAPL": { epoch: "k3f9", seq: 57 }, "book.AAPL": { epoch: "k3f9", seq: 124 } });
  assert.equal(text, "v1.eyJib29rLkFBUEwiOlsiazNmOSIsMTI0XSwidHJhZGVzLkFBUEwiOlsiazNmOSIsNTddfQ");
});

test("verdicts: snapshot, in order, duplicate, early, gap, new epoch", () => {
  const s = new ChannelSync("x");
  const m = (type, seq, epoch = "e") => ({ type, epoch, seq });
  assert.equal(s.accept(m("update", 3)), "early");
  assert.equal(s.accept(m("snapshot", 3)), "snapshot");
  assert.equal(s.accept(m("update", 3)), "duplicate");
  assert.equal(s.accept(m("update", 4)), "update");
  assert.equal(s.accept(m("snapshot", 4)), "duplicate"); // not newer than what we have
  assert.equal(s.accept(m("update", 6)), "gap");
  assert.equal(s.accept(m("update", 5, "f")), "epoch");
  assert.deepEqual(s.position(), { epoch: "e", seq: 4 });
  s.resyncing = true;
  assert.equal(s.accept(m("snapshot", 4)), "snapshot"); // the answer to a resync is taken
  s.forget();
  assert.equal(s.position(), null);
  assert.equal(s.accept(m("snapshot", 1, "f")), "snapshot");
});
