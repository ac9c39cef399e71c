import { access, constants, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BrokerUnderTest } from '../broker/broker-under-test.ts';
import { warmUpConnects } from '../broker/connect-cost.ts';
import { assertOpenFilesFor } from '../broker/fd-limit.ts';
import { prepareBrokerFleet, type BrokerFleet } from '../broker/fleet.ts';
import { startFleetgateBroker } from '../broker/fleetgate-broker.ts';
import { startNodeTlsFloor } from '../broker/node-tls-floor.ts';
import { MOSQUITTO_BIN, mosquittoVersion, startMosquitto } from '../broker/mosquitto.ts';
import { makeTempDir, removeTempDir } from '../cleanup.ts';
import { findStormCapacity } from '../cluster/capacity.ts';
import type { MachineInfo } from '../machine.ts';
import { PERF_MAP_ARGS } from '../perf-map.ts';
import { describePinning, type Pinning } from '../pinning.ts';
import { readRssKiB } from '../proc-cpu.ts';
import { progress } from '../progress.ts';
import { RESULTS_DIR, writeResults } from '../results.ts';
import { renderTable } from '../table.ts';
import { DeviceLink } from './device-links.ts';
import type { ReconnectBenchOptions } from './options.ts';
import { connectFleet, measureReconnectCost, runReconnectStorm, type ReconnectCost, type StormOutcome } from './phases.ts';
import { describeCapacity, loadGeneratorWarnings, RECONNECT_TABLE_HEADERS, RECONNECT_TARGETS, reconnectTableRows, stormChart, summarizeReconnect, type BrokerReconnectResult } from './summary.ts';

/** Untimed connect cycles after each broker starts (JIT, TLS and allocator warm-up), 32 at a time. */
const WARMUP_CONNECTS = 300;
/** With the whole fleet held, before RSS is read: let the broker finish what connecting started. */
const HOLD_SETTLE_MS = 2_000;
/**
 * The connection rate limit would refuse the capacity search's upper steps; the storm itself
 * runs with every default (shedding on, as shipped).
 */
const SEARCH_LIMITS = { connectionsPerSecond: 100_000, connectionBurst: 100_000 } as const;

/** The chart of both storms, beside the JSON. */
const CHART_FILE = 'reconnect-storm.svg';

/**
 * fleetgate's full-handshake capacity: the highest open-loop rate of fresh devices (no session)
 * a fresh server with shedding off serves with every device connected and CONNACK p99 <= 500 ms.
 */
async function searchCapacity(fleet: BrokerFleet, pinning: Pinning, options: ReconnectBenchOptions): Promise<{ perSecond: number; source: string; steps: unknown; lateSteps: unknown }> {
  const broker = await startFleetgateBroker({ fleet, pinning, limits: SEARCH_LIMITS, why: 'capacity search: the rate limit must not refuse the steps' });
  try {
    progress(`fleetgate capacity search: pid ${broker.daemon.pid}, port ${broker.address.port}`);
    await warmUpConnects(broker, fleet.devices, WARMUP_CONNECTS, 32);
    const search = await findStormCapacity('fleetgate full handshakes', broker, fleet.devices, options.search, undefined);
    if (search.capacityPerSecond === 0) throw new Error(`fleetgate: the capacity search's first step failed (${search.stoppedBy})`);
    return { perSecond: search.capacityPerSecond, source: describeCapacity(search), steps: search.steps, lateSteps: search.lateSteps };
  } finally {
    await broker.daemon.stop();
  }
}

function describeCost(label: string, cost: ReconnectCost): void {
  const failed = Object.entries(cost.failures);
  progress(
    `${label}: ${cost.kind} reconnects of ${cost.devices} devices at ${cost.rate}/s: ${cost.succeeded} connected (${cost.resumed} resumed)` +
      `${failed.length > 0 ? `, failed ${JSON.stringify(cost.failures)}` : ''}, ${cost.serverCpuMsPerConnect.toFixed(2)} ms server CPU each, CONNACK p99 ${cost.connackMs.p99.toFixed(0)} ms`,
  );
}

function describeStorm(label: string, storm: StormOutcome): void {
  progress(
    `${label}: storm ${storm.connected}/${storm.devices} connected after ${(storm.allConnectedAfterMs / 1000).toFixed(1)} s, ${storm.attempts} attempts (${storm.shed} shed), ` +
      `admitted CONNACK p99 ${storm.admittedConnackMs.p99.toFixed(0)} ms, errors ${JSON.stringify(storm.errors)}, ${storm.resumed} resumed, ${storm.serverCpuMsPerDevice.toFixed(2)} ms server CPU per device`,
  );
}

/** What one server went through without the storm (the Node TLS floor runs only this far). */
type CostPhases = Omit<BrokerReconnectResult, 'broker' | 'storm'>;

/**
 * Fill and the full and resumed reconnect phases, then (`stormRate` given) the storm: `devices`
 * connected, the first `costDevices` of them measured, all of them in the storm.
 */
async function measureServer(broker: BrokerUnderTest, fleet: BrokerFleet, devices: number, options: ReconnectBenchOptions): Promise<{ phases: CostPhases; links: DeviceLink[] }> {
  const label = broker.kind;
  const links = fleet.devices.slice(0, devices).map((identity, index) => new DeviceLink(index, identity, devices));
  await warmUpConnects(broker, fleet.devices, WARMUP_CONNECTS, 32);
  const rssBeforeKiB = await readRssKiB(broker.daemon.pid);
  progress(`${label} (pid ${broker.daemon.pid}): connecting ${links.length} devices (full handshakes, ${options.fillConcurrency} at a time)`);
  const fill = await connectFleet(broker, links, options.fillConcurrency);
  await sleep(HOLD_SETTLE_MS);
  const rssPerHeldConnectionKiB = ((await readRssKiB(broker.daemon.pid)) - rssBeforeKiB) / links.length;
  const sessionsKept = links.filter((link) => link.session !== undefined).length;
  progress(`${label}: ${links.length} connected in ${(fill.wallMs / 1000).toFixed(1)} s, ${sessionsKept} sessions kept, RSS ${rssPerHeldConnectionKiB.toFixed(1)} KiB per connection`);
  const costLinks = links.slice(0, options.costDevices);
  const full = await measureReconnectCost(broker, costLinks, options.costRate, 'full');
  describeCost(label, full);
  const resumed = await measureReconnectCost(broker, costLinks, options.costRate, 'resumed');
  describeCost(label, resumed);
  return { phases: { settings: broker.settings, fill: { ...fill, sessionsKept }, rssPerHeldConnectionKiB, full, resumed }, links };
}

/** The bare Node TLS server's full and resumed reconnects: what fleetgate cannot go below. */
async function measureFloor(broker: BrokerUnderTest, fleet: BrokerFleet, options: ReconnectBenchOptions): Promise<CostPhases> {
  let links: DeviceLink[] = [];
  try {
    // The whole fleet held, as the brokers hold it: the heap (and its collections) the same size.
    const measured = await measureServer(broker, fleet, options.devices, options);
    links = measured.links;
    return measured.phases;
  } finally {
    for (const link of links) link.drop();
    await broker.daemon.stop();
  }
}

/** One broker through the whole sequence: fill, full and resumed reconnect phases, the storm. */
async function measureBroker(broker: BrokerUnderTest, fleet: BrokerFleet, stormRate: number, options: ReconnectBenchOptions): Promise<BrokerReconnectResult> {
  const label = broker.kind;
  let links: DeviceLink[] = [];
  try {
    const measured = await measureServer(broker, fleet, options.devices, options);
    links = measured.links;
    progress(`${label}: dropping all ${links.length} connections at once; they come back at ${stormRate}/s`);
    const storm = await runReconnectStorm(broker, links, stormRate, options.stormDeadlineSeconds * 1000);
    describeStorm(label, storm);
    if (broker.daemon.exited()) throw new Error(`${label} exited during the run:\n${broker.daemon.outputTail()}`);
    return { broker: broker.kind === 'mosquitto' ? 'mosquitto' : 'fleetgate', ...measured.phases, storm };
  } finally {
    for (const link of links) link.drop();
    await broker.daemon.stop();
  }
}

/**
 * The reconnect-storm benchmark (issue 14): fleetgate's full-handshake capacity, then for
 * fleetgate (shipped defaults, shedding on) and mosquitto in turn: the whole fleet connected,
 * the CPU of a full and of a resumed reconnect, and a storm of every device dropped at once and
 * coming back at a multiple of that capacity, offering its TLS session and retrying with the
 * device SDK's backoff when shed. Table on stdout, JSON and an SVG chart in bench/results.
 */
export async function runReconnectBenchmark(
  options: ReconnectBenchOptions,
  context: {
    readonly pinning: Pinning;
    readonly machine: MachineInfo;
    /** `--cpu-prof`: the fleetgate under measurement (not the capacity search's) writes its profile here. */
    readonly cpuProfileDir?: string;
    /** `--perf-map`: the fleetgate under measurement and the Node TLS floor write perf maps (bench/perf-map.ts). */
    readonly perfMap?: boolean;
  },
): Promise<number> {
  const startedAt = new Date();
  await access(MOSQUITTO_BIN, constants.X_OK).catch(() => {
    throw new Error(`${MOSQUITTO_BIN} not found: install the Debian package mosquitto (apt-get install mosquitto)`);
  });
  const openFiles = await assertOpenFilesFor(options.devices);
  const mosquitto = mosquittoVersion();
  progress(`reconnect-storm benchmark: fleetgate vs ${mosquitto}, ${options.devices} devices; ${describePinning(context.pinning)}; open-files limit ${openFiles}`);
  const dir = await makeTempDir('bench');
  try {
    const fleetSize = Math.max(options.devices, Math.ceil(options.search.maxRate * options.search.stepSeconds), WARMUP_CONNECTS);
    const fleet = await prepareBrokerFleet(dir, fleetSize, context.pinning);
    const capacity = options.capacity === undefined ? await searchCapacity(fleet, context.pinning, options) : { perSecond: options.capacity, source: 'given with --capacity', steps: [], lateSteps: [] };
    const stormRate = Math.max(1, Math.round((capacity.perSecond * options.ratePercent) / 100));
    progress(`fleetgate full-handshake capacity ${capacity.perSecond}/s (${capacity.source}); storm rate ${stormRate}/s (${options.ratePercent} %)`);

    const fleetgateBroker = await startFleetgateBroker({ fleet, pinning: context.pinning, limits: {}, listeners: 'defaults', why: 'shipped defaults', cpuProfileDir: context.cpuProfileDir, nodeArgs: context.perfMap ? PERF_MAP_ARGS : [] });
    const fleetgate = await measureBroker(fleetgateBroker, fleet, stormRate, options);
    const floor = await measureFloor(await startNodeTlsFloor({ fleet, pinning: context.pinning, nodeArgs: context.perfMap ? PERF_MAP_ARGS : [] }), fleet, options);
    const mosquittoBroker = await startMosquitto({ dir, fleet, pinning: context.pinning });
    const mosquittoResult = await measureBroker(mosquittoBroker, fleet, stormRate, options);

    const summary = summarizeReconnect(capacity, stormRate, fleetgate, mosquittoResult);
    process.stdout.write(`\nReconnect storm: fleetgate vs ${mosquitto}\n\n${renderTable(RECONNECT_TABLE_HEADERS, reconnectTableRows(summary, fleetgate, mosquittoResult, floor))}\n\n`);
    for (const warning of loadGeneratorWarnings([fleetgate, mosquittoResult])) process.stdout.write(`${warning}\n`);
    process.stdout.write(`capacity: ${capacity.source}\n`);
    process.stdout.write(`fleetgate: ${fleetgate.settings.join('; ')}\nNode TLS floor: ${floor.settings.join('; ')}\nmosquitto: ${mosquittoResult.settings.join('; ')}\n`);
    const chartPath = join(RESULTS_DIR, CHART_FILE);
    // Before writeResults, which creates the directory too: a fresh checkout has none.
    await mkdir(RESULTS_DIR, { recursive: true });
    await writeFile(chartPath, stormChart(fleetgate.storm, mosquittoResult.storm));
    const path = await writeResults(
      { benchmark: 'reconnect', startedAt: startedAt.toISOString(), machine: context.machine, mosquittoVersion: mosquitto, options, cpuProfiled: context.cpuProfileDir !== undefined, pinning: context.pinning, targets: RECONNECT_TARGETS, capacity, summary, fleetgate, nodeTlsFloor: floor, mosquitto: mosquittoResult },
      startedAt,
      'reconnect',
    );
    progress(`results: ${path} (and bench/results/latest-reconnect.json), chart ${chartPath}`);
    if (context.cpuProfileDir) progress(`fleetgate CPU profile: ${context.cpuProfileDir} (its figures above include the profiler's overhead)`);
    return summary.stormMet ? 0 : 1;
  } finally {
    await removeTempDir(dir);
  }
}
