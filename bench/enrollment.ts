import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkIssuedCertificate } from './certificate-check.ts';
import { makeTempDir, removeTempDir } from './cleanup.ts';
import { prepareDevices, type BenchDevice } from './devices.ts';
import { enrollOnce, type EnrollOutcome } from './enroll.ts';
import { dataFiles, fleetgateBootstrap, fleetgateInit } from './fleetgate-cli.ts';
import { startFleetgate, type FleetgateServer } from './fleetgate-serve.ts';
import { runClosedLoop } from './load.ts';
import { measureNodeFloor, type NodeFloorResult } from './node-floor.ts';
import type { Pinning } from './pinning.ts';
import { cpuBetween, readCpuTicks, readRssKiB, readSystemTicks, systemBetween, type CpuSpent } from './proc-cpu.ts';
import { progress } from './progress.ts';
import { waitForQuietMachine } from './quiet.ts';
import { percentile } from './stats.ts';

/** Parameters of one enrollment run. */
export interface EnrollmentRunOptions {
  /** Enrollments in the timed phase, one device each. */
  readonly enrollments: number;
  /** Enrollments before the timed phase (JIT, TLS and LevelDB warm-up), with their own devices. */
  readonly warmup: number;
  readonly concurrency: number;
  readonly pinning: Pinning;
  /** Replay the load against a bare Node https server afterwards (see node-floor.ts). */
  readonly nodeFloor: boolean;
  /** When set, the server runs with `--cpu-prof` and writes its profile into this directory. */
  readonly cpuProfileDir?: string;
}

/**
 * Pause after the timed phase before a second CPU reading, to show work the server defers past
 * the last response (LevelDB compaction, GC) without letting it blur the main figure.
 */
export const SETTLE_MS = 1_000;

/** How long a run waits for other processes to stop using the CPU before its timed phase. */
const QUIET_WAIT_MS = 60_000;

/**
 * How busy the machine was with things other than this benchmark while it measured. The server
 * and the load generator share two cores, so anything else running shows up in every figure.
 */
export interface Interference {
  /** 1-minute load average when the run started. */
  readonly loadAverage: number;
  /** CPU (in cores) busy in the second before the timed phase, with the benchmark idle. */
  readonly busyCoresBefore: number;
  /**
   * CPU (in cores) busy during the timed phase beyond the server and the load generator: other
   * processes, and the kernel's softirq work for loopback TCP, which no process is charged for.
   */
  readonly otherCores: number;
  /** CPU (in cores) the hypervisor took away during the timed phase. */
  readonly stealCores: number;
}

/** What one run measured. Times in milliseconds. */
export interface EnrollmentRunResult {
  readonly enrollments: number;
  readonly succeeded: number;
  /** Failed enrollments by `<status> <error code>`. */
  readonly failures: Record<string, number>;
  readonly wallMs: number;
  /** Successful enrollments per second of wall clock over the timed phase. */
  readonly enrollmentsPerSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly serverPid: number;
  readonly serverCpu: CpuSpent;
  readonly serverCpuMsPerEnrollment: number;
  /** Including CPU the server spent in the settle pause after the last response. */
  readonly serverCpuMsPerEnrollmentWithSettle: number;
  /** Server CPU over wall clock: 1.0 means the server's core was saturated. */
  readonly serverCpuUtilisation: number;
  readonly serverRssKiB: number;
  /** CPU of the benchmark process itself (the TLS clients) per enrollment. */
  readonly loadCpuMsPerEnrollment: number;
  /** Negotiated TLS version and cipher suite, counted per connection. */
  readonly tlsVersions: Record<string, number>;
  readonly interference: Interference;
  readonly nodeFloor: NodeFloorResult | undefined;
}

function countBy(keys: readonly (string | undefined)[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const key of keys) if (key !== undefined) counts[key] = (counts[key] ?? 0) + 1;
  return counts;
}

function describeFailures(failures: Record<string, number>): string {
  return Object.entries(failures)
    .map(([key, count]) => `${count} x ${key}`)
    .join(', ');
}

/** Certificate check of every successful answer; a wrong certificate turns into a failure. */
function verifyAnswers(devices: readonly BenchDevice[], outcomes: readonly EnrollOutcome[], issuing: X509Certificate): EnrollOutcome[] {
  return outcomes.map((outcome, index) => {
    if (!outcome.ok) return outcome;
    try {
      checkIssuedCertificate(outcome.body, devices[index]?.id ?? '', issuing);
      return outcome;
    } catch (error) {
      return { ...outcome, ok: false, failure: `200 bad certificate: ${(error as Error).message}` };
    }
  });
}

/** Devices with their CSRs and TLS contexts, from a fresh data directory. */
interface Fleet {
  readonly dataDir: string;
  readonly rootPem: string;
  readonly issuing: X509Certificate;
  readonly warmup: BenchDevice[];
  readonly timed: BenchDevice[];
}

/** `fleetgate init`, `fleetgate bootstrap issue`, then every device's CSR and TLS context. */
async function prepareFleet(dir: string, options: EnrollmentRunOptions): Promise<Fleet> {
  const dataDir = join(dir, 'data');
  const files = dataFiles(dataDir);
  progress(`init ${dataDir}`);
  await fleetgateInit(dataDir);
  const total = options.warmup + options.enrollments;
  progress(`bootstrap issue --count ${total}`);
  const credentials = await fleetgateBootstrap(dataDir, join(dir, 'bootstrap'), 'thermostat', total);
  const rootPem = await readFile(files.rootCert, 'utf8');
  const issuing = new X509Certificate(await readFile(files.issuingCert));
  const step = Math.max(1, Math.floor(total / 4));
  const devices = await prepareDevices(credentials, rootPem, (done) => {
    if (done % step === 0 || done === total) progress(`prepared ${done}/${total} CSRs and TLS contexts`);
  });
  return { dataDir, rootPem, issuing, warmup: devices.slice(0, options.warmup), timed: devices.slice(options.warmup) };
}

/** Untimed enrollments that must all succeed with a correct certificate before anything is measured. */
async function warmUp(server: FleetgateServer, fleet: Fleet, concurrency: number): Promise<void> {
  if (fleet.warmup.length === 0) return;
  const warm = await runClosedLoop(fleet.warmup, concurrency, (device) => enrollOnce(server.target, device));
  const failures = countBy(verifyAnswers(fleet.warmup, warm.results, fleet.issuing).map((outcome) => outcome.failure));
  if (Object.keys(failures).length > 0) {
    throw new Error(`warm-up enrollments failed: ${describeFailures(failures)}\n${server.daemon.outputTail()}`);
  }
  progress(`warm-up: ${fleet.warmup.length} enrollments ok`);
}

/** The timed phase: every timed device enrolls once, between readings of the server's CPU. */
async function measure(server: FleetgateServer, fleet: Fleet, concurrency: number, loadAverage: number) {
  const { daemon, target } = server;
  const busyCoresBefore = await waitForQuietMachine(QUIET_WAIT_MS);
  const tenth = Math.max(1, Math.floor(fleet.timed.length / 10));
  const cpuBefore = await readCpuTicks(daemon.pid);
  const systemBefore = await readSystemTicks();
  const loadBefore = process.cpuUsage();
  const timed = await runClosedLoop(fleet.timed, concurrency, (device) => enrollOnce(target, device), (done, count) => {
    if (done % tenth === 0 || done === count) progress(`enrolled ${done}/${count}`);
  });
  const cpuAfter = await readCpuTicks(daemon.pid);
  const system = systemBetween(systemBefore, await readSystemTicks());
  const load = process.cpuUsage(loadBefore);
  await sleep(SETTLE_MS);
  const cpuSettled = await readCpuTicks(daemon.pid);
  const serverRssKiB = await readRssKiB(daemon.pid);

  const serverCpu = cpuBetween(cpuBefore, cpuAfter);
  const loadCpuMs = (load.user + load.system) / 1000;
  const interference: Interference = {
    loadAverage,
    busyCoresBefore,
    otherCores: Math.max(0, system.busyMs - serverCpu.totalMs - loadCpuMs) / timed.wallMs,
    stealCores: system.stealMs / timed.wallMs,
  };
  return { timed, serverCpu, settledCpu: cpuBetween(cpuBefore, cpuSettled), loadCpuMs, serverRssKiB, interference };
}

/**
 * One enrollment run from nothing: a fresh data directory (`fleetgate init`), bootstrap
 * credentials (`fleetgate bootstrap issue`), a fresh server (`fleetgate serve`), a warm-up, then
 * the timed phase between two readings of the server's CPU; then, optionally, the same load
 * against a bare Node https server. Stops every server and deletes the directory whatever happens.
 */
export async function runEnrollment(options: EnrollmentRunOptions): Promise<EnrollmentRunResult> {
  const loadAverage = loadavg()[0] ?? Number.NaN;
  const dir = await makeTempDir('bench');
  let server: FleetgateServer | undefined;
  try {
    const fleet = await prepareFleet(dir, options);
    const nodeArgs = options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`] : [];
    server = await startFleetgate({ dataDir: fleet.dataDir, rootPem: fleet.rootPem, pinning: options.pinning, nodeArgs });
    progress(`fleetgate serve pid ${server.daemon.pid} on ${server.target.host}:${server.target.port}`);
    await warmUp(server, fleet, options.concurrency);
    const measured = await measure(server, fleet, options.concurrency, loadAverage);
    const serverPid = server.daemon.pid;
    await server.daemon.stop();

    const outcomes = verifyAnswers(fleet.timed, measured.timed.results, fleet.issuing);
    const succeeded = outcomes.filter((outcome) => outcome.ok).length;
    const failures = countBy(outcomes.map((outcome) => outcome.failure));
    if (succeeded < outcomes.length) progress(`FAILURES: ${describeFailures(failures)}`);
    const latencies = outcomes.filter((outcome) => outcome.ok).map((outcome) => outcome.latencyMs);
    const count = fleet.timed.length;

    let nodeFloor: NodeFloorResult | undefined;
    if (options.nodeFloor) {
      progress('node https floor: same load against a bare Node https server');
      nodeFloor = await measureNodeFloor({ ...fleet, devices: fleet.timed, concurrency: options.concurrency, pinning: options.pinning });
    }
    return {
      enrollments: count,
      succeeded,
      failures,
      wallMs: measured.timed.wallMs,
      enrollmentsPerSecond: succeeded / (measured.timed.wallMs / 1000),
      latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: percentile(latencies, 100) },
      serverPid,
      serverCpu: measured.serverCpu,
      serverCpuMsPerEnrollment: measured.serverCpu.totalMs / count,
      serverCpuMsPerEnrollmentWithSettle: measured.settledCpu.totalMs / count,
      serverCpuUtilisation: measured.serverCpu.totalMs / measured.timed.wallMs,
      serverRssKiB: measured.serverRssKiB,
      loadCpuMsPerEnrollment: measured.loadCpuMs / count,
      tlsVersions: countBy(outcomes.map((outcome) => outcome.protocol ?? 'none')),
      interference: measured.interference,
      nodeFloor,
    };
  } finally {
    await server?.daemon.stop();
    await removeTempDir(dir);
  }
}
