import type { Pinning } from '../pinning.ts';
import { progress } from '../progress.ts';
import { waitForQuietMachine } from '../quiet.ts';
import type { BrokerKind, BrokerUnderTest } from './broker-under-test.ts';
import { measureConnectCost, warmUpConnects, type ConnectCostResult } from './connect-cost.ts';
import type { BrokerFleet } from './fleet.ts';
import { startFleetgateBroker, type BrokerLimitOverrides } from './fleetgate-broker.ts';
import { startMosquitto } from './mosquitto.ts';
import { startNodeTlsFloor } from './node-tls-floor.ts';
import type { BrokerBenchOptions } from './options.ts';
import { runOverload, type OverloadResult } from './overload.ts';
import { runStorm, type StormResult } from './storm.ts';
import { measureThroughput, type ThroughputResult } from './throughput.ts';

/** Everything one broker did in one repetition. */
export interface BrokerRun {
  readonly kind: BrokerKind;
  /** Pid of the broker measured in the storm, connect and throughput phases. */
  readonly pid: number;
  /** What differs from the broker's defaults, for those phases and for the overload test. */
  readonly settings: readonly string[];
  readonly overloadSettings: readonly string[];
  readonly storm: StormResult;
  readonly connect: ConnectCostResult;
  readonly throughput: ThroughputResult;
  readonly overload: OverloadResult;
  /** Busy cores in the second before each timed phase: connects, storm, throughput. */
  readonly busyCoresBefore: readonly number[];
}

/** The bare Node TLS server under the same storm and connect cycles: fleetgate's floor. */
export interface FloorRun {
  readonly storm: StormResult;
  readonly connect: ConnectCostResult;
}

/** One repetition: both brokers, each fresh, under the same load, then the Node TLS floor. */
export interface Repetition {
  readonly index: number;
  /** Which broker went first (alternated, so a drifting machine does not favour one). */
  readonly order: readonly BrokerKind[];
  readonly fleetgate: BrokerRun;
  readonly mosquitto: BrokerRun;
  readonly floor: FloorRun;
}

/** How long a phase waits for other processes to stop using the CPU (the machine is shared). */
const QUIET_WAIT_MS = 60_000;

/**
 * fleetgate's per-client message limit (500/s, burst 1000) would cap 20 publishers at 10,000
 * messages/s: the throughput phase would measure the limit, not the broker. It is lifted for
 * the storm, connect and throughput phases and left at its default for the overload test, where
 * its backpressure is the behaviour under test. The connection rate limit (2000/s, burst 4000)
 * stays unless the storm rate asks for more than half of it.
 */
export function mainLimits(options: BrokerBenchOptions): BrokerLimitOverrides {
  return {
    messagesPerSecond: 1_000_000,
    messageBurst: 1_000_000,
    ...(options.stormRate * 2 > 2000 ? { connectionsPerSecond: options.stormRate * 2, connectionBurst: options.stormRate * 4 } : {}),
  };
}

const MAIN_WHY = 'so the QoS 1 phase measures the broker, not the per-client limit; the overload test keeps the defaults';

function check(broker: BrokerUnderTest, phase: string): void {
  if (broker.daemon.exited()) throw new Error(`${broker.kind} exited during the ${phase}:\n${broker.daemon.outputTail()}`);
}

async function start(kind: BrokerKind, purpose: 'main' | 'overload', context: RepetitionContext): Promise<BrokerUnderTest> {
  if (kind === 'mosquitto') return startMosquitto({ dir: context.dir, fleet: context.fleet, pinning: context.pinning });
  return startFleetgateBroker({
    fleet: context.fleet,
    pinning: context.pinning,
    limits: purpose === 'main' ? mainLimits(context.options) : {},
    why: MAIN_WHY,
    // Only the measured broker is profiled; the overload test would swamp its profile.
    cpuProfileDir: purpose === 'main' ? context.cpuProfileDir : undefined,
  });
}

/** What every repetition shares. */
export interface RepetitionContext {
  readonly fleet: BrokerFleet;
  readonly options: BrokerBenchOptions;
  readonly pinning: Pinning;
  /** Where generated broker configurations go. */
  readonly dir: string;
  readonly cpuProfileDir: string | undefined;
}

/**
 * One broker through every phase: a fresh broker, warm-up connect cycles, the connect cycles,
 * the storm (RSS read with everything held), QoS 1 throughput; then a second fresh broker for
 * the overload test, which floods at twice the capacity just measured. The connect cycles come
 * before the storm: after 10,000 connections have been held and released, a new TLS socket
 * costs a Node server more for a while (creating its TLS handle went from ~15 us to ~350 us in a
 * profile, with no handle or heap retained and RSS staying up), which would charge the storm's
 * aftermath to the connect figure.
 */
async function measureBroker(kind: BrokerKind, context: RepetitionContext, label: string): Promise<BrokerRun> {
  const { fleet, options } = context;
  const broker = await start(kind, 'main', context);
  const busyCoresBefore: number[] = [];
  let storm: StormResult;
  let connect: ConnectCostResult;
  let throughput: ThroughputResult;
  try {
    progress(`${label} ${kind}: pid ${broker.daemon.pid} on ${broker.address.host}:${broker.address.port}; ${options.warmup} warm-up connects`);
    await warmUpConnects(broker, fleet.devices, options.warmup, options.concurrency);

    busyCoresBefore.push(await waitForQuietMachine(QUIET_WAIT_MS));
    progress(`${label} ${kind}: ${options.connects} connect cycles, ${options.concurrency} clients`);
    connect = await measureConnectCost(broker, fleet.devices, { connects: options.connects, concurrency: options.concurrency });
    check(broker, 'connect cycles');
    progress(`${label} ${kind}: ${connect.brokerCpuMsPerConnect.toFixed(3)} ms broker CPU per connect, ${connect.connectsPerSecond.toFixed(0)} connects/s`);

    busyCoresBefore.push(await waitForQuietMachine(QUIET_WAIT_MS));
    progress(`${label} ${kind}: storm of ${options.stormDevices} devices at ${options.stormRate}/s`);
    const held = await runStorm(broker, fleet.devices, { devices: options.stormDevices, rate: options.stormRate });
    storm = held.result;
    check(broker, 'storm');
    progress(
      `${label} ${kind}: storm ${storm.succeeded}/${storm.devices} connected, CONNACK p50 ${storm.connackMs.p50.toFixed(1)} ms p99 ${storm.connackMs.p99.toFixed(1)} ms, ` +
        `${storm.rssPerConnectionKiB.toFixed(1)} KiB RSS per held connection`,
    );
    await held.release();

    busyCoresBefore.push(await waitForQuietMachine(QUIET_WAIT_MS));
    progress(`${label} ${kind}: QoS 1, ${options.publishers} publishers x ${options.window} in flight, ${options.throughputSeconds} s`);
    throughput = await measureThroughput(broker, fleet.devices, { publishers: options.publishers, window: options.window, seconds: options.throughputSeconds });
    check(broker, 'throughput phase');
    progress(`${label} ${kind}: ${throughput.messagesPerSecond.toFixed(0)} QoS 1 msgs/s (load generator ${throughput.loadCpuUtilisation.toFixed(2)} cores)`);
  } finally {
    await broker.daemon.stop();
  }

  const overloadBroker = await start(kind, 'overload', context);
  let overload: OverloadResult;
  try {
    await waitForQuietMachine(QUIET_WAIT_MS);
    progress(`${label} ${kind}: overload, QoS 0 at ${(2 * throughput.messagesPerSecond).toFixed(0)} msgs/s from ${options.floodClients} clients for ${options.overloadSeconds} s (fresh broker, pid ${overloadBroker.daemon.pid})`);
    const flooders = fleet.devices.slice(options.publishers, options.publishers + options.floodClients);
    const fresh = fleet.devices[options.publishers + options.floodClients];
    if (!fresh) throw new Error('the fleet is too small for the overload test');
    overload = await runOverload(overloadBroker, { flooders, fresh, service: fleet.service }, { capacityPerSecond: throughput.messagesPerSecond, seconds: options.overloadSeconds });
    progress(
      `${label} ${kind}: overload accepted ${overload.deliveredPerSecond.toFixed(0)} msgs/s, ${(overload.blockedShare * 100).toFixed(0)} % of offered blocked, ` +
        `broker ${overload.brokerAlive ? 'alive' : 'DEAD'}, fresh client ${overload.freshClient.failure ?? 'ok'}`,
    );
  } finally {
    await overloadBroker.daemon.stop();
  }
  return { kind, pid: broker.daemon.pid, settings: broker.settings, overloadSettings: overloadBroker.settings, storm, connect, throughput, overload, busyCoresBefore };
}

/** The connect cycles and the storm against the bare Node TLS server, fresh, like a broker's. */
async function measureFloor(context: RepetitionContext, label: string): Promise<FloorRun> {
  const { fleet, options } = context;
  const floor = await startNodeTlsFloor({ fleet, pinning: context.pinning });
  try {
    progress(`${label} node TLS floor: pid ${floor.daemon.pid}; storm and connect cycles against a bare Node TLS server`);
    await warmUpConnects(floor, fleet.devices, options.warmup, options.concurrency);
    await waitForQuietMachine(QUIET_WAIT_MS);
    const connect = await measureConnectCost(floor, fleet.devices, { connects: options.connects, concurrency: options.concurrency });
    check(floor, 'connect cycles');
    await waitForQuietMachine(QUIET_WAIT_MS);
    const held = await runStorm(floor, fleet.devices, { devices: options.stormDevices, rate: options.stormRate });
    check(floor, 'storm');
    await held.release();
    progress(`${label} node TLS floor: ${connect.brokerCpuMsPerConnect.toFixed(3)} ms CPU per connect, ${held.result.rssPerConnectionKiB.toFixed(1)} KiB RSS per held connection`);
    return { storm: held.result, connect };
  } finally {
    await floor.daemon.stop();
  }
}

/** One repetition: both brokers, the first one alternating between repetitions, then the floor. */
export async function runRepetition(index: number, count: number, context: RepetitionContext): Promise<Repetition> {
  const label = `run ${index + 1}/${count}`;
  const order: BrokerKind[] = index % 2 === 0 ? ['fleetgate', 'mosquitto'] : ['mosquitto', 'fleetgate'];
  const runs = new Map<BrokerKind, BrokerRun>();
  for (const kind of order) runs.set(kind, await measureBroker(kind, context, label));
  const fleetgate = runs.get('fleetgate');
  const mosquitto = runs.get('mosquitto');
  if (!fleetgate || !mosquitto) throw new Error('a broker was not measured');
  return { index, order, fleetgate, mosquitto, floor: await measureFloor(context, label) };
}
