import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/** When a listener refuses new sockets because the process is already busy (config `listeners`). */
export interface LoadShedLimits {
  /** TLS handshakes in progress at or above which a new socket is refused. */
  readonly shedPendingConnections: number;
  /** Event-loop delay (p99 of the last sample) above which a new socket is refused; 0: not used. */
  readonly shedEventLoopDelayMs: number;
}

/** How often the event-loop delay histogram is read and reset. */
const SAMPLE_MS = 250;

/**
 * The event-loop delay of this process, as one number that follows sustained load: the smaller of
 * the 99th percentiles of the last two {@link SAMPLE_MS} ms samples (perf_hooks.
 * monitorEventLoopDelay). One blocking moment (a start, a GC pause, a noisy neighbour) fills one
 * sample only and sheds nothing; a loop that stays late does. One per process, shared by its
 * listeners. While the loop is saturated the sampling timer is late too: the value then only
 * grows, which is the direction that sheds.
 */
export class EventLoopDelaySampler {
  private readonly histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  private previousMs = 0;
  private latestMs = 0;
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.histogram.enable();
    this.timer = setInterval(() => {
      this.previousMs = this.latestMs;
      this.latestMs = this.histogram.count > 0 ? this.histogram.percentile(99) / 1e6 : 0;
      this.histogram.reset();
    }, SAMPLE_MS);
    this.timer.unref();
  }

  /** The sustained event-loop delay, in ms. */
  get delayMs(): number {
    return Math.min(this.previousMs, this.latestMs);
  }

  close(): void {
    clearInterval(this.timer);
    this.histogram.disable();
  }
}

/**
 * Whether a listener with `pending` TLS handshakes in progress should refuse a new one. Refusing
 * before the handshake costs an accept and a close; admitting a socket the process cannot serve
 * in time costs a full handshake that ends in a client timeout anyway, and delays every device
 * admitted before it (a queue: DESIGN, storm p99 16.8 s).
 */
export function loadShedder(limits: LoadShedLimits, eventLoop?: { readonly delayMs: number }): (pending: number) => boolean {
  return (pending) => pending >= limits.shedPendingConnections || (limits.shedEventLoopDelayMs > 0 && eventLoop !== undefined && eventLoop.delayMs > limits.shedEventLoopDelayMs);
}
