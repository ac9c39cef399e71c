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
import { runClosedLoop, type LoadPhase } from './load.ts';
import { nodeFloorResult, startNodeFloorServer, warmUpNodeFloor, type NodeFloorResult, type NodeFloorServer } from './node-floor.ts';
import type { Pinning } from './pinning.ts';
import { startPostgres, type PostgresServer } from './postgres.ts';
import { activityBetween, readPostgresActivity, readPostgresSettings, type PostgresActivity } from './postgres-stats.ts';
import { cpuBetween, readCpuTicks, readRssKiB, readSystemTicks, readTreeCpuTicks, systemBetween, type CpuSpent } from './proc-cpu.ts';
import { PERF_MAP_ARGS } from './perf-map.ts';
import { progress } from './progress.ts';
import { waitForQuietMachine } from './quiet.ts';
import { readRegistryRounds, type RegistryRounds } from './registry-rounds.ts';
import { percentile } from './stats.ts';

/** Where the server under test keeps its registry. */
export type RegistryEngine = 'leveldb' | 'postgres';

/** Parameters of one enrollment run. */
export interface EnrollmentRunOptions {
  /**
   * LevelDB in the data directory, or a throwaway PostgreSQL server of the run's own
   * (bench/postgres.ts, PostgreSQL's default settings) pinned to the server's CPU.
   */
  readonly registry: RegistryEngine;
  /** Enrollments in the timed phase, one device each. */
  readonly enrollments: number;
  /** Enrollments before the timed phase (JIT, TLS and LevelDB warm-up), with their own devices. */
  readonly warmup: number;
  readonly concurrency: number;
  readonly pinning: Pinning;
  /** Give a bare Node https server the same load, in blocks alternating with fleetgate's (see node-floor.ts). */
  readonly nodeFloor: boolean;
  /** When set, the server runs with `--cpu-prof` and writes its profile into this directory. */
  readonly cpuProfileDir?: string;
  /** Run the servers with a perf map for Linux `perf` (`--perf-basic-prof`). */
  readonly perfMap?: boolean;
}

/**
 * Pause after the timed phase before a second CPU reading, to show work the server defers past
 * the last response (LevelDB compaction, GC) without letting it blur the main figure.
 */
export const SETTLE_MS = 1_000;

/** How long a run waits for other processes to stop using the CPU before its timed phase. */
const QUIET_WAIT_MS = 60_000;

/**
 * Wait after the settle pause before PostgreSQL's activity counters are read: backends report
 * them at most once a second. Nothing is measured meanwhile.
 */
const STATS_FLUSH_MS = 1_500;

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

/** What the PostgreSQL processes did during a timed phase. */
export interface DatabaseRunResult {
  /** `server_version` and the settings that decide what a commit costs (postgres-stats.ts). */
  readonly settings: Record<string, string>;
  readonly postmasterPid: number;
  /** Processes of the server (postmaster and children) at the end of the timed phase. */
  readonly processes: number;
  /** CPU of all of them over the timed phase, exited backends included. */
  readonly cpu: CpuSpent;
  readonly cpuMsPerEnrollment: number;
  readonly cpuMsPerEnrollmentWithSettle: number;
  /** pg_stat_database and pg_stat_wal over the timed phase and the settle pause. */
  readonly activity: PostgresActivity;
}

/** Registry write rounds (LevelDB batches, PostgreSQL transactions) over the timed phase and the settle pause. */
export interface RoundsResult extends RegistryRounds {
  readonly enrollmentsPerRound: number;
  /** Mean time to commit one round, in ms. */
  readonly msPerRound: number;
}

/** What one run measured. Times in milliseconds. */
export interface EnrollmentRunResult {
  readonly registry: RegistryEngine;
  readonly enrollments: number;
  readonly succeeded: number;
  /** Failed enrollments by `<status> <error code>`. */
  readonly failures: Record<string, number>;
  readonly wallMs: number;
  /** Successful enrollments per second of wall clock over the timed phase. */
  readonly enrollmentsPerSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly serverPid: number;
  /** CPU of the fleetgate process alone (the "server CPU" of the LevelDB figures). */
  readonly serverCpu: CpuSpent;
  readonly serverCpuMsPerEnrollment: number;
  /** Including CPU the server spent in the settle pause after the last response. */
  readonly serverCpuMsPerEnrollmentWithSettle: number;
  /** Server CPU over wall clock: 1.0 means the server's core was saturated. */
  readonly serverCpuUtilisation: number;
  /** fleetgate plus its database's processes (PostgreSQL), per enrollment; fleetgate alone on LevelDB. */
  readonly totalServerCpuMsPerEnrollment: number;
  readonly totalServerCpuMsPerEnrollmentWithSettle: number;
  /** fleetgate plus database CPU over wall clock: both run on the server's core when pinned. */
  readonly totalServerCpuUtilisation: number;
  /** PostgreSQL's part, on PostgreSQL runs. */
  readonly database: DatabaseRunResult | undefined;
  readonly rounds: RoundsResult;
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

/** The database a run's server uses, when it is PostgreSQL. */
interface RunDatabase {
  readonly url: string;
  readonly postmasterPid: number;
  readonly settings: Record<string, string>;
  /** Stops the server and deletes its directory. */
  destroy(): Promise<void>;
}

/**
 * Blocks of the timed phase when the Node floor is measured: fleetgate and the floor server get
 * the load in turns, block by block (ABBA: fleetgate first in even blocks, the floor first in
 * odd ones), so that both see the same machine. Measured one after the other (before
 * 2026-12-02) the two phases were half a minute apart, and this shared VM's speed moves by 30-40 %
 * within minutes: the floor read 2.5 to 4.3 ms per request between runs on one host.
 */
export const INTERLEAVED_BLOCKS = 8;

/** Sum of the closed-loop phases of several blocks: results in order, wall times added up. */
function joinPhases<R>(phases: readonly LoadPhase<R>[]): LoadPhase<R> {
  return { results: phases.flatMap((phase) => phase.results), wallMs: phases.reduce((sum, phase) => sum + phase.wallMs, 0) };
}

/** `items` cut into `count` consecutive blocks of nearly equal size (fewer when there are fewer items). */
function blocksOf<T>(items: readonly T[], count: number): T[][] {
  const size = Math.ceil(items.length / Math.max(1, count));
  const blocks: T[][] = [];
  for (let start = 0; start < items.length; start += size) blocks.push(items.slice(start, start + size));
  return blocks;
}

/**
 * The timed phase: every timed device enrolls once, between readings of the server's CPU (and
 * its database's). With `floor`, the floor server gets the same requests in alternate blocks
 * (INTERLEAVED_BLOCKS), and each server's CPU is read over the whole phase: what one does while
 * the other has the load (fleetgate's deferred LevelDB work, say) is still its own.
 */
async function measure(server: FleetgateServer, fleet: Fleet, concurrency: number, loadAverage: number, database: RunDatabase | undefined, floor: NodeFloorServer | undefined) {
  const { daemon, target } = server;
  const busyCoresBefore = await waitForQuietMachine(QUIET_WAIT_MS);
  const count = fleet.timed.length;
  const tenth = Math.max(1, Math.floor(count / 10));
  let enrolled = 0;
  const onEnrolled = (): void => {
    enrolled++;
    if (enrolled % tenth === 0 || enrolled === count) progress(`enrolled ${enrolled}/${count}`);
  };
  // Counters first: a scrape and a query cost the server CPU, which must not land in the phase.
  const roundsBefore = await readRegistryRounds(server.metricsUrl);
  const activityBefore = database ? await readPostgresActivity(database.url) : undefined;
  const systemBefore = await readSystemTicks();
  const cpuBefore = await readCpuTicks(daemon.pid);
  const floorBefore = floor ? await readCpuTicks(floor.daemon.pid) : undefined;
  const dbBefore = database ? await readTreeCpuTicks(database.postmasterPid) : undefined;
  const loadBefore = process.cpuUsage();
  const fleetgatePhases: LoadPhase<EnrollOutcome>[] = [];
  const floorPhases: LoadPhase<EnrollOutcome>[] = [];
  // fleetgate's CPU while it had the load, for its utilisation (busy over its blocks' wall time).
  let busyInBlocksMs = 0;
  const blocks = floor ? blocksOf(fleet.timed, INTERLEAVED_BLOCKS) : [fleet.timed];
  for (const [index, devices] of blocks.entries()) {
    const fleetgateBlock = async (): Promise<void> => {
      const blockBefore = await readCpuTicks(daemon.pid);
      fleetgatePhases.push(await runClosedLoop(devices, concurrency, (device) => enrollOnce(target, device), onEnrolled));
      busyInBlocksMs += cpuBetween(blockBefore, await readCpuTicks(daemon.pid)).totalMs;
    };
    const floorBlock = async (): Promise<void> => {
      if (floor) floorPhases.push(await runClosedLoop(devices, concurrency, (device) => enrollOnce(floor.target, device)));
    };
    if (index % 2 === 0) {
      await fleetgateBlock();
      await floorBlock();
    } else {
      await floorBlock();
      await fleetgateBlock();
    }
  }
  const cpuAfter = await readCpuTicks(daemon.pid);
  const floorAfter = floor ? await readCpuTicks(floor.daemon.pid) : undefined;
  const dbAfter = database ? await readTreeCpuTicks(database.postmasterPid) : undefined;
  const system = systemBetween(systemBefore, await readSystemTicks());
  const load = process.cpuUsage(loadBefore);
  await sleep(SETTLE_MS);
  const cpuSettled = await readCpuTicks(daemon.pid);
  const dbSettled = database ? await readTreeCpuTicks(database.postmasterPid) : undefined;
  const serverRssKiB = await readRssKiB(daemon.pid);
  const roundsAfter = await readRegistryRounds(server.metricsUrl);
  let activity: PostgresActivity | undefined;
  if (database && activityBefore) {
    await sleep(STATS_FLUSH_MS);
    activity = activityBetween(activityBefore, await readPostgresActivity(database.url));
  }

  const timed = joinPhases(fleetgatePhases);
  const floorPhase = joinPhases(floorPhases);
  const serverCpu = cpuBetween(cpuBefore, cpuAfter);
  const floorCpu = floorBefore && floorAfter ? cpuBetween(floorBefore, floorAfter) : undefined;
  const dbCpu = dbBefore && dbAfter ? cpuBetween(dbBefore, dbAfter) : undefined;
  const loadCpuMs = (load.user + load.system) / 1000;
  const phaseWallMs = timed.wallMs + floorPhase.wallMs;
  const interference: Interference = {
    loadAverage,
    busyCoresBefore,
    otherCores: Math.max(0, system.busyMs - serverCpu.totalMs - (floorCpu?.totalMs ?? 0) - (dbCpu?.totalMs ?? 0) - loadCpuMs) / phaseWallMs,
    stealCores: system.stealMs / phaseWallMs,
  };
  return {
    timed,
    // The floor's requests are the load generator's too: its CPU is divided between both servers' requests.
    loadCpuMs: (loadCpuMs * timed.results.length) / (timed.results.length + floorPhase.results.length),
    nodeFloor: floorCpu ? nodeFloorResult(floorCpu, floorPhase) : undefined,
    serverCpu,
    utilisation: busyInBlocksMs / timed.wallMs,
    settledCpu: cpuBetween(cpuBefore, cpuSettled),
    db: dbBefore && dbAfter && dbSettled && activity ? { cpu: cpuBetween(dbBefore, dbAfter), settledCpu: cpuBetween(dbBefore, dbSettled), processes: dbAfter.processes, activity } : undefined,
    rounds: { count: roundsAfter.count - roundsBefore.count, seconds: roundsAfter.seconds - roundsBefore.seconds },
    serverRssKiB,
    interference,
  };
}

/**
 * A throwaway PostgreSQL server for one run, pinned to the server's CPU (the server side is
 * fleetgate and its database together), with a fresh database; PostgreSQL's default settings.
 */
async function startRunDatabase(pinning: Pinning): Promise<RunDatabase> {
  const dir = await makeTempDir('pgdata');
  let server: PostgresServer | undefined;
  const destroy = async (): Promise<void> => {
    await server?.destroy();
    await removeTempDir(dir);
  };
  try {
    server = await startPostgres({ dir, cpu: pinning.applied ? pinning.serverCpu : undefined, databasePrefix: 'fleetgate_bench' });
    const url = await server.createDatabase();
    const settings = await readPostgresSettings(url);
    const postmasterPid = await server.postmasterPid();
    progress(`PostgreSQL ${settings.server_version ?? '?'} pid ${postmasterPid} on 127.0.0.1:${server.port} (fsync ${settings.fsync}, synchronous_commit ${settings.synchronous_commit})`);
    return { url, postmasterPid, settings, destroy };
  } catch (error) {
    await destroy();
    throw error;
  }
}

/**
 * One enrollment run from nothing: a fresh data directory (`fleetgate init`), bootstrap
 * credentials (`fleetgate bootstrap issue`), on PostgreSQL a fresh PostgreSQL server, a fresh
 * server (`fleetgate serve`), a warm-up, then the timed phase between two readings of the
 * server's CPU (and the database's); then, optionally, the same load against a bare Node https
 * server. Stops every server and deletes the directories whatever happens.
 */
export async function runEnrollment(options: EnrollmentRunOptions): Promise<EnrollmentRunResult> {
  const loadAverage = loadavg()[0] ?? Number.NaN;
  const dir = await makeTempDir('bench');
  let server: FleetgateServer | undefined;
  let database: RunDatabase | undefined;
  let floor: NodeFloorServer | undefined;
  try {
    const fleet = await prepareFleet(dir, options);
    if (options.registry === 'postgres') database = await startRunDatabase(options.pinning);
    const nodeArgs = [...(options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`] : []), ...(options.perfMap ? PERF_MAP_ARGS : [])];
    server = await startFleetgate({ dataDir: fleet.dataDir, rootPem: fleet.rootPem, pinning: options.pinning, nodeArgs, registryUrl: database?.url });
    progress(`fleetgate serve pid ${server.daemon.pid} on ${server.target.host}:${server.target.port}, registry ${database ? 'PostgreSQL' : 'LevelDB'}`);
    await warmUp(server, fleet, options.concurrency);
    if (options.nodeFloor) {
      // Profiled too when fleetgate is: what fleetgate adds is the difference of the two profiles.
      floor = await startNodeFloorServer({ ...fleet, pinning: options.pinning, nodeArgs });
      await warmUpNodeFloor(floor, fleet.warmup, options.concurrency);
      progress(`bare Node https floor server pid ${floor.daemon.pid}: ${INTERLEAVED_BLOCKS} blocks of the timed phase each, alternating with fleetgate's`);
    }
    const measured = await measure(server, fleet, options.concurrency, loadAverage, database, floor);
    const serverPid = server.daemon.pid;
    await server.daemon.stop();
    await floor?.daemon.stop();
    await database?.destroy();

    const outcomes = verifyAnswers(fleet.timed, measured.timed.results, fleet.issuing);
    const succeeded = outcomes.filter((outcome) => outcome.ok).length;
    const failures = countBy(outcomes.map((outcome) => outcome.failure));
    if (succeeded < outcomes.length) progress(`FAILURES: ${describeFailures(failures)}`);
    const latencies = outcomes.filter((outcome) => outcome.ok).map((outcome) => outcome.latencyMs);
    const count = fleet.timed.length;

    const dbCpuMs = measured.db?.cpu.totalMs ?? 0;
    const rounds = measured.rounds;
    return {
      registry: options.registry,
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
      serverCpuUtilisation: measured.utilisation,
      totalServerCpuMsPerEnrollment: (measured.serverCpu.totalMs + dbCpuMs) / count,
      totalServerCpuMsPerEnrollmentWithSettle: (measured.settledCpu.totalMs + (measured.db?.settledCpu.totalMs ?? 0)) / count,
      totalServerCpuUtilisation: (measured.serverCpu.totalMs + dbCpuMs) / measured.timed.wallMs,
      database:
        database && measured.db
          ? {
              settings: database.settings,
              postmasterPid: database.postmasterPid,
              processes: measured.db.processes,
              cpu: measured.db.cpu,
              cpuMsPerEnrollment: measured.db.cpu.totalMs / count,
              cpuMsPerEnrollmentWithSettle: measured.db.settledCpu.totalMs / count,
              activity: measured.db.activity,
            }
          : undefined,
      rounds: { ...rounds, enrollmentsPerRound: count / rounds.count, msPerRound: (rounds.seconds * 1000) / rounds.count },
      serverRssKiB: measured.serverRssKiB,
      loadCpuMsPerEnrollment: measured.loadCpuMs / count,
      tlsVersions: countBy(outcomes.map((outcome) => outcome.protocol ?? 'none')),
      interference: measured.interference,
      nodeFloor: measured.nodeFloor,
    };
  } finally {
    await server?.daemon.stop();
    await floor?.daemon.stop();
    await database?.destroy();
    await removeTempDir(dir);
  }
}
