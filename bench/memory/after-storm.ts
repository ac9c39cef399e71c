/**
 * `npm run bench:memory-storm`: what the server's RSS does during and after a storm, with glibc's
 * malloc (the default) and with jemalloc preloaded. A fresh `fleetgate serve` per allocator and
 * round takes N simulated devices through the whole lifecycle at once (enroll-storm, every limit
 * raised so each handshake is in flight), then every device leaves; RSS is read at the peak (the
 * kernel's high-water mark), right after the storm and 10 s and 60 s later by the monotonic
 * clock, with V8's heap at the end. `--storms S` runs S such storms of new devices on the same
 * server: does the next storm reuse what the allocator kept, or grow again? The allocators
 * alternate (ABBA). Table on stdout, JSON in bench/results/latest-memory-storm.json.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Progress, parseSimArgs, simulate } from '@fleetgate/simulator';
import { parsePrometheusText } from '../../simulator/src/monitor/prometheus-text.ts';
import { installCleanupHandlers, makeTempDir, removeTempDir } from '../cleanup.ts';
import { integerOption } from '../integer-option.ts';
import { describeMachine } from '../machine.ts';
import { describePinning, pinLoadGenerator, type Pinning } from '../pinning.ts';
import { cpuBetween, readCpuTicks, readPeakRssKiB, readRssKiB } from '../proc-cpu.ts';
import { progress } from '../progress.ts';
import { writeResults } from '../results.ts';
import { renderTable } from '../table.ts';
import { initStormDataDir, startFleetgateWithPorts } from '../simulator/sim-bench.ts';

const DEFAULT_JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';

const HELP = `Usage: npm run bench:memory-storm -- [--devices N] [--rounds R] [--storms S] [--jemalloc PATH] [--no-pin]

For each allocator (glibc's malloc, then jemalloc preloaded with LD_PRELOAD), alternating, R
times: a fresh fleetgate serve, then S storms one after the other, each of N new simulated
devices through enrollment and connection at once, then every device gone. Reports, per storm,
the server's RSS before it, its peak so far, right after the storm and 10 s and 60 s later,
V8's heap 60 s later, and the server's CPU for the storm.
Needs Debian's libjemalloc2 (apt-get install -y libjemalloc2).
Defaults: --devices 2000 --rounds 2 --storms 1 --jemalloc ${DEFAULT_JEMALLOC}.`;

type Allocator = 'glibc' | 'jemalloc';

/** One storm on a server of one allocator. */
interface StormMemory {
  readonly allocator: Allocator;
  readonly round: number;
  /** 1 for the fresh server's first storm, 2 for the next on the same server, ... */
  readonly storm: number;
  readonly devices: number;
  readonly connected: number;
  readonly errors: number;
  /** Before this storm (for the first, the fresh server). */
  readonly rssStartMiB: number;
  /** The process's high-water mark so far (VmHWM): over this storm and every one before it. */
  readonly rssPeakMiB: number;
  readonly rssEndMiB: number;
  readonly rssAfter10sMiB: number;
  readonly rssAfter60sMiB: number;
  /** V8's heap (total, not only live objects) 60 s after the run, from the server's /metrics. */
  readonly heapAfter60sMiB: number | null;
  readonly serverCpuSeconds: number;
}

/** Let the server finish starting (code compiled, the registry open) before the first reading. */
const START_SETTLE_MS = 3_000;
const MIB = 1024;

const { values } = parseArgs({ options: { devices: { type: 'string' }, rounds: { type: 'string' }, storms: { type: 'string' }, jemalloc: { type: 'string' }, 'no-pin': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
/** A usage error: the message, exit status 2. */
const usage = (message: string): never => {
  console.error(message);
  process.exit(2);
};
const devices = integerOption(values.devices, 'devices', { fallback: 2000, min: 1, max: 20_000 }, usage);
const rounds = integerOption(values.rounds, 'rounds', { fallback: 2, min: 1, max: 10 }, usage);
const storms = integerOption(values.storms, 'storms', { fallback: 1, min: 1, max: 10 }, usage);
const jemalloc = values.jemalloc ?? DEFAULT_JEMALLOC;
try {
  await access(jemalloc);
} catch {
  console.error(`no jemalloc at ${jemalloc}: apt-get install -y libjemalloc2, or name the library with --jemalloc PATH`);
  process.exit(2);
}

const mib = (kib: number): number => Math.round(kib / MIB);

/** V8's heap size from the server's Prometheus text, in MiB; null when the scrape fails. */
async function heapMiB(metricsPort: number): Promise<number | null> {
  try {
    const samples = parsePrometheusText(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
    const heap = samples.find((sample) => sample.name === 'fleetgate_nodejs_heap_size_total_bytes');
    return heap ? Math.round(heap.value / 1_048_576) : null;
  } catch {
    return null;
  }
}

/** Waits until `ms` after `since` (performance.now()), however late this process runs. */
async function until(since: number, ms: number): Promise<void> {
  const left = since + ms - performance.now();
  if (left > 0) await sleep(left);
}

/** One storm of `devices` new devices against a running server, and its readings. */
async function oneStorm(server: { pid: number; ports: { est: number; mqtt: number; metrics: number } }, dataDir: string, reportDir: string, label: Pick<StormMemory, 'allocator' | 'round' | 'storm'>): Promise<StormMemory> {
  const { pid, ports } = server;
  const rssStart = await readRssKiB(pid);
  const cpuBefore = await readCpuTicks(pid);
  progress(`memory storm: ${label.allocator}, round ${label.round}, storm ${label.storm}: ${devices} devices at once`);
  const duration = `${Math.ceil(Math.max(30, devices / 150) + 5)}s`;
  const sim = parseSimArgs(['--devices', String(devices), '--scenario', 'enroll-storm', '--duration', duration, '--traffic-scale', '0.05', '--est', `https://127.0.0.1:${ports.est}`, '--mqtt', `mqtts://127.0.0.1:${ports.mqtt}`, '--metrics', `http://127.0.0.1:${ports.metrics}/metrics`, '--data', dataDir, '--report', reportDir, '--settle', '120s']);
  if (!sim) throw new Error('unreachable');
  const outcome = await simulate(sim, new Progress(process.stderr, false, 10));
  const ended = performance.now();
  const cpu = cpuBetween(cpuBefore, await readCpuTicks(pid));
  const rssEnd = await readRssKiB(pid);
  const rssPeak = await readPeakRssKiB(pid);
  await until(ended, 10_000);
  const rssAfter10s = await readRssKiB(pid);
  await until(ended, 60_000);
  const rssAfter60s = await readRssKiB(pid);
  return {
    ...label,
    devices,
    connected: outcome.report.totals.connected,
    errors: outcome.report.totals.errors,
    rssStartMiB: mib(rssStart),
    rssPeakMiB: mib(rssPeak),
    rssEndMiB: mib(rssEnd),
    rssAfter10sMiB: mib(rssAfter10s),
    rssAfter60sMiB: mib(rssAfter60s),
    heapAfter60sMiB: await heapMiB(ports.metrics),
    serverCpuSeconds: Math.round(cpu.totalMs / 100) / 10,
  };
}

/** A fresh server with one allocator, and its storms one after the other. */
async function oneServer(allocator: Allocator, round: number, pinning: Pinning): Promise<StormMemory[]> {
  // Holds CA keys: removed on Ctrl-C too (bench/cleanup.ts), the server stopped with it.
  const work = await makeTempDir('bench');
  try {
    const dataDir = join(work, 'data');
    const rootPem = await initStormDataDir(dataDir);
    const env = allocator === 'jemalloc' ? { LD_PRELOAD: jemalloc } : {};
    const { daemon, ports } = await startFleetgateWithPorts(dataDir, rootPem, pinning, env);
    try {
      await sleep(START_SETTLE_MS);
      const readings: StormMemory[] = [];
      for (let storm = 1; storm <= storms; storm++) readings.push(await oneStorm({ pid: daemon.pid, ports }, dataDir, join(work, 'reports'), { allocator, round, storm }));
      return readings;
    } finally {
      await daemon.stop();
    }
  } finally {
    await removeTempDir(work);
  }
}

installCleanupHandlers();
const startedAt = new Date();
const pinning = await pinLoadGenerator(!values['no-pin']);
const runs: StormMemory[] = [];
for (let round = 1; round <= rounds; round++) {
  // ABBA: neither allocator always runs first on a machine whose speed drifts.
  const order: Allocator[] = round % 2 === 1 ? ['glibc', 'jemalloc'] : ['jemalloc', 'glibc'];
  for (const allocator of order) runs.push(...(await oneServer(allocator, round, pinning)));
}
console.log(
  renderTable(
    ['allocator', 'round', 'storm', 'connected', 'errors', 'RSS before', 'peak so far', 'end of storm', '+10 s', '+60 s', 'V8 heap +60 s', 'server CPU'],
    runs.map((run) => [run.allocator, String(run.round), String(run.storm), `${run.connected}/${run.devices}`, String(run.errors), `${run.rssStartMiB} MiB`, `${run.rssPeakMiB} MiB`, `${run.rssEndMiB} MiB`, `${run.rssAfter10sMiB} MiB`, `${run.rssAfter60sMiB} MiB`, run.heapAfter60sMiB === null ? '-' : `${run.heapAfter60sMiB} MiB`, `${run.serverCpuSeconds} s`]),
  ),
);
console.log(`pinning: ${describePinning(pinning)}`);
const path = await writeResults({ benchmark: 'memory-storm', startedAt: startedAt.toISOString(), machine: await describeMachine(), pinning, devices, storms, jemalloc, runs }, startedAt, 'memory-storm');
console.log(`results: ${path}`);
