/**
 * `npm run bench`: the enrollment benchmark and the broker benchmark (`--only` picks one). See
 * `npm run bench -- --help` and docs/benchmarks.md.
 */
import { runBrokerBenchmark } from './broker/broker-bench.ts';
import { installCleanupHandlers, interruption, sweepStaleTempDirs } from './cleanup.ts';
import { runEnrollment } from './enrollment.ts';
import { describeMachine, type MachineInfo } from './machine.ts';
import { measureOpensslFloor } from './openssl-floor.ts';
import { BenchUsageError, parseBenchOptions, USAGE, type BenchOptions } from './options.ts';
import { describePinning, pinLoadGenerator, type Pinning } from './pinning.ts';
import { progress } from './progress.ts';
import { PROFILES_DIR, writeResults } from './results.ts';
import { summarize, tableRows, TARGETS, type BenchRun } from './summary.ts';
import { renderTable } from './table.ts';

async function main(options: BenchOptions): Promise<number> {
  const swept = await sweepStaleTempDirs();
  if (swept > 0) progress(`removed ${swept} temp director${swept === 1 ? 'y' : 'ies'} left by killed benchmark runs`);
  // Before pinning: afterwards nproc would report the single CPU the benchmark is left with.
  const machine = await describeMachine();
  const pinning = await pinLoadGenerator(options.pin);
  progress(`${machine.nproc} CPUs, node ${machine.node}, ${machine.openssl}; ${describePinning(pinning)}`);
  let status = 0;
  if (options.only !== 'broker') status = Math.max(status, await enrollmentBenchmark(options, machine, pinning));
  if (options.only !== 'enrollment') status = Math.max(status, await runBrokerBenchmark(options.broker, { pinning, machine }));
  return status;
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
    const enrollment = await runEnrollment({
      enrollments: options.enrollments,
      warmup: options.warmup,
      concurrency: options.concurrency,
      pinning,
      nodeFloor: options.nodeFloor,
      cpuProfileDir: options.cpuProf ? PROFILES_DIR : undefined,
    });
    progress(
      `${label}: ${enrollment.enrollmentsPerSecond.toFixed(0)} enrollments/s, ` +
        `${enrollment.serverCpuMsPerEnrollment.toFixed(2)} ms server CPU each, p99 ${enrollment.latencyMs.p99.toFixed(1)} ms` +
        (enrollment.nodeFloor ? `; bare Node https ${enrollment.nodeFloor.cpuMsPerRequest.toFixed(2)} ms` : ''),
    );
    runs.push({ openssl, enrollment });
  }

  const summary = summarize(runs);
  process.stdout.write(`\n${renderTable(['metric', 'value', 'target', 'ok?'], tableRows(summary, pinning))}\n`);
  if (options.repeat > 1) process.stdout.write(`\nvalues: median of ${options.repeat} runs (min-max)\n`);
  const path = await writeResults(
    { benchmark: 'enrollment', startedAt: startedAt.toISOString(), machine, options, pinning, targets: TARGETS, summary, runs },
    startedAt,
  );
  progress(`results: ${path} (and bench/results/latest.json)`);
  if (options.cpuProf) progress(`server CPU profiles: ${PROFILES_DIR} (figures above include the profiler's overhead)`);
  return summary.failedEnrollments === 0 ? 0 : 1;
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
