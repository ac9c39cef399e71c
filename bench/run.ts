/**
 * `npm run bench`: the enrollment benchmark and the broker benchmark (`--only` picks one), or the
 * cluster benchmark (`--only cluster`). See
 * `npm run bench -- --help` and docs/benchmarks.md.
 */
import { runBrokerBenchmark } from './broker/broker-bench.ts';
import { runClusterBenchmark } from './cluster/cluster-bench.ts';
import { runReconnectBenchmark } from './reconnect/reconnect-bench.ts';
import { installCleanupHandlers, interruption, sweepStaleTempDirs } from './cleanup.ts';
import { runEnrollment, type EnrollmentRunResult, type RegistryEngine } from './enrollment.ts';
import { describeMachine, type MachineInfo } from './machine.ts';
import { measureOpensslFloor } from './openssl-floor.ts';
import { BenchUsageError, parseBenchOptions, USAGE, type BenchOptions } from './options.ts';
import { describePinning, pinLoadGenerator, type Pinning } from './pinning.ts';
import { progress } from './progress.ts';
import { PROFILES_DIR, writeResults } from './results.ts';
import { postgresTableRows, summarize, tableRows, TARGETS, type BenchRun } from './summary.ts';
import { renderTable } from './table.ts';

async function main(options: BenchOptions): Promise<number> {
  const swept = await sweepStaleTempDirs();
  if (swept > 0) progress(`removed ${swept} temp director${swept === 1 ? 'y' : 'ies'} left by killed benchmark runs`);
  // Before pinning: afterwards nproc would report the single CPU the benchmark is left with.
  const machine = await describeMachine();
  // The cluster benchmark pins nothing: a pinned benchmark process would hand its CPU mask to
  // every server it starts (children inherit it), and the workers must be free to use every CPU.
  const pinning: Pinning = options.only === 'cluster' ? { applied: false, reason: 'cluster benchmark: nothing pinned, so the workers can use every CPU' } : await pinLoadGenerator(options.pin);
  progress(`${machine.nproc} CPUs, node ${machine.node}, ${machine.openssl}; ${describePinning(pinning)}`);
  if (options.only === 'cluster') return runClusterBenchmark(options.cluster, { pinning, machine });
  if (options.only === 'reconnect') return runReconnectBenchmark(options.reconnect, { pinning, machine, cpuProfileDir: options.cpuProf ? PROFILES_DIR : undefined, perfMap: options.perfMap });
  let status = 0;
  if (options.only !== 'broker') status = Math.max(status, await enrollmentBenchmark(options, machine, pinning));
  if (options.only !== 'enrollment') status = Math.max(status, await runBrokerBenchmark(options.broker, { pinning, machine }));
  return status;
}

/** One enrollment run's headline, on stderr as it finishes. */
function reportRun(label: string, enrollment: EnrollmentRunResult): void {
  const database = enrollment.database ? ` (fleetgate ${enrollment.serverCpuMsPerEnrollment.toFixed(2)} + PostgreSQL ${enrollment.database.cpuMsPerEnrollment.toFixed(2)})` : '';
  progress(
    `${label} ${enrollment.registry === 'postgres' ? 'PostgreSQL' : 'LevelDB'}: ${enrollment.enrollmentsPerSecond.toFixed(0)} enrollments/s, ` +
      `${enrollment.totalServerCpuMsPerEnrollment.toFixed(2)} ms server CPU each${database}, p99 ${enrollment.latencyMs.p99.toFixed(1)} ms, ` +
      `${enrollment.rounds.enrollmentsPerRound.toFixed(1)} enrollments per registry write` +
      (enrollment.nodeFloor ? `; bare Node https ${enrollment.nodeFloor.cpuMsPerRequest.toFixed(2)} ms` : ''),
  );
}

/** The enrollment benchmark; returns its exit status. */
async function enrollmentBenchmark(options: BenchOptions, machine: MachineInfo, pinning: Pinning): Promise<number> {
  const startedAt = new Date();
  const runs: BenchRun[] = [];
  for (let index = 0; index < options.repeat; index++) {
    const label = `run ${index + 1}/${options.repeat}`;
    // The floor is measured in every run, right before the enrollments, so that each ratio pairs
    // two figures taken under the same conditions: on a shared machine these drift by 20 %.
    const openssl = await measureOpensslFloor({ seconds: options.floorSeconds, pinning });
    progress(`${label}: ${options.enrollments} enrollments, ${options.concurrency} clients, ${options.warmup} warm-up`);
    const enroll = (registry: RegistryEngine): Promise<EnrollmentRunResult> =>
      runEnrollment({
        registry,
        enrollments: options.enrollments,
        warmup: options.warmup,
        concurrency: options.concurrency,
        pinning,
        // Replayed once per repetition, after the LevelDB run: the load is the same for both.
        nodeFloor: options.nodeFloor && registry === 'leveldb',
        cpuProfileDir: options.cpuProf ? PROFILES_DIR : undefined,
        perfMap: options.perfMap,
      });
    let enrollment: EnrollmentRunResult;
    let postgres: EnrollmentRunResult | undefined;
    if (options.registry === 'both' && index % 2 === 1) {
      // Every other repetition starts with PostgreSQL, so a drift of the machine over a
      // repetition does not always favour the same engine.
      postgres = await enroll('postgres');
      reportRun(label, postgres);
      enrollment = await enroll('leveldb');
      reportRun(label, enrollment);
    } else {
      enrollment = await enroll('leveldb');
      reportRun(label, enrollment);
      if (options.registry === 'both') {
        postgres = await enroll('postgres');
        reportRun(label, postgres);
      }
    }
    runs.push({ openssl, enrollment, postgres });
  }

  const summary = summarize(runs);
  process.stdout.write(`\n${renderTable(['metric', 'value', 'target', 'ok?'], tableRows(summary, pinning, options.cpuProf))}\n`);
  if (summary.postgres) {
    process.stdout.write(`\nEnrollment on PostgreSQL vs LevelDB (same repetitions; ratio = PostgreSQL / LevelDB, paired per repetition)\n`);
    process.stdout.write(`${renderTable(['metric', 'LevelDB', 'PostgreSQL', 'ratio', 'target', 'ok?'], postgresTableRows(summary.postgres))}\n`);
  }
  if (options.repeat > 1) process.stdout.write(`\nvalues: median of ${options.repeat} runs (min-max)\n`);
  const path = await writeResults(
    { benchmark: 'enrollment', startedAt: startedAt.toISOString(), machine, options, pinning, targets: TARGETS, summary, runs },
    startedAt,
  );
  progress(`results: ${path} (and bench/results/latest.json)`);
  if (options.cpuProf) progress(`server CPU profiles: ${PROFILES_DIR} (figures above include the profiler's overhead)`);
  const failed = summary.failedEnrollments + (summary.postgres?.postgres.failedEnrollments ?? 0);
  return failed === 0 ? 0 : 1;
}

installCleanupHandlers();
let options: BenchOptions | undefined;
try {
  options = parseBenchOptions(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof BenchUsageError)) throw error;
  process.stderr.write(`${error.message}\n\n${USAGE}\n`);
  process.exit(2);
}
if (!options) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
try {
  process.exitCode = await main(options);
} catch (error) {
  const signal = interruption();
  if (signal) {
    process.exitCode = 130;
  } else {
    process.stderr.write(`[bench] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  }
}
