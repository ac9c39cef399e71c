import type { ServerLoad, ServerMetricsReport } from '../report/types.ts';
import { parsePrometheusText, type PromSample } from './prometheus-text.ts';

/** The server's default metrics port (DESIGN.md: `http://127.0.0.1:9464/metrics`). */
export const DEFAULT_METRICS_PORT = 9464;

/** `--metrics` when not given: the metrics URL on each host of `--est`, at the default port. */
export function defaultMetricsUrls(estUrls: readonly string[]): string[] {
  return [...new Set(estUrls.map((url) => `http://${new URL(url).hostname}:${DEFAULT_METRICS_PORT}/metrics`))];
}

/** What one scrape (summed over every URL) says. */
export interface ServerSnapshot {
  /** performance.now() when the answers were in. */
  readonly at: number;
  readonly connectedDevices: number;
  /** EST issuance histogram (all operations): cumulative count per upper bound (s), sum (s), count. */
  readonly issuance: { readonly buckets: ReadonlyMap<number, number>; readonly sum: number; readonly count: number };
  readonly estRefusals: Readonly<Record<string, number>>;
  readonly mqttRefusals: Readonly<Record<string, number>>;
  readonly cpuSeconds: number | null;
  readonly loopLagP99Seconds: number | null;
}

const METRIC = {
  connected: 'fleetgate_mqtt_connected_devices',
  issuance: 'fleetgate_enrollment_duration_seconds',
  enrollments: 'fleetgate_enrollments_total',
  mqttRefusals: 'fleetgate_mqtt_refusals_total',
  cpu: 'fleetgate_process_cpu_seconds_total',
  loopLag: 'fleetgate_nodejs_eventloop_lag_p99_seconds',
} as const;

const add = (record: Record<string, number>, key: string, value: number): void => {
  record[key] = (record[key] ?? 0) + value;
};

/** Sums the samples of several servers (the nodes of a cluster) into one snapshot. */
export function snapshotOf(expositions: readonly (readonly PromSample[])[], at: number): ServerSnapshot {
  let connectedDevices = 0;
  const buckets = new Map<number, number>();
  let sum = 0;
  let count = 0;
  const estRefusals: Record<string, number> = {};
  const mqttRefusals: Record<string, number> = {};
  let cpuSeconds: number | null = null;
  let loopLagP99Seconds: number | null = null;
  for (const samples of expositions) {
    for (const { name, labels, value } of samples) {
      if (name === METRIC.connected) connectedDevices += value;
      else if (name === `${METRIC.issuance}_bucket`) {
        const le = labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(labels.le);
        buckets.set(le, (buckets.get(le) ?? 0) + value);
      } else if (name === `${METRIC.issuance}_sum`) sum += value;
      else if (name === `${METRIC.issuance}_count`) count += value;
      else if (name === METRIC.enrollments && labels.result === 'refused') add(estRefusals, labels.code || 'unknown', value);
      else if (name === METRIC.mqttRefusals) add(mqttRefusals, labels.code || 'unknown', value);
      else if (name === METRIC.cpu) cpuSeconds = (cpuSeconds ?? 0) + value;
      // The worst node's lag: one saturated node is a bottleneck whatever the others do.
      else if (name === METRIC.loopLag) loopLagP99Seconds = Math.max(loopLagP99Seconds ?? 0, value);
    }
  }
  return { at, connectedDevices, issuance: { buckets, sum, count }, estRefusals, mqttRefusals, cpuSeconds, loopLagP99Seconds };
}

const total = (record: Readonly<Record<string, number>>): number => Object.values(record).reduce((sum, value) => sum + value, 0);

/** Per-key growth between two snapshots' counters (keys that did not grow are left out). */
function growth(before: Readonly<Record<string, number>>, after: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([key, value]): [string, number] => [key, value - (before[key] ?? 0)]).filter(([, value]) => value > 0));
}

/** The server's load between two snapshots. */
export function serverLoad(before: ServerSnapshot, after: ServerSnapshot): ServerLoad {
  const seconds = Math.max(0.001, (after.at - before.at) / 1000);
  const issued = after.issuance.count - before.issuance.count;
  return {
    connectedDevices: after.connectedDevices,
    issuanceMeanMs: issued > 0 ? Math.round(((after.issuance.sum - before.issuance.sum) / issued) * 100_000) / 100 : null,
    issuancesPerSecond: Math.round(issued / seconds),
    refusalsPerSecond: Math.round((total(after.estRefusals) - total(before.estRefusals) + total(after.mqttRefusals) - total(before.mqttRefusals)) / seconds),
    cpuCores: after.cpuSeconds !== null && before.cpuSeconds !== null ? Math.round(((after.cpuSeconds - before.cpuSeconds) / seconds) * 100) / 100 : null,
    loopLagP99Ms: after.loopLagP99Seconds === null ? null : Math.round(after.loopLagP99Seconds * 100_000) / 100,
  };
}

/**
 * A quantile of the observations a histogram gained between two snapshots, interpolated
 * linearly inside its bucket as Prometheus' histogram_quantile does; in the open last bucket,
 * the highest finite bound (a lower bound of the truth).
 */
export function histogramQuantile(before: ServerSnapshot['issuance'], after: ServerSnapshot['issuance'], q: number): number | null {
  const bounds = [...after.buckets.keys()].sort((a, b) => a - b);
  const counts = bounds.map((le) => (after.buckets.get(le) ?? 0) - (before.buckets.get(le) ?? 0));
  const observed = counts.at(-1) ?? 0;
  if (observed <= 0) return null;
  const rank = q * observed;
  let lower = 0;
  let below = 0;
  for (const [index, le] of bounds.entries()) {
    const cumulative = counts[index] ?? 0;
    if (cumulative >= rank) {
      if (!Number.isFinite(le)) return lower;
      const inBucket = cumulative - below;
      return inBucket > 0 ? lower + ((le - lower) * (rank - below)) / inBucket : le;
    }
    lower = le;
    below = cumulative;
  }
  return lower;
}

/** Fetches the text of one metrics URL. */
export type MetricsFetch = (url: string, timeoutMs: number) => Promise<string>;

const fetchText: MetricsFetch = async (url, timeoutMs) => {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.text();
};

/**
 * Scrapes the server's Prometheus `/metrics` during a run (one scrape at a time, each bounded by
 * a timeout) and keeps the first, the previous and the latest snapshot. A failed scrape is
 * reported once through `onProblem`; the run goes on without the server's side.
 */
export class ServerMetrics {
  private first: ServerSnapshot | undefined;
  private latest: ServerSnapshot | undefined;
  private usedForInterval: ServerSnapshot | undefined;
  private lastLoad: ServerLoad | undefined;
  private inFlight: Promise<void> | undefined;
  private problem: string | undefined;
  private scrapes = 0;
  private failedScrapes = 0;
  private peakConnected = 0;
  /** The reading before the fleet started failed: growth from a later reading would leave out what came before it. */
  private missedBaseline = false;
  /** The reading at the end of the fleet's phase failed: the latest one is from the middle of the run. */
  private missedClosing = false;

  constructor(
    readonly urls: readonly string[],
    private readonly onProblem: (message: string) => void,
    private readonly options: { readonly timeoutMs?: number; readonly fetch?: MetricsFetch; readonly now?: () => number } = {},
  ) {}

  /**
   * The reading every figure of the run grows from, taken before the fleet starts; tried up to
   * `attempts` times (a loaded server can miss the first timeout). Seen in CI: a baseline that
   * failed left the first reading to the middle of the run, and the report counted 2 of 10
   * issuances. Without one, the report says so instead of giving such figures.
   */
  async baseline(attempts = 3): Promise<void> {
    this.missedBaseline = !(await this.readAfresh(attempts));
  }

  /**
   * The reading every figure of the run grows to, taken when the fleet's phase ends: it waits for
   * a scrape still running (the sampler's, which may be from before a stall and time out) and
   * then reads afresh, up to `attempts` times, within twice the scrape timeout in all (the run
   * waits for it). Seen in CI: the end of a run found the sampler's scrape in flight, took no
   * reading of its own, and the report counted 4 of 10 issuances from a reading taken while the
   * fleet was still enrolling. Without one, the report says so.
   */
  async closing(attempts = 3): Promise<void> {
    let given = false;
    let timer: NodeJS.Timeout | undefined;
    const budget = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), 2 * this.timeoutMs);
    });
    try {
      const read = Promise.resolve(this.inFlight).then(() => this.readAfresh(attempts, () => given));
      this.missedClosing = !(await Promise.race([read, budget]));
    } finally {
      given = true;
      clearTimeout(timer);
    }
  }

  /** Scrapes until a reading newer than the latest comes in, up to `attempts` times or until `given`; whether one did. */
  private async readAfresh(attempts: number, given: () => boolean = () => false): Promise<boolean> {
    const before = this.latest;
    for (let attempt = 0; attempt < attempts && !given() && this.latest === before; attempt++) await this.scrape();
    return this.latest !== before;
  }

  /** How long one scrape may take. */
  private get timeoutMs(): number {
    return this.options.timeoutMs ?? 2000;
  }

  /** Starts one scrape unless one is still running; resolves when it is done (never rejects). */
  scrape(): Promise<void> {
    if (this.inFlight) return Promise.resolve();
    this.inFlight = this.read().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async read(): Promise<void> {
    const fetcher = this.options.fetch ?? fetchText;
    try {
      const texts = await Promise.all(this.urls.map((url) => fetcher(url, this.timeoutMs)));
      const snapshot = snapshotOf(texts.map(parsePrometheusText), (this.options.now ?? performance.now.bind(performance))());
      this.scrapes++;
      this.first ??= snapshot;
      this.latest = snapshot;
      this.peakConnected = Math.max(this.peakConnected, snapshot.connectedDevices);
    } catch (error) {
      this.failedScrapes++;
      if (this.problem === undefined) {
        this.problem = `${this.urls.join(', ')}: ${error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error)}`;
        this.onProblem(`server metrics: cannot read ${this.problem}; the run goes on (reads are tried again every second; --no-metrics to skip)`);
      }
    }
  }

  /**
   * The server's load between the last two snapshots taken for the series; the previous figure
   * again when no scrape finished since the last call (a slow server answers late), undefined
   * before there are two.
   */
  interval(): ServerLoad | undefined {
    const latest = this.latest;
    if (latest && this.usedForInterval && latest !== this.usedForInterval) this.lastLoad = serverLoad(this.usedForInterval, latest);
    if (latest) this.usedForInterval = latest;
    return this.lastLoad;
  }

  /** The server's side of the whole run. */
  report(devicesConnected: number): ServerMetricsReport {
    const { first, latest } = this;
    const available = !this.missedBaseline && !this.missedClosing && first !== undefined && latest !== undefined && latest !== first;
    if (!available) {
      const cause = this.problem ? ` (${this.problem})` : '';
      const problem = this.missedBaseline
        ? `no reading before the fleet started${cause}: the server's figures would leave out the start of the run`
        : this.missedClosing
          ? `no reading when the fleet's phase ended${cause}: the server's figures would leave out the end of the run`
          : (this.problem ?? 'fewer than two scrapes during the run');
      return { urls: this.urls, available: false, problem, scrapes: this.scrapes, failedScrapes: this.failedScrapes, issuanceMs: null, refusals: null, peakConnectedDevices: first ? this.peakConnected : null, cpuMsPerDevice: null };
    }
    const count = latest.issuance.count - first.issuance.count;
    const ms = (seconds: number | null): number | null => (seconds === null ? null : Math.round(seconds * 100_000) / 100);
    const cpu = latest.cpuSeconds !== null && first.cpuSeconds !== null ? latest.cpuSeconds - first.cpuSeconds : null;
    return {
      urls: this.urls,
      available: true,
      ...(this.problem ? { problem: this.problem } : {}),
      scrapes: this.scrapes,
      failedScrapes: this.failedScrapes,
      issuanceMs: {
        count,
        p50: ms(histogramQuantile(first.issuance, latest.issuance, 0.5)),
        p99: ms(histogramQuantile(first.issuance, latest.issuance, 0.99)),
        mean: count > 0 ? ms((latest.issuance.sum - first.issuance.sum) / count) : null,
      },
      refusals: { est: growth(first.estRefusals, latest.estRefusals), mqtt: growth(first.mqttRefusals, latest.mqttRefusals) },
      peakConnectedDevices: this.peakConnected,
      cpuMsPerDevice: cpu !== null && devicesConnected > 0 ? Math.round((cpu * 1000 * 100) / devicesConnected) / 100 : null,
    };
  }
}
