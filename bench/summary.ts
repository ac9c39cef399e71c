import { SETTLE_MS, type EnrollmentRunResult } from './enrollment.ts';
import type { FloorResult } from './openssl-floor.ts';
import { describePinning, type Pinning } from './pinning.ts';
import { median } from './stats.ts';

/** Targets of the enrollment issue (DESIGN.md, "Performance targets"). */
export const TARGETS = {
  serverCpuMsPerEnrollment: 2.0,
  serverCpuMsPerEnrollmentStretch: 1.5,
  enrollmentsPerSecond: 300,
  /** fleetgate's CPU per enrollment above the bare Node https floor's per request (issue 14). */
  aboveNodeFloorMs: 0.8,
  /** Enrollments/s on PostgreSQL over LevelDB's, measured in the same repetition. */
  postgresThroughputRatio: 0.8,
} as const;

/** One repetition: the openssl floor and the enrollment run measured right after it. */
export interface BenchRun {
  readonly openssl: FloorResult;
  /** The LevelDB run. */
  readonly enrollment: EnrollmentRunResult;
  /** The PostgreSQL run of the same repetition (`--registry postgres`). */
  readonly postgres?: EnrollmentRunResult | undefined;
}

/**
 * Above this much CPU used by others during the timed phases (median), the machine was too busy
 * for the throughput and latency figures to mean much; CPU per enrollment suffers less.
 */
export const NOISY_CORES = 0.2;

/** A figure over all runs: the median, and the spread so one can tell noise from a change. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/** The headline figures of a benchmark: medians over the runs. */
export interface Summary {
  readonly runs: number;
  readonly enrollmentsPerSecond: Spread;
  readonly serverCpuMsPerEnrollment: Spread;
  readonly serverCpuMsPerEnrollmentWithSettle: Spread;
  readonly latencyP50Ms: Spread;
  readonly latencyP99Ms: Spread;
  readonly serverRssMiB: Spread;
  readonly serverCpuUtilisation: Spread;
  readonly loadCpuMsPerEnrollment: Spread;
  readonly failedEnrollments: number;
  readonly tlsVersions: readonly string[];
  /** openssl s_server CPU per bare mTLS handshake (build to the root, as Node does). */
  readonly opensslFloorMs: Spread;
  /** Handshakes s_time made, over all runs. */
  readonly opensslHandshakes: number;
  /** Server CPU per enrollment / openssl floor per handshake, paired within each run. */
  readonly ratioToOpensslFloor: Spread;
  /** TLS version and cipher suite of the openssl floor (`TLSv1.3 TLS_AES_256_GCM_SHA384`). */
  readonly opensslProtocols: readonly string[];
  /** Bare Node https server CPU per request under the same load. */
  readonly nodeFloorMs: Spread | undefined;
  /** fleetgate CPU minus the Node floor, per run: the application's own cost. */
  readonly aboveNodeFloorMs: Spread | undefined;
  /** The same for the main threads alone: the rest of the difference is GC helpers and the thread pool. */
  readonly aboveNodeFloorMainThreadMs: Spread | undefined;
  /** Server CPU per enrollment of fleetgate's main thread, and of the floor's. */
  readonly mainThreadMs: Spread;
  readonly nodeFloorMainThreadMs: Spread | undefined;
  /** Requests the Node floor server did not answer with 200 (should be 0). */
  readonly nodeFloorFailed: number;
  readonly otherCores: Spread;
  readonly stealCores: Spread;
  readonly loadAverage: Spread;
  /** LevelDB against PostgreSQL, when the runs measured both. */
  readonly postgres: PostgresComparison | undefined;
}

/** One registry engine's figures in the comparison (medians over the repetitions). */
export interface EngineFigures {
  readonly enrollmentsPerSecond: Spread;
  /** fleetgate plus its database's processes. */
  readonly serverCpuMsPerEnrollment: Spread;
  readonly serverCpuMsPerEnrollmentWithSettle: Spread;
  readonly fleetgateCpuMsPerEnrollment: Spread;
  readonly databaseCpuMsPerEnrollment: Spread | undefined;
  readonly serverCpuUtilisation: Spread;
  /** Server CPU per enrollment minus the repetition's bare Node https floor. */
  readonly aboveNodeFloorMs: Spread | undefined;
  readonly latencyP50Ms: Spread;
  readonly latencyP99Ms: Spread;
  readonly failedEnrollments: number;
  readonly enrollmentsPerRound: Spread;
  readonly msPerRound: Spread;
  readonly otherCores: Spread;
  /** 1-minute load average when each run started. */
  readonly loadAverage: Spread;
}

/** PostgreSQL against LevelDB, each ratio paired within a repetition. */
export interface PostgresComparison {
  readonly leveldb: EngineFigures;
  readonly postgres: EngineFigures;
  /** PostgreSQL enrollments/s over LevelDB's. */
  readonly throughputRatio: Spread;
  /** PostgreSQL server CPU per enrollment (fleetgate + database) over LevelDB's. */
  readonly serverCpuRatio: Spread;
  readonly transactionsPerEnrollment: Spread;
  readonly walSyncsPerEnrollment: Spread;
  readonly walBytesPerEnrollment: Spread;
  readonly databaseProcesses: Spread;
  /** Settings as the servers reported them (each distinct value once). */
  readonly settings: Record<string, string>;
}

function spread(values: readonly number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

function spreadOrUndefined(values: readonly number[]): Spread | undefined {
  return values.length > 0 ? spread(values) : undefined;
}

function engineFigures(pairs: readonly { run: EnrollmentRunResult; floor: number | undefined }[]): EngineFigures {
  const of = (pick: (run: EnrollmentRunResult) => number): Spread => spread(pairs.map(({ run }) => pick(run)));
  const databases = pairs.flatMap(({ run }) => (run.database ? [run.database] : []));
  const floors = pairs.flatMap(({ run, floor }) => (floor === undefined ? [] : [run.totalServerCpuMsPerEnrollment - floor]));
  return {
    enrollmentsPerSecond: of((run) => run.enrollmentsPerSecond),
    serverCpuMsPerEnrollment: of((run) => run.totalServerCpuMsPerEnrollment),
    serverCpuMsPerEnrollmentWithSettle: of((run) => run.totalServerCpuMsPerEnrollmentWithSettle),
    fleetgateCpuMsPerEnrollment: of((run) => run.serverCpuMsPerEnrollment),
    databaseCpuMsPerEnrollment: spreadOrUndefined(databases.map((database) => database.cpuMsPerEnrollment)),
    serverCpuUtilisation: of((run) => run.totalServerCpuUtilisation),
    aboveNodeFloorMs: spreadOrUndefined(floors),
    latencyP50Ms: of((run) => run.latencyMs.p50),
    latencyP99Ms: of((run) => run.latencyMs.p99),
    failedEnrollments: pairs.reduce((sum, { run }) => sum + (run.enrollments - run.succeeded), 0),
    enrollmentsPerRound: of((run) => run.rounds.enrollmentsPerRound),
    msPerRound: of((run) => run.rounds.msPerRound),
    otherCores: of((run) => run.interference.otherCores),
    loadAverage: of((run) => run.interference.loadAverage),
  };
}

/** LevelDB against PostgreSQL over the repetitions that measured both. */
function comparePostgres(benchRuns: readonly BenchRun[]): PostgresComparison | undefined {
  const paired = benchRuns.flatMap((run) => (run.postgres ? [{ leveldb: run.enrollment, postgres: run.postgres }] : []));
  if (paired.length === 0) return undefined;
  // The repetition's Node floor (replayed after its LevelDB run) serves both engines: same load.
  const floorOf = (leveldb: EnrollmentRunResult): number | undefined => leveldb.nodeFloor?.cpuMsPerRequest;
  const databases = paired.flatMap(({ postgres }) => (postgres.database ? [{ run: postgres, database: postgres.database }] : []));
  const perEnrollment = (pick: (activity: NonNullable<EnrollmentRunResult['database']>['activity']) => number): Spread =>
    spread(databases.map(({ run, database }) => pick(database.activity) / run.enrollments));
  const settings: Record<string, string> = {};
  for (const { database } of databases) {
    for (const [name, value] of Object.entries(database.settings)) {
      const seen = settings[name]?.split(', ') ?? [];
      if (!seen.includes(value)) settings[name] = [...seen, value].join(', ');
    }
  }
  return {
    leveldb: engineFigures(paired.map(({ leveldb }) => ({ run: leveldb, floor: floorOf(leveldb) }))),
    postgres: engineFigures(paired.map(({ leveldb, postgres }) => ({ run: postgres, floor: floorOf(leveldb) }))),
    throughputRatio: spread(paired.map(({ leveldb, postgres }) => postgres.enrollmentsPerSecond / leveldb.enrollmentsPerSecond)),
    serverCpuRatio: spread(paired.map(({ leveldb, postgres }) => postgres.totalServerCpuMsPerEnrollment / leveldb.totalServerCpuMsPerEnrollment)),
    transactionsPerEnrollment: perEnrollment((activity) => activity.commits),
    walSyncsPerEnrollment: perEnrollment((activity) => activity.walSyncs),
    walBytesPerEnrollment: perEnrollment((activity) => activity.walBytes),
    databaseProcesses: spread(databases.map(({ database }) => database.processes)),
    settings,
  };
}

/** Reduces the runs to the headline figures. */
export function summarize(benchRuns: readonly BenchRun[]): Summary {
  const runs = benchRuns.map((run) => run.enrollment);
  const of = (pick: (run: EnrollmentRunResult) => number): Spread => spread(runs.map(pick));
  const withNodeFloor = runs.flatMap((run) => (run.nodeFloor ? [{ run, floor: run.nodeFloor }] : []));
  return {
    runs: runs.length,
    enrollmentsPerSecond: of((run) => run.enrollmentsPerSecond),
    serverCpuMsPerEnrollment: of((run) => run.serverCpuMsPerEnrollment),
    serverCpuMsPerEnrollmentWithSettle: of((run) => run.serverCpuMsPerEnrollmentWithSettle),
    latencyP50Ms: of((run) => run.latencyMs.p50),
    latencyP99Ms: of((run) => run.latencyMs.p99),
    serverRssMiB: of((run) => run.serverRssKiB / 1024),
    serverCpuUtilisation: of((run) => run.serverCpuUtilisation),
    loadCpuMsPerEnrollment: of((run) => run.loadCpuMsPerEnrollment),
    failedEnrollments: runs.reduce((sum, run) => sum + (run.enrollments - run.succeeded), 0),
    tlsVersions: [...new Set(runs.flatMap((run) => Object.keys(run.tlsVersions)))],
    opensslFloorMs: spread(benchRuns.map((run) => run.openssl.cpuMsPerHandshake)),
    opensslHandshakes: benchRuns.reduce((sum, run) => sum + run.openssl.connections, 0),
    ratioToOpensslFloor: spread(benchRuns.map((run) => run.enrollment.serverCpuMsPerEnrollment / run.openssl.cpuMsPerHandshake)),
    opensslProtocols: [...new Set(benchRuns.map((run) => `${run.openssl.protocol} ${run.openssl.cipher}`))],
    nodeFloorMs: spreadOrUndefined(withNodeFloor.map(({ floor }) => floor.cpuMsPerRequest)),
    aboveNodeFloorMs: spreadOrUndefined(withNodeFloor.map(({ run, floor }) => run.serverCpuMsPerEnrollment - floor.cpuMsPerRequest)),
    aboveNodeFloorMainThreadMs: spreadOrUndefined(withNodeFloor.map(({ run, floor }) => run.serverCpu.mainThreadMs / run.enrollments - floor.mainThreadCpuMsPerRequest)),
    mainThreadMs: of((run) => run.serverCpu.mainThreadMs / run.enrollments),
    nodeFloorMainThreadMs: spreadOrUndefined(withNodeFloor.map(({ floor }) => floor.mainThreadCpuMsPerRequest)),
    nodeFloorFailed: withNodeFloor.reduce((sum, { floor }) => sum + floor.failed, 0),
    otherCores: of((run) => run.interference.otherCores),
    stealCores: of((run) => run.interference.stealCores),
    loadAverage: of((run) => run.interference.loadAverage),
    postgres: comparePostgres(benchRuns),
  };
}

function formatSpread(value: Spread, digits: number, unit = ''): string {
  const main = `${value.median.toFixed(digits)}${unit}`;
  if (value.min.toFixed(digits) === value.max.toFixed(digits)) return main;
  return `${main} (${value.min.toFixed(digits)}-${value.max.toFixed(digits)})`;
}

const yesNo = (ok: boolean): string => (ok ? 'yes' : 'NO');

/**
 * Said instead of yes or NO for a CPU target when the server ran under `--cpu-prof`. The profiler
 * costs in proportion to the JavaScript a server runs, so it inflates fleetgate (5.7-6.1 ms per
 * enrollment in two runs of 2026-12-03) far more than the bare floor, and with it fleetgate's
 * figure above the floor: 2.5-2.7 ms, against 1.6-2.1 ms without the profiler the same day.
 */
const PROFILED = 'profiled: not comparable';

/** Rows of the result table: metric, value, target, ok?. Values are medians (min-max over runs). */
export function tableRows(summary: Summary, pinning: Pinning, profiled = false): string[][] {
  const cpu = summary.serverCpuMsPerEnrollment.median;
  const cpuOk = profiled ? PROFILED : cpu <= TARGETS.serverCpuMsPerEnrollmentStretch ? 'yes (stretch too)' : yesNo(cpu <= TARGETS.serverCpuMsPerEnrollment);
  const rows: string[][] = [
    ['enrollments/s (end to end)', formatSpread(summary.enrollmentsPerSecond, 0), `>= ${TARGETS.enrollmentsPerSecond}`, profiled ? PROFILED : yesNo(summary.enrollmentsPerSecond.median >= TARGETS.enrollmentsPerSecond)],
    [
      'server CPU per enrollment',
      formatSpread(summary.serverCpuMsPerEnrollment, 2, ' ms'),
      `<= ${TARGETS.serverCpuMsPerEnrollment.toFixed(1)} ms (stretch ${TARGETS.serverCpuMsPerEnrollmentStretch.toFixed(1)})`,
      cpuOk,
    ],
    ['  of which the main thread', formatSpread(summary.mainThreadMs, 2, ' ms'), '-', '-'],
    [`  incl. ${SETTLE_MS / 1000} s settle after the phase`, formatSpread(summary.serverCpuMsPerEnrollmentWithSettle, 2, ' ms'), '-', '-'],
    ['latency p50', formatSpread(summary.latencyP50Ms, 1, ' ms'), '-', '-'],
    ['latency p99', formatSpread(summary.latencyP99Ms, 1, ' ms'), '-', '-'],
    ['failed enrollments (all runs)', String(summary.failedEnrollments), '0', yesNo(summary.failedEnrollments === 0)],
    ['server RSS after run', formatSpread(summary.serverRssMiB, 1, ' MiB'), '-', '-'],
    ['server CPU utilisation (timed phase)', formatSpread(summary.serverCpuUtilisation, 2), '-', '-'],
    ['load generator CPU per enrollment', formatSpread(summary.loadCpuMsPerEnrollment, 2, ' ms'), '-', '-'],
  ];
  rows.push(['openssl s_server CPU per mTLS handshake', `${formatSpread(summary.opensslFloorMs, 2, ' ms')}, ${summary.opensslHandshakes} handshakes`, '-', '-']);
  rows.push(['ratio fleetgate / openssl handshake', formatSpread(summary.ratioToOpensslFloor, 2, 'x'), '-', '-']);
  if (summary.nodeFloorMs && summary.aboveNodeFloorMs) {
    const failed = summary.nodeFloorFailed > 0 ? `, ${summary.nodeFloorFailed} requests FAILED` : '';
    rows.push(['bare Node https server CPU per request', `${formatSpread(summary.nodeFloorMs, 2, ' ms')}${failed}`, '-', '-']);
    if (summary.nodeFloorMainThreadMs) rows.push(['  of which the main thread', formatSpread(summary.nodeFloorMainThreadMs, 2, ' ms'), '-', '-']);
    const above = summary.aboveNodeFloorMs.median;
    rows.push(['fleetgate CPU above the Node floor', formatSpread(summary.aboveNodeFloorMs, 2, ' ms'), `<= ${TARGETS.aboveNodeFloorMs.toFixed(1)} ms`, profiled ? PROFILED : yesNo(above <= TARGETS.aboveNodeFloorMs)]);
    if (summary.aboveNodeFloorMainThreadMs) rows.push(['  of which the main thread', formatSpread(summary.aboveNodeFloorMainThreadMs, 2, ' ms'), '-', '-']);
  }
  rows.push([
    'TLS version (fleetgate clients)',
    summary.tlsVersions.join(', '),
    'TLSv1.3',
    yesNo(summary.tlsVersions.every((protocol) => protocol.startsWith('TLSv1.3 '))),
  ]);
  const opensslTls = summary.opensslProtocols.join(', ');
  rows.push(['TLS version (openssl floor)', opensslTls, 'TLSv1.3', yesNo(summary.opensslProtocols.every((protocol) => protocol.startsWith('TLSv1.3 ')))]);
  rows.push(['CPU pinning', describePinning(pinning), '-', '-']);
  rows.push([
    'other CPU use in timed phase (noise)',
    `${formatSpread(summary.otherCores, 2, ' cores')}, steal ${formatSpread(summary.stealCores, 2)}, load avg ${formatSpread(summary.loadAverage, 1)}`,
    `< ${NOISY_CORES.toFixed(2)} cores`,
    summary.otherCores.median < NOISY_CORES ? 'yes' : 'NO: figures disturbed',
  ]);
  return rows;
}

/** The PostgreSQL settings the comparison table names, in this order (all of them are in the JSON). */
const DURABILITY_SETTINGS = ['fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes', 'commit_delay'] as const;
const SIZE_SETTINGS = ['shared_buffers', 'max_wal_size', 'checkpoint_timeout'] as const;

/**
 * Rows of the LevelDB / PostgreSQL table: metric, LevelDB, PostgreSQL, ratio, target, ok?.
 * Values are medians (min-max over repetitions); ratios are paired within each repetition.
 */
export function postgresTableRows(comparison: PostgresComparison): string[][] {
  const { leveldb, postgres } = comparison;
  const both = (pick: (figures: EngineFigures) => Spread | undefined, digits: number, unit = ''): [string, string] => {
    const format = (figures: EngineFigures): string => {
      const value = pick(figures);
      return value ? formatSpread(value, digits, unit) : '-';
    };
    return [format(leveldb), format(postgres)];
  };
  const percent = (value: Spread): Spread => ({ median: value.median * 100, min: value.min * 100, max: value.max * 100 });
  const ratioOk = comparison.throughputRatio.median >= TARGETS.postgresThroughputRatio;
  const failed = leveldb.failedEnrollments + postgres.failedEnrollments;
  const settings = comparison.settings;
  const rows: string[][] = [
    ['enrollments/s (end to end)', ...both((f) => f.enrollmentsPerSecond, 0), formatSpread(percent(comparison.throughputRatio), 0, ' %'), `>= ${TARGETS.postgresThroughputRatio * 100} %`, yesNo(ratioOk)],
    ['server CPU per enrollment (fleetgate + database)', ...both((f) => f.serverCpuMsPerEnrollment, 2, ' ms'), formatSpread(comparison.serverCpuRatio, 2, 'x'), '-', '-'],
    ['  fleetgate process', ...both((f) => f.fleetgateCpuMsPerEnrollment, 2, ' ms'), '-', '-', '-'],
    ['  PostgreSQL processes', ...both((f) => f.databaseCpuMsPerEnrollment, 2, ' ms'), '-', '-', '-'],
    [`  incl. ${SETTLE_MS / 1000} s settle after the phase`, ...both((f) => f.serverCpuMsPerEnrollmentWithSettle, 2, ' ms'), '-', '-', '-'],
    ['  above the bare Node https floor', ...both((f) => f.aboveNodeFloorMs, 2, ' ms'), '-', '-', '-'],
    ['server CPU utilisation (fleetgate + database)', ...both((f) => f.serverCpuUtilisation, 2), '-', '-', '-'],
    ['latency p50', ...both((f) => f.latencyP50Ms, 1, ' ms'), '-', '-', '-'],
    ['latency p99', ...both((f) => f.latencyP99Ms, 1, ' ms'), '-', '-', '-'],
    ['failed enrollments (all runs)', String(leveldb.failedEnrollments), String(postgres.failedEnrollments), '-', '0', yesNo(failed === 0)],
    ['enrollments per registry write round', ...both((f) => f.enrollmentsPerRound, 1), '-', '-', '-'],
    ['time to commit one round', ...both((f) => f.msPerRound, 2, ' ms'), '-', '-', '-'],
    ['PostgreSQL transactions per enrollment', '-', formatSpread(comparison.transactionsPerEnrollment, 2), '-', '-', '-'],
    ['PostgreSQL WAL flushes per enrollment', '-', formatSpread(comparison.walSyncsPerEnrollment, 3), '-', '-', '-'],
    ['PostgreSQL WAL bytes per enrollment', '-', formatSpread(comparison.walBytesPerEnrollment, 0), '-', '-', '-'],
    ['PostgreSQL processes (postmaster + children)', '-', formatSpread(comparison.databaseProcesses, 0), '-', '-', '-'],
    ['PostgreSQL version', '-', settings.server_version ?? '?', '-', '-', '-'],
    ['PostgreSQL durability', '-', DURABILITY_SETTINGS.map((name) => `${name} ${settings[name] ?? '?'}`).join(', '), '-', '-', '-'],
    ['PostgreSQL memory and checkpoints', '-', SIZE_SETTINGS.map((name) => `${name} ${settings[name] ?? '?'}`).join(', '), '-', '-', '-'],
    [
      'other CPU use in timed phase (noise)',
      ...both((f) => f.otherCores, 2, ' cores'),
      '-',
      `< ${NOISY_CORES.toFixed(2)} cores`,
      leveldb.otherCores.median < NOISY_CORES && postgres.otherCores.median < NOISY_CORES ? 'yes' : 'NO: figures disturbed',
    ],
    ['load average (1 min) when each run started', ...both((f) => f.loadAverage, 1), '-', '-', '-'],
  ];
  return rows;
}
