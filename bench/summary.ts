import { SETTLE_MS, type EnrollmentRunResult } from './enrollment.ts';
import type { FloorResult } from './openssl-floor.ts';
import { describePinning, type Pinning } from './pinning.ts';
import { median } from './stats.ts';

/** Targets of the enrollment issue (DESIGN.md, "Performance targets"). */
export const TARGETS = {
  serverCpuMsPerEnrollment: 2.0,
  serverCpuMsPerEnrollmentStretch: 1.5,
  enrollmentsPerSecond: 300,
} as const;

/** One repetition: the openssl floor and the enrollment run measured right after it. */
export interface BenchRun {
  readonly openssl: FloorResult;
  readonly enrollment: EnrollmentRunResult;
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
  /** Requests the Node floor server did not answer with 200 (should be 0). */
  readonly nodeFloorFailed: number;
  readonly otherCores: Spread;
  readonly stealCores: Spread;
  readonly loadAverage: Spread;
}

function spread(values: readonly number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

function spreadOrUndefined(values: readonly number[]): Spread | undefined {
  return values.length > 0 ? spread(values) : undefined;
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
    nodeFloorFailed: withNodeFloor.reduce((sum, { floor }) => sum + floor.failed, 0),
    otherCores: of((run) => run.interference.otherCores),
    stealCores: of((run) => run.interference.stealCores),
    loadAverage: of((run) => run.interference.loadAverage),
  };
}

function formatSpread(value: Spread, digits: number, unit = ''): string {
  const main = `${value.median.toFixed(digits)}${unit}`;
  if (value.min.toFixed(digits) === value.max.toFixed(digits)) return main;
  return `${main} (${value.min.toFixed(digits)}-${value.max.toFixed(digits)})`;
}

const yesNo = (ok: boolean): string => (ok ? 'yes' : 'NO');

/** Rows of the result table: metric, value, target, ok?. Values are medians (min-max over runs). */
export function tableRows(summary: Summary, pinning: Pinning): string[][] {
  const cpu = summary.serverCpuMsPerEnrollment.median;
  const cpuOk = cpu <= TARGETS.serverCpuMsPerEnrollmentStretch ? 'yes (stretch too)' : yesNo(cpu <= TARGETS.serverCpuMsPerEnrollment);
  const rows: string[][] = [
    ['enrollments/s (end to end)', formatSpread(summary.enrollmentsPerSecond, 0), `>= ${TARGETS.enrollmentsPerSecond}`, yesNo(summary.enrollmentsPerSecond.median >= TARGETS.enrollmentsPerSecond)],
    [
      'server CPU per enrollment',
      formatSpread(summary.serverCpuMsPerEnrollment, 2, ' ms'),
      `<= ${TARGETS.serverCpuMsPerEnrollment.toFixed(1)} ms (stretch ${TARGETS.serverCpuMsPerEnrollmentStretch.toFixed(1)})`,
      cpuOk,
    ],
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
    rows.push(['fleetgate CPU above the Node floor', formatSpread(summary.aboveNodeFloorMs, 2, ' ms'), '-', '-']);
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
