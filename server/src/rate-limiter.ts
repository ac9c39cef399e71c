/**
 * The default clock, one function for every bucket: a default `() => performance.now()` was a
 * new closure per bucket (56 bytes each, one bucket per MQTT client that publishes).
 */
const monotonicNow = (): number => performance.now();

/** A token bucket: `rate` tokens per second up to `burst`. */
export class TokenBucket {
  private tokens: number;
  private updated: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = monotonicNow,
  ) {
    this.tokens = burst;
    this.updated = now();
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updated) / 1000) * this.rate);
    this.updated = now;
  }

  /** Takes one token if there is one (admission control); returns 0 or the seconds to wait. */
  take(): number {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return (1 - this.tokens) / this.rate;
  }

  /**
   * Reserves one token even when there is none (pacing): the bucket goes into debt and the
   * answer is how long the caller must wait for its turn, so requests queued together are
   * spread out at `rate` instead of all waking at once.
   */
  reserve(): number {
    this.refill();
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : -this.tokens / this.rate;
  }
}

/**
 * Per-key token buckets (one per device identity) with a bounded number of keys, so a flood of
 * distinct identities cannot grow memory without limit: the oldest keys are dropped first.
 */
export class KeyedRateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly perMinute: number,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = monotonicNow,
  ) {}

  /** Takes one token for `key`; returns 0 on success or the seconds to wait. */
  take(key: string): number {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
      bucket = new TokenBucket(this.perMinute / 60, this.perMinute, this.now);
      this.buckets.set(key, bucket);
    }
    return bucket.take();
  }
}
