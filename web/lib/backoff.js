// Exponential backoff with jitter: the n-th consecutive failure waits base * 2^n, capped at
// max, times a random factor in [1 - jitter, 1 + jitter].

export class Backoff {
  constructor({ baseMs = 500, maxMs = 30000, jitter = 0.5, random = Math.random } = {}) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
    this.jitter = jitter;
    this.random = random;
    this.failures = 0;
  }

  /** The nominal delay (no jitter) of the next attempt. */
  nominalMs() {
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.failures, 30));
  }

  /** The delay before the next attempt; counts one more failure. */
  next() {
    const nominal = this.nominalMs();
    this.failures += 1;
    return nominal * (1 - this.jitter + 2 * this.jitter * this.random());
  }

  /** A success: the next failure starts again at the base delay. */
  reset() { this.failures = 0; }
}

/** `ms` scaled by a random factor in [1 - jitter, 1 + jitter]. */
export function jittered(ms, jitter = 0.5, random = Math.random) {
  return ms * (1 - jitter + 2 * jitter * random());
}
