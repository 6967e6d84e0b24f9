// Book application and the protocol's checksum (values computed with Python's zlib.crc32,
// the algorithm docs/protocol.md gives).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Book, bookChecksum, crc32 } from "../../web/lib/book.js";
import { BookModel } from "../../web/lib/views.js";

test("crc32 is the IEEE CRC, unsigned", () => {
  assert.equal(crc32("The quick brown fox jumps over the lazy dog"), 0x414fa339);
  assert.equal(crc32("|"), 2343686810);
});

test("checksum of a small book matches zlib", () => {
  const bids = [["118.45", 19], ["118.42", 69], ["118.38", 35]];
  const asks = [["118.47", 5], ["118.48", 39], ["118.49", 4]];
  assert.equal(bookChecksum(bids, asks), 804882669);
});

const ladder = () => ({
  bids: Array.from({ length: 15 }, (_, i) => [(100 - i * 0.01).toFixed(2), i + 1]),
  asks: Array.from({ length: 15 }, (_, i) => [(100.01 + i * 0.01).toFixed(2), 2 * i + 1]),
});

test("only the top 10 levels of each side count", () => {
  const { bids, asks } = ladder();
  assert.equal(bookChecksum(bids, asks), 884874484);
  const deeper = bids.slice();
  deeper[12] = [deeper[12][0], 999];
  assert.equal(bookChecksum(deeper, asks), 884874484);
});

test("updates change, add and remove levels and keep the sides sorted", () => {
  const book = new Book();
  book.reset({ bids: [["10.00", 5], ["9.99", 3]], asks: [["10.01", 4]] });
  const changed = book.apply({ bids: [["10.00", 0], ["9.98", 7], ["10.005", 1]], asks: [["10.02", 2]] });
  assert.deepEqual(book.bids(), [["10.005", 1], ["9.99", 3], ["9.98", 7]]);
  assert.deepEqual(book.asks(), [["10.01", 4], ["10.02", 2]]);
  assert.deepEqual([...changed.bids].sort(), ["10.00", "10.005", "9.98"]);
  assert.deepEqual([...changed.asks], ["10.02"]);
});

test("the model verifies every snapshot and update against data.checksum", () => {
  const model = new BookModel();
  const { bids, asks } = ladder();
  assert.equal(model.snapshot({ bids, asks, checksum: 884874484 }), true);
  // an update whose checksum matches the result
  const after = new Book();
  after.reset({ bids, asks });
  after.apply({ bids: [["100.00", 0]], asks: [["100.01", 9]] });
  const good = after.checksum();
  assert.equal(model.update({ bids: [["100.00", 0]], asks: [["100.01", 9]], checksum: good }), true);
  assert.equal(model.view().bids[0][0], "99.99");
  assert.equal(model.view().asks[0][1], 9);
  // one that does not: the copy is wrong
  assert.equal(model.update({ bids: [["99.99", 4]], asks: [], checksum: good }), false);
  assert.equal(model.checksumOk, false);
});
