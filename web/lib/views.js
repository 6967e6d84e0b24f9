// The local state a handler sees for each channel kind, built from snapshots and updates.
// Each model has snapshot(data), update(data) (false: the copy is wrong, resync) and view().

import { Book } from "./book.js";
import { mergeCandles } from "./candles.js";

/** The channel's kind: "book", "trades", "ticker", "candles" or "orders". */
export function channelKind(channel) {
  const dot = channel.indexOf(".");
  return dot < 0 ? channel : channel.slice(0, dot);
}

export class BookModel {
  constructor() {
    this.book = new Book();
    this.changed = { bids: new Set(), asks: new Set() };
    this.checksumOk = true;
  }

  snapshot(data) {
    this.book.reset(data);
    this.changed = { bids: new Set(), asks: new Set() };
    return this.verify(data.checksum);
  }

  update(data) {
    this.changed = this.book.apply(data);
    return this.verify(data.checksum);
  }

  verify(expected) {
    this.checksumOk = expected === undefined || this.book.checksum() === expected;
    return this.checksumOk;
  }

  /** {bids, asks} ([price, qty], best first) and the prices this update changed. The sides
   * are sorted when first read (a page that draws once a frame sorts once a frame) and show
   * the book as it is at that moment. */
  view() {
    const book = this.book;
    let bids = null;
    let asks = null;
    return {
      get bids() { return (bids ??= book.bids()); },
      get asks() { return (asks ??= book.asks()); },
      changed: this.changed,
    };
  }
}

export class TradesModel {
  constructor(max = 200) {
    this.max = max;
    this.trades = []; // oldest first
    this.added = [];
  }

  snapshot(data) {
    this.trades = data.trades.slice(-this.max);
    this.added = [];
    return true;
  }

  update(data) {
    this.added = data.trades;
    this.trades.push(...data.trades);
    if (this.trades.length > this.max) this.trades.splice(0, this.trades.length - this.max);
    return true;
  }

  /** {trades (oldest first), added (this update's)} */
  view() { return { trades: this.trades, added: this.added }; }
}

export class TickerModel {
  constructor() { this.ticker = null; }
  snapshot(data) { this.ticker = data; return true; }
  update(data) { this.ticker = data; return true; }
  view() { return { ticker: this.ticker }; }
}

export class CandlesModel {
  constructor(max = 5000) {
    this.max = max;
    this.candles = [];
    this.changed = [];
  }

  snapshot(data) {
    this.candles = mergeCandles([], data.candles, this.max);
    this.changed = [];
    return true;
  }

  update(data) {
    mergeCandles(this.candles, data.candles, this.max);
    this.changed = data.candles;
    return true;
  }

  /** {candles (oldest first, one per bucket), changed (this update's buckets)} */
  view() { return { candles: this.candles, changed: this.changed }; }
}

/** The private `orders` stream: open orders by id, this session's fills, the last event. */
export class OrdersModel {
  constructor(maxFills = 500) {
    this.maxFills = maxFills;
    this.open = new Map();
    this.fills = [];
    this.event = null;
  }

  snapshot(data) {
    this.open = new Map(data.open.map((o) => [o.orderId, { ...o }]));
    this.event = null;
    return true;
  }

  update(ev) {
    this.event = ev;
    const o = this.open.get(ev.orderId);
    switch (ev.event) {
      case "accepted":
        if (ev.type !== "market") {
          this.open.set(ev.orderId, {
            orderId: ev.orderId, clientOrderId: ev.clientOrderId, symbol: ev.symbol,
            side: ev.side, type: ev.type, tif: ev.tif, price: ev.price, qty: ev.qty,
            openQty: ev.qty, filled: 0, status: "new", ts: ev.ts,
          });
        }
        break;
      case "trade":
        this.fills.push(ev);
        if (this.fills.length > this.maxFills) this.fills.splice(0, this.fills.length - this.maxFills);
        if (o) {
          o.filled += ev.qty;
          o.openQty = Math.max(0, o.openQty - ev.qty);
          o.status = o.openQty > 0 ? "partially_filled" : "filled";
        }
        break;
      case "replaced":
        if (o) {
          o.price = ev.price;
          o.openQty = Math.max(0, ev.qty - o.filled);
          o.qty = ev.qty;
        }
        break;
      case "cancelled":
      case "done":
        this.open.delete(ev.orderId);
        break;
      default:
        break; // rejected: nothing opened
    }
    return true;
  }

  /** {open (orders, oldest first), fills (this session's, oldest first), event} */
  view() {
    return { open: [...this.open.values()].sort((a, b) => a.orderId - b.orderId), fills: this.fills, event: this.event };
  }
}

export function modelFor(channel) {
  switch (channelKind(channel)) {
    case "book": return new BookModel();
    case "trades": return new TradesModel();
    case "ticker": return new TickerModel();
    case "candles": return new CandlesModel();
    case "orders": return new OrdersModel();
    default: throw new Error(`unknown channel kind: ${channel}`);
  }
}
