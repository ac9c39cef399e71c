import type { Random } from './clock.ts';

/** Reconnect backoff settings. */
export interface BackoffOptions {
  /** First ceiling, in ms. */
  readonly initialMs: number;
  /** Largest ceiling, in ms. */
  readonly maxMs: number;
  readonly multiplier: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 60_000, multiplier: 2 };

/**
 * Capped exponential backoff with full jitter: each delay is uniform in [0, ceiling), the
 * ceiling doubling up to `maxMs`. A whole fleet dropped by one broker restart then comes back
 * spread over the window instead of in lockstep (MQTT.js' fixed interval does the latter).
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly options: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: Random = Math.random,
  ) {}

  /** The next delay, in ms. */
  next(): number {
    const ceiling = Math.min(this.options.maxMs, this.options.initialMs * this.options.multiplier ** this.attempt);
    this.attempt++;
    return Math.floor(this.random() * ceiling);
  }

  /** Attempts since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** Start over (after a connection that stayed up long enough). */
  reset(): void {
    this.attempt = 0;
  }
}
