// quotegate client library: `import { connect } from "/quotegate.js"` (docs/client.md).
export { connect, Client, DEFAULTS } from "./lib/client.js";
export { Book, bookChecksum, crc32 } from "./lib/book.js";
export { mergeCandles, RESOLUTIONS, RESOLUTION_MS } from "./lib/candles.js";
export { Backoff, jittered } from "./lib/backoff.js";
export { ChannelSync, encodeCursor } from "./lib/sync.js";
