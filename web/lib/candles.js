// Candles of `candles.<SYM>.<res>`: a snapshot holds the last buckets, an update the changed
// bucket(s). A bucket (keyed by its start `t`, ms) is replaced whole by a newer copy; a bucket
// is final once a later one exists.

export const RESOLUTIONS = ["1s", "1m", "5m", "15m", "1h", "1d"];

export const RESOLUTION_MS = { "1s": 1000, "1m": 60000, "5m": 300000, "15m": 900000, "1h": 3600000, "1d": 86400000 };

/**
 * Merge `incoming` candles into `list` (sorted by `t`, oldest first) in place: a bucket
 * already there is replaced, a new one inserted at its place. Keeps at most `max` (the newest).
 * Returns `list`.
 */
export function mergeCandles(list, incoming, max = 5000) {
  for (const c of incoming) {
    const last = list.length ? list[list.length - 1] : null;
    if (last === null || c.t > last.t) {
      list.push(c);
      continue;
    }
    if (c.t === last.t) {
      list[list.length - 1] = c;
      continue;
    }
    let lo = 0;
    let hi = list.length; // binary search for the first bucket with t >= c.t
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].t < c.t) lo = mid + 1;
      else hi = mid;
    }
    if (lo < list.length && list[lo].t === c.t) list[lo] = c;
    else list.splice(lo, 0, c);
  }
  if (list.length > max) list.splice(0, list.length - max);
  return list;
}
