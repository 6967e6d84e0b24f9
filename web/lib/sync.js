// Sequencing of one channel (docs/protocol.md, "The envelope"): where the client stands
// (epoch, seq of the last message applied) and what to do with each arriving envelope.
//
// Every transport, and two transports at once during an upgrade, feed the same ChannelSync,
// so an update that arrives twice is dropped and one that skips ahead asks for a resync.

/** Verdicts of ChannelSync.accept. */
export const APPLY_SNAPSHOT = "snapshot";
export const APPLY_UPDATE = "update";
export const DUPLICATE = "duplicate"; // an update (or an older snapshot) we already have
export const EARLY = "early"; // an update before any snapshot: the snapshot follows
export const GAP = "gap"; // seq skipped: resync with `since`
export const NEW_EPOCH = "epoch"; // the stream's history was lost: resync (a snapshot comes)

export class ChannelSync {
  constructor(channel) {
    this.channel = channel;
    this.epoch = null;
    this.seq = null;
    this.resyncing = false; // a resync was asked for and has not been answered yet
  }

  /** The position to resume from ({epoch, seq}), or null when only a snapshot will do. */
  position() {
    return this.epoch === null ? null : { epoch: this.epoch, seq: this.seq };
  }

  /** Forget the position: the next snapshot is taken whatever its seq (checksum mismatch). */
  forget() {
    this.epoch = null;
    this.seq = null;
  }

  /** The verdict for one snapshot/update envelope; moves the position when it is applied. */
  accept(msg) {
    if (msg.type === "snapshot") {
      if (this.epoch === msg.epoch && msg.seq <= this.seq && !this.resyncing) {
        return DUPLICATE; // e.g. the second link of an upgrade: we are already past it
      }
      this.epoch = msg.epoch;
      this.seq = msg.seq;
      this.resyncing = false;
      return APPLY_SNAPSHOT;
    }
    if (this.epoch === null) return EARLY;
    if (msg.epoch !== this.epoch) return NEW_EPOCH;
    if (msg.seq <= this.seq) return DUPLICATE;
    if (msg.seq !== this.seq + 1) return GAP;
    this.seq = msg.seq;
    this.resyncing = false;
    return APPLY_UPDATE;
  }
}

/**
 * The stream cursor of these positions ({channel: {epoch, seq}}), in the gateway's cursor
 * format v1 (docs/transports.md, "Cursors"): "v1." + base64url(JSON with sorted keys), no
 * padding. The library builds it from what it has applied, so a stream opened on SSE or
 * polling resumes exactly where a WebSocket (or an earlier stream) left off.
 */
export function encodeCursor(positions) {
  const obj = {};
  for (const ch of Object.keys(positions).sort()) {
    const p = positions[ch];
    obj[ch] = [p.epoch, p.seq];
  }
  const bytes = new TextEncoder().encode(JSON.stringify(obj));
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return "v1." + btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
