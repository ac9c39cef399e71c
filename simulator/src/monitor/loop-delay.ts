import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/** Event-loop delay of one thread over an interval, and over the whole run so far. */
export interface LoopDelay {
  readonly p99Ms: number;
  readonly maxMs: number;
}

const RESOLUTION_MS = 10;
/**
 * The histogram records the time between two runs of a timer due every RESOLUTION_MS: an idle
 * loop reads about 10 ms. What is above that is the delay.
 */
const toMs = (nanoseconds: number): number => (Number.isFinite(nanoseconds) ? Math.max(0, Math.round((nanoseconds / 1e6 - RESOLUTION_MS) * 100) / 100) : 0);

/**
 * How late this thread's event loop runs (perf_hooks.monitorEventLoopDelay): a callback that is
 * due waits this long before the thread gets to it. The simulator's own latency figures include
 * that wait, so it is the first sign that the simulator, not the server, is the bottleneck.
 * One histogram is reset at every `interval()`, the other covers the whole run.
 */
export class LoopDelayMonitor {
  private readonly perInterval: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  private readonly whole: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });

  constructor() {
    this.perInterval.enable();
    this.whole.enable();
  }

  /** The delay since the previous call (or the start); starts a new interval. */
  interval(): LoopDelay {
    const delay = { p99Ms: toMs(this.perInterval.percentile(99)), maxMs: toMs(this.perInterval.max) };
    this.perInterval.reset();
    return delay;
  }

  /** The delay over the whole run so far. */
  run(): LoopDelay {
    return { p99Ms: toMs(this.whole.percentile(99)), maxMs: toMs(this.whole.max) };
  }

  stop(): void {
    this.perInterval.disable();
    this.whole.disable();
  }
}
