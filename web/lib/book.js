// The L2 book a client keeps from `book.<SYM>` snapshots and updates, and its checksum
// (docs/protocol.md, "The book checksum"): CRC32 of "bidP:q,...|askP:q,..." over the top 10
// levels of each side, best first, prices exactly as sent.

export const CHECKSUM_LEVELS = 10;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

const encoder = new TextEncoder();

/** CRC32 (IEEE, unsigned) of the UTF-8 bytes of `text`. */
export function crc32(text) {
  const bytes = encoder.encode(text);
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The protocol's checksum of two level lists ([price, qty], best first). */
export function bookChecksum(bids, asks) {
  const fmt = (levels) => levels.slice(0, CHECKSUM_LEVELS).map(([p, q]) => `${p}:${q}`).join(",");
  return crc32(`${fmt(bids)}|${fmt(asks)}`);
}

const byPriceDesc = (a, b) => Number(b[0]) - Number(a[0]);
const byPriceAsc = (a, b) => Number(a[0]) - Number(b[0]);

/** One symbol's book: price text -> qty per side. */
export class Book {
  constructor() {
    this.bidMap = new Map();
    this.askMap = new Map();
  }

  /** Replace everything with a snapshot's levels. */
  reset(data) {
    this.bidMap = new Map(data.bids.map(([p, q]) => [p, q]));
    this.askMap = new Map(data.asks.map(([p, q]) => [p, q]));
  }

  /** Apply an update's changed levels (qty 0 removes a level); returns the changed prices. */
  apply(data) {
    const changed = { bids: new Set(), asks: new Set() };
    for (const [name, side, levels] of [["bids", this.bidMap, data.bids], ["asks", this.askMap, data.asks]]) {
      for (const [p, q] of levels) {
        if (q === 0) side.delete(p);
        else side.set(p, q);
        changed[name].add(p);
      }
    }
    return changed;
  }

  /** Bids, best (highest) first. */
  bids() { return [...this.bidMap.entries()].sort(byPriceDesc); }

  /** Asks, best (lowest) first. */
  asks() { return [...this.askMap.entries()].sort(byPriceAsc); }

  checksum() { return bookChecksum(this.bids(), this.asks()); }
}
