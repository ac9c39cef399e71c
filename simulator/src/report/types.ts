/**
 * The simulator's report: what `fleetgate-sim` writes as `report.json` and renders as
 * `report.html`. A stable, versioned shape for load testers' scripts.
 */

/** A latency distribution in milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
  /** Histogram: `buckets[i]` counts samples in [edges[i], edges[i+1]); the last bucket is open. */
  readonly histogram: { readonly edges: readonly number[]; readonly buckets: readonly number[] };
}

/** The simulator's own load over one interval of the series (its main thread and workers). */
export interface SimulatorLoad {
  /** 99th percentile of the event-loop delay over the interval, ms: the worst thread's. */
  readonly loopDelayP99Ms: number;
  /** Longest event-loop delay seen over the interval, ms. */
  readonly loopDelayMaxMs: number;
  /** CPU the simulator process used over the interval, in cores (1 = one core busy the whole interval). */
  readonly cpuCores: number;
  /** Whether the simulator was saturated over the interval (see `bottleneck.thresholds`). */
  readonly saturated: boolean;
}

/** What the server's `/metrics` said over one interval of the series. */
export interface ServerLoad {
  /** `fleetgate_mqtt_connected_devices` at the end of the interval. */
  readonly connectedDevices: number;
  /** Mean EST issuance time over the interval (`fleetgate_enrollment_duration_seconds`), ms; null without issuances. */
  readonly issuanceMeanMs: number | null;
  /** Issuances per second over the interval. */
  readonly issuancesPerSecond: number;
  /** EST refusals and MQTT refusals per second over the interval. */
  readonly refusalsPerSecond: number;
  /** Server process CPU over the interval, in cores (`fleetgate_process_cpu_seconds_total`); null when not exported. */
  readonly cpuCores: number | null;
  /** Server event-loop lag p99 at the end of the interval, ms; null when not exported. */
  readonly loopLagP99Ms: number | null;
}

/** One point of the time series, taken about once a second. */
export interface TimePoint {
  /** Seconds since the run started, by the monotonic clock (not a count of samples). */
  readonly t: number;
  /** Seconds since the previous point (or the start): what the rates are divided by. */
  readonly intervalSeconds: number;
  /** Devices in each SDK state (`connected`, `enrolling`, ...). */
  readonly states: Readonly<Record<string, number>>;
  /** Devices connected to each MQTT endpoint (`--mqtt` URL). */
  readonly connectedPerNode: Readonly<Record<string, number>>;
  readonly enrollmentsPerSecond: number;
  readonly connectsPerSecond: number;
  readonly messagesPerSecond: number;
  readonly errorsPerSecond: number;
  readonly simulator: SimulatorLoad;
  /** Absent when the server's metrics could not be read. */
  readonly server?: ServerLoad;
}

/** Who limited the run: the simulator itself, the server, both, or neither. */
export interface BottleneckReport {
  readonly verdict: 'simulator' | 'server' | 'both' | 'neither' | 'not-the-simulator';
  /** The limits a load was judged against. */
  readonly thresholds: {
    readonly loopDelayP99Ms: number;
    readonly cpuCoresPerThread: number;
    readonly saturatedShare: number;
  };
  readonly simulator: {
    /** Event-loop delay p99 over the whole run (the worst thread), ms. */
    readonly loopDelayP99Ms: number;
    readonly loopDelayMaxMs: number;
    /** Highest CPU of one interval, in cores. */
    readonly peakCpuCores: number;
    /** Threads running devices (the main thread, or the workers). */
    readonly threads: number;
    /** Share of the run's seconds in which the simulator was saturated. */
    readonly saturatedShare: number;
  };
  /** Share of the run's seconds in which the server was saturated; null without its metrics. */
  readonly serverSaturatedShare: number | null;
  /** Warnings for a reader: also printed on stderr during the run and in the summary. */
  readonly warnings: readonly string[];
}

/** The server's side of the run, from its Prometheus `/metrics` (scraped about once a second). */
export interface ServerMetricsReport {
  /** The URLs scraped. */
  readonly urls: readonly string[];
  /** Whether at least two scrapes worked (the figures below need a start and an end). */
  readonly available: boolean;
  /** Why not, when not. */
  readonly problem?: string;
  readonly scrapes: number;
  readonly failedScrapes: number;
  /** EST issuance time the server measured, from its histogram's buckets (interpolated), ms. */
  readonly issuanceMs: { readonly count: number; readonly p50: number | null; readonly p99: number | null; readonly mean: number | null } | null;
  /** Refusals the server counted during the run: EST (by code) and MQTT (by code). */
  readonly refusals: { readonly est: Readonly<Record<string, number>>; readonly mqtt: Readonly<Record<string, number>> } | null;
  /** Most devices the broker held connected at once (of the scrapes). */
  readonly peakConnectedDevices: number | null;
  /** Server CPU over the run per device connected, ms; null when not exported. */
  readonly cpuMsPerDevice: number | null;
}

/** How the run ended: at `--duration` by the monotonic clock, then a bounded stop. */
export interface RunTiming {
  /** When the fleet phase ended, seconds after the start (the deadline, or later when a scenario needed longer). */
  readonly fleetPhaseSeconds: number;
  /** How long stopping the devices took, s. */
  readonly stopSeconds: number;
  /** The bound on the stop phase, s (`--stop-timeout`). */
  readonly stopTimeoutSeconds: number;
  /** Devices still stopping when the bound passed (closed by force). */
  readonly devicesStoppedByForce: number;
  /** Devices never started because the deadline came first. */
  readonly devicesNotStarted: number;
  /** From the start to the end of the stop phase, s. */
  readonly totalSeconds: number;
}

/** Figures of one scenario phase (reconnect storm, revocation sweep). */
export interface ScenarioResult {
  readonly name: string;
  readonly [figure: string]: string | number | boolean | readonly number[];
}

export interface SimulationReport {
  readonly format: 'fleetgate-sim-report/1';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly scenario: string;
  readonly settings: {
    readonly devices: number;
    readonly mix: Readonly<Record<string, number>>;
    readonly ratePerSecond: number;
    readonly durationSeconds: number;
    /** `--est` as given: one URL, or several separated by commas. */
    readonly estUrl: string | null;
    /** `--mqtt` as given. */
    readonly mqttUrl: string;
    readonly estUrls: readonly string[];
    readonly mqttUrls: readonly string[];
    readonly workers: number;
    readonly sourceAddresses: readonly string[];
  };
  readonly machine: { readonly node: string; readonly cpus: number; readonly platform: string };
  readonly totals: {
    readonly devicesStarted: number;
    readonly enrolled: number;
    readonly connected: number;
    readonly renewed: number;
    readonly refused: number;
    readonly messagesSent: number;
    readonly messagesAcknowledged: number;
    readonly messagesFailed: number;
    readonly errors: number;
    /** errors / (devices started + messages sent). */
    readonly errorRate: number;
    /** Seconds from start until every device was connected once (null if some never were). */
    readonly allConnectedAfterSeconds: number | null;
  };
  /** Where the devices are: the nodes of a cluster given as several `--mqtt` URLs (or the one broker). */
  readonly nodes: {
    /** Devices connected to each MQTT endpoint at the end of the run (every `--mqtt` URL, 0 included). */
    readonly devicesPerNode: Readonly<Record<string, number>>;
    /** Connections a device made to another MQTT endpoint than its previous connection's. */
    readonly failovers: number;
    /** Moves of a device from an unavailable endpoint to the next (one per failed node tried). */
    readonly endpointMoves: { readonly est: number; readonly mqtt: number };
  };
  readonly errorsByCode: Readonly<Record<string, number>>;
  readonly latency: {
    readonly enrollMs: LatencySummary;
    readonly connectMs: LatencySummary;
    readonly publishAckMs: LatencySummary;
  };
  readonly cpu: {
    /** Simulator process CPU (user + system) per device brought to its first connection. */
    readonly msPerDevice: number | null;
    readonly userMs: number;
    readonly systemMs: number;
    readonly peakRssMiB: number;
  };
  readonly series: readonly TimePoint[];
  readonly scenarios: readonly ScenarioResult[];
  readonly timing: RunTiming;
  readonly bottleneck: BottleneckReport;
  readonly serverMetrics: ServerMetricsReport;
}
