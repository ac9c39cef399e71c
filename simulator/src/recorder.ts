import type { LatencySummary, ServerLoad, SimulatorLoad, TimePoint } from './report/types.ts';

/** Histogram edges (ms) shared by every latency: fine at the low end, wide at the top. */
const EDGES = [0, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000];

/** Collects latencies as plain numbers (a few ten thousand per run) and summarises them at the end. */
export class LatencyRecorder {
  private readonly samples: number[] = [];

  add(ms: number): void {
    this.samples.push(ms);
  }

  /** Adds samples recorded elsewhere (a worker thread). */
  addAll(samples: readonly number[]): void {
    for (const sample of samples) this.samples.push(sample);
  }

  /** The raw samples (sent from a worker to the main thread). */
  all(): readonly number[] {
    return this.samples;
  }

  summary(): LatencySummary {
    const sorted = [...this.samples].sort((a, b) => a - b);
    const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
    const buckets = EDGES.map(() => 0);
    for (const sample of sorted) {
      let index = EDGES.length - 1;
      while (index > 0 && sample < (EDGES[index] as number)) index--;
      buckets[index] = (buckets[index] ?? 0) + 1;
    }
    const round = (value: number): number => Math.round(value * 10) / 10;
    return {
      count: sorted.length,
      min: round(sorted[0] ?? 0),
      p50: round(at(0.5)),
      p90: round(at(0.9)),
      p99: round(at(0.99)),
      max: round(sorted.at(-1) ?? 0),
      mean: round(sorted.length ? sorted.reduce((sum, value) => sum + value, 0) / sorted.length : 0),
      histogram: { edges: EDGES, buckets },
    };
  }
}

/** Counters that the per-second series is cut from. */
export interface Counters {
  enrolled: number;
  connected: number;
  connects: number;
  renewed: number;
  refused: number;
  messagesSent: number;
  messagesAcknowledged: number;
  messagesFailed: number;
  errors: number;
  /** Connections a device made to another MQTT endpoint than its previous connection's. */
  failovers: number;
  /** Moves of a device from an unavailable EST endpoint to the next. */
  estMoves: number;
  /** Moves of a device from an unavailable MQTT endpoint to the next. */
  mqttMoves: number;
}

/** Everything one run measures. Workers send their recorders' snapshots to the main thread. */
export class RunRecorder {
  readonly counters: Counters = { enrolled: 0, connected: 0, connects: 0, renewed: 0, refused: 0, messagesSent: 0, messagesAcknowledged: 0, messagesFailed: 0, errors: 0, failovers: 0, estMoves: 0, mqttMoves: 0 };
  readonly errorsByCode = new Map<string, number>();
  readonly enroll = new LatencyRecorder();
  readonly connect = new LatencyRecorder();
  readonly publishAck = new LatencyRecorder();
  readonly series: TimePoint[] = [];
  private last = { ...this.counters };

  error(code: string): void {
    this.counters.errors++;
    this.errorsByCode.set(code, (this.errorsByCode.get(code) ?? 0) + 1);
  }

  /**
   * Appends one point of the time series. `t` and `intervalSeconds` come from the monotonic
   * clock: a sampler that fires late (a saturated event loop) makes a longer interval, and the
   * rates are the counts over that real interval, not per call.
   */
  sample(at: { readonly t: number; readonly intervalSeconds: number; readonly states: Record<string, number>; readonly connectedPerNode: Record<string, number>; readonly simulator: SimulatorLoad; readonly server?: ServerLoad }): TimePoint {
    const seconds = Math.max(0.001, at.intervalSeconds);
    const rate = (key: keyof Counters): number => Math.round(((this.counters[key] - this.last[key]) / seconds) * 10) / 10;
    const point: TimePoint = {
      t: Math.round(at.t * 1000) / 1000,
      intervalSeconds: Math.round(at.intervalSeconds * 1000) / 1000,
      states: at.states,
      connectedPerNode: at.connectedPerNode,
      enrollmentsPerSecond: rate('enrolled'),
      connectsPerSecond: rate('connects'),
      messagesPerSecond: rate('messagesSent'),
      errorsPerSecond: rate('errors'),
      simulator: at.simulator,
      ...(at.server ? { server: at.server } : {}),
    };
    this.last = { ...this.counters };
    this.series.push(point);
    return point;
  }
}
