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

/** One point of the per-second time series. */
export interface TimePoint {
  /** Seconds since the run started. */
  readonly t: number;
  /** Devices in each SDK state (`connected`, `enrolling`, ...). */
  readonly states: Readonly<Record<string, number>>;
  /** Devices connected to each MQTT endpoint (`--mqtt` URL). */
  readonly connectedPerNode: Readonly<Record<string, number>>;
  readonly enrollmentsPerSecond: number;
  readonly connectsPerSecond: number;
  readonly messagesPerSecond: number;
  readonly errorsPerSecond: number;
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
}
