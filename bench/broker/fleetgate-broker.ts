import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startDaemon } from '../daemon.ts';
import { FLEETGATE_BIN } from '../fleetgate-cli.ts';
import { freePorts } from '../free-port.ts';
import { serverCommand, type Pinning } from '../pinning.ts';
import { readCommand } from '../proc-cpu.ts';
import { waitForConnack, type BrokerUnderTest } from './broker-under-test.ts';
import type { BrokerFleet } from './fleet.ts';

/** `broker.limits` settings the benchmark may change (names as in server/src/config/config.ts). */
export type BrokerLimitOverrides = Readonly<Partial<Record<'messagesPerSecond' | 'messageBurst' | 'connectionsPerSecond' | 'connectionBurst', number>>>;

/** The defaults of those settings (DEFAULT_CONFIG in server/src/config/config.ts), for the report. */
const LIMIT_DEFAULTS: Readonly<Record<keyof BrokerLimitOverrides, number>> = {
  messagesPerSecond: 500,
  messageBurst: 1000,
  connectionsPerSecond: 2000,
  connectionBurst: 4000,
};

/**
 * `listeners` settings of every benchmark run (defaults: 10 s, 1024, 64, 500 ms, 128 in
 * server/src/config/schema.ts). Load shedding is off (`shedPendingConnections` out of reach,
 * `shedEventLoopDelayMs` 0): the storms measure how far a broker's queue grows, and a capacity
 * search must see the queue, not a refusal.
 */
export const BENCH_LISTENER_LIMITS = {
  handshakeTimeoutMs: 120_000,
  maxPendingConnections: 100_000,
  shedPendingConnections: 100_000,
  shedEventLoopDelayMs: 0,
  maxPendingPerAddress: 100_000,
} as const;

/**
 * Writes `broker.limits` overrides into `<data>/config.json` (the file `fleetgate init` wrote;
 * the server reads it at start). Every other setting stays as init wrote it. Returns one line
 * per change, for the table and the JSON: which limit, from what, to what.
 */
export async function setBrokerLimits(dataDir: string, overrides: BrokerLimitOverrides, listenerLimits: 'bench' | 'defaults' = 'bench', listenerOverrides: Readonly<Record<string, number>> = {}): Promise<string[]> {
  const path = join(dataDir, 'config.json');
  const config = JSON.parse(await readFile(path, 'utf8')) as { broker?: { limits?: Record<string, unknown> } };
  const broker = (config.broker ??= {});
  const limits = (broker.limits ??= {});
  const changes: string[] = [];
  for (const key of Object.keys(LIMIT_DEFAULTS) as (keyof BrokerLimitOverrides)[]) {
    const value = overrides[key] ?? LIMIT_DEFAULTS[key];
    limits[key] = value;
    if (value !== LIMIT_DEFAULTS[key]) changes.push(`broker.limits.${key} ${LIMIT_DEFAULTS[key]} -> ${value}`);
  }
  // Unfinished connections (the listener guard): a storm comes from a few source addresses and
  // queues for longer than the production timeout when it exceeds one core's capacity. The
  // benchmark measures the broker's queueing, so the guard is opened wide and says so.
  // With `defaults` (the reconnect storm measures shedding as shipped) they are taken out again.
  const listeners = ((config as { listeners?: Record<string, unknown> }).listeners ??= {});
  for (const [key, value] of Object.entries(BENCH_LISTENER_LIMITS)) {
    if (listenerLimits === 'defaults') {
      delete listeners[key];
      continue;
    }
    listeners[key] = value;
    changes.push(`listeners.${key} -> ${value}`);
  }
  // Then the caller's own listener settings (tuning a shedding threshold), on top of either.
  for (const [key, value] of Object.entries(listenerOverrides)) {
    listeners[key] = value;
    changes.push(`listeners.${key} -> ${value}`);
  }
  await writeFile(path, `${JSON.stringify(config, null, 2)}\n`);
  return changes;
}

/**
 * Starts `node server/bin/fleetgate.js serve` on the fleet's data directory with every listener
 * on a free loopback port, pinned when pinning applies, warn-level logs (info logs a line per
 * connection, which would be measured), and waits for a CONNACK on its MQTT listener: the EST
 * listener comes up first, so EST readiness would not prove the broker is listening.
 */
export async function startFleetgateBroker(options: {
  readonly fleet: BrokerFleet;
  readonly pinning: Pinning;
  readonly limits: BrokerLimitOverrides;
  /** Why the limits differ from the defaults, appended to each change in the report. */
  readonly why: string;
  readonly cpuProfileDir?: string;
  /** More node flags for the server process (`--heapsnapshot-signal=...`). */
  readonly nodeArgs?: readonly string[];
  /** `bench` (the default): shedding off and the listener guard opened wide; `defaults`: as shipped. */
  readonly listeners?: 'bench' | 'defaults';
  /** `listeners` settings written on top of that (tuning a shedding threshold), each reported as a change. */
  readonly listenerOverrides?: Readonly<Record<string, number>>;
}): Promise<BrokerUnderTest> {
  const changes = await setBrokerLimits(options.fleet.dataDir, options.limits, options.listeners, options.listenerOverrides);
  const [estPort, mqttPort, adminPort, metricsPort] = (await freePorts(4)).map(String);
  if (mqttPort === undefined) throw new Error('no free port');
  const nodeArgs = [...(options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`] : []), ...(options.nodeArgs ?? [])];
  const ports = ['--est-port', estPort, '--mqtt-port', mqttPort, '--admin-port', adminPort, '--metrics-port', metricsPort].map(String);
  // process.execPath with the bin script, not npx: the pid must be the server's own.
  const command = serverCommand(options.pinning, process.execPath, [...nodeArgs, FLEETGATE_BIN, 'serve', '--data', options.fleet.dataDir, '--host', '127.0.0.1', ...ports]);
  const daemon = startDaemon('fleetgate serve', command.file, command.args, { ...process.env, FLEETGATE_LOG_LEVEL: 'warn' });
  const address = { host: '127.0.0.1', port: Number(mqttPort) } as const;
  try {
    await waitForConnack(daemon, address, options.fleet.service);
    // setpriv and taskset exec node in place; if the pid still named one of them, /proc would
    // measure the wrong process.
    const comm = await readCommand(daemon.pid);
    if (comm === 'taskset' || comm === 'setpriv') throw new Error(`pid ${daemon.pid} is still ${comm}, not the server`);
  } catch (error) {
    await daemon.stop();
    throw error;
  }
  const settings = changes.length > 0 ? changes.map((change) => `${change} (${options.why})`) : ['default broker.limits'];
  return { kind: 'fleetgate', address, daemon, settings };
}
