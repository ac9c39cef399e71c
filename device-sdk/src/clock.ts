/** Time and timers, injected so tests can run a 30-day certificate life in milliseconds. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock. Timers are unref'd: a device waiting to renew never keeps a process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(callback, ms) {
    // Node caps timers at 2^31-1 ms (~24.8 days): longer waits are chained.
    const MAX = 2_147_483_647;
    const handle: { timer?: NodeJS.Timeout } = {};
    const arm = (remaining: number): void => {
      handle.timer = setTimeout(() => (remaining > MAX ? arm(remaining - MAX) : callback()), Math.min(remaining, MAX));
      handle.timer.unref();
    };
    arm(Math.max(0, ms));
    return handle;
  },
  clearTimeout(handle) {
    const timer = (handle as { timer?: NodeJS.Timeout } | undefined)?.timer;
    if (timer) clearTimeout(timer);
  },
};

/** A source of randomness in [0, 1), injected for reproducible jitter in tests. */
export type Random = () => number;
