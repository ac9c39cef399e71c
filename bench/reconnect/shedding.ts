/**
 * `npm run bench:shedding`: the reconnect storm alone, against fleetgate with the shipped
 * defaults and with other load-shedding settings (`listeners.*`), alternating, and optionally
 * against mosquitto at the same rate (what the load generator itself adds). For tuning the
 * shedding thresholds on one's own hardware; the full benchmark with capacity search, CPU per
 * reconnect and the floor is `npm run bench -- --only reconnect`. Table on stdout, JSON in
 * bench/results/latest-shedding.json.
 */
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { BrokerUnderTest } from '../broker/broker-under-test.ts';
import { warmUpConnects } from '../broker/connect-cost.ts';
import { assertOpenFilesFor } from '../broker/fd-limit.ts';
import { prepareBrokerFleet, type BrokerFleet } from '../broker/fleet.ts';
import { startFleetgateBroker } from '../broker/fleetgate-broker.ts';
import { startMosquitto } from '../broker/mosquitto.ts';
import { installCleanupHandlers, makeTempDir, removeTempDir } from '../cleanup.ts';
import { startDaemon } from '../daemon.ts';
import { freePort } from '../free-port.ts';
import { integerOption } from '../integer-option.ts';
import { describeMachine } from '../machine.ts';
import { describePinning, pinLoadGenerator, type Pinning } from '../pinning.ts';
import { progress } from '../progress.ts';
import { writeResults } from '../results.ts';
import { renderTable } from '../table.ts';
import { waitUntilReady } from '../wait-ready.ts';
import { DeviceLink } from './device-links.ts';
import { connectFleet, runReconnectStorm, type StormOutcome } from './phases.ts';

const HELP = `Usage: npm run bench:shedding -- [--devices N] [--rate R] [--rounds K] [--variant SPEC]... [--rtt MS] [--mosquitto] [--no-pin]

The reconnect storm alone: N devices connected with full handshakes (keeping their TLS
sessions), all dropped at once, back at R/s on an open-loop schedule offering their sessions and
retrying with the device SDK's backoff when shed. Once per round against a fresh fleetgate per
variant, the variants alternating; with --mosquitto, once against mosquitto at the same rate
first (what the load generator alone adds to the latency). Server on CPU 0, load generator on
CPU 1.

  --variant SPEC   NAME or NAME:key=value[,key=value...] with listeners.* settings of config.json,
                   e.g. --variant defaults --variant loop100:shedEventLoopDelayMs=100
                   (default: one variant, "defaults", the shipped settings)
  --rtt MS         the storm goes through a proxy that adds this round trip (a long link: a
                   handshake then waits on the network as it would in the field); the fleet's
                   first connections do not (default 0: no proxy)
Defaults: --devices 10000 --rate 600 --rounds 2.`;

/** The listeners.* settings a variant may change (docs/configuration.md). */
const LISTENER_KEYS = new Set(['shedPendingConnections', 'shedEventLoopDelayMs', 'maxPendingConnections', 'maxPendingPerAddress', 'handshakeTimeoutMs']);
const WARMUP_CONNECTS = 300;
/** Connects at a time before the storm (warm-up 32, filling the fleet 16): never above a variant's shedding threshold, which would shed them. */
const WARMUP_CONCURRENCY = 32;
const FILL_CONCURRENCY = 16;
/** After the fleet is connected, before it is dropped: the broker's connect-time work settles. */
const SETTLE_MS = 2_000;
const STORM_DEADLINE_MS = 300_000;
const LATENCY_PROXY = fileURLToPath(new URL('./latency-proxy.ts', import.meta.url));
/** Loopback addresses the proxy connects to the broker from: 16 x maxPendingPerAddress. */
const PROXY_SOURCES = 16;

interface Variant {
  readonly name: string;
  readonly listeners: Readonly<Record<string, number>>;
}

interface StormRow {
  readonly broker: string;
  readonly round: number;
  readonly storm: StormOutcome;
}

class UsageError extends Error {}

function parseVariant(spec: string): Variant {
  const [name = '', settings] = spec.split(':', 2);
  if (!/^[\w.-]+$/.test(name)) throw new UsageError(`--variant ${spec}: a name of letters, digits, '.', '-' or '_' first`);
  const listeners: Record<string, number> = {};
  for (const pair of settings ? settings.split(',') : []) {
    const [key = '', value = ''] = pair.split('=', 2);
    if (!LISTENER_KEYS.has(key)) throw new UsageError(`--variant ${spec}: ${key} is not one of ${[...LISTENER_KEYS].join(', ')}`);
    if (!/^\d+$/.test(value)) throw new UsageError(`--variant ${spec}: ${key} needs a whole number`);
    listeners[key] = Number(value);
  }
  return { name, listeners };
}

/**
 * The latency proxy in front of `broker`, as a process of its own (it inherits the load
 * generator's CPU); resolves once it listens.
 */
async function startLatencyProxy(broker: BrokerUnderTest, rttMs: number): Promise<{ address: BrokerUnderTest['address']; stop(): Promise<void> }> {
  const port = await freePort();
  const proxy = startDaemon('latency proxy', process.execPath, ['--import', 'tsx', LATENCY_PROXY, String(port), broker.address.host, String(broker.address.port), String(rttMs / 2), String(PROXY_SOURCES)]);
  await waitUntilReady(proxy, async () => (proxy.outputTail().includes('ready') ? undefined : 'not listening yet'), 30_000);
  return { address: { host: '127.0.0.1', port }, stop: () => proxy.stop() };
}

/** The fleet connected (full handshakes, directly), then the storm (through the proxy when `rttMs` > 0); the server stopped after. */
async function stormAgainst(broker: BrokerUnderTest, fleet: BrokerFleet, devices: number, rate: number, rttMs: number, shedAt = Number.POSITIVE_INFINITY): Promise<StormOutcome> {
  const links = fleet.devices.slice(0, devices).map((identity, index) => new DeviceLink(index, identity, devices));
  const proxy = rttMs > 0 ? await startLatencyProxy(broker, rttMs) : undefined;
  try {
    await warmUpConnects(broker, fleet.devices, WARMUP_CONNECTS, Math.min(WARMUP_CONCURRENCY, shedAt));
    await connectFleet(broker, links, Math.min(FILL_CONCURRENCY, shedAt));
    await sleep(SETTLE_MS);
    return await runReconnectStorm(proxy ? { ...broker, address: proxy.address } : broker, links, rate, STORM_DEADLINE_MS);
  } finally {
    for (const link of links) link.drop();
    await proxy?.stop();
    await broker.daemon.stop();
  }
}

const round0 = (value: number): string => value.toFixed(0);

function rowOf(row: StormRow): string[] {
  const { storm } = row;
  return [
    row.broker,
    String(row.round),
    `${storm.connected}/${storm.devices}`,
    `${round0(storm.admittedConnackMs.p50)} / ${round0(storm.admittedConnackMs.p99)} ms`,
    `${round0(storm.admittedConnackFromStartMs.p99)} ms`,
    `${storm.shed} of ${storm.attempts}`,
    `${(storm.allConnectedAfterMs / 1000).toFixed(1)} s`,
    `${round0(storm.loadStartLagMs.p99)} ms`,
    storm.serverCores.toFixed(2),
    storm.loadCores.toFixed(2),
    String(Object.values(storm.errors).reduce((sum, count) => sum + count, 0)),
  ];
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { devices: { type: 'string' }, rate: { type: 'string' }, rounds: { type: 'string' }, variant: { type: 'string', multiple: true }, rtt: { type: 'string' }, mosquitto: { type: 'boolean' }, 'no-pin': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const usage = (message: string): Error => new UsageError(message);
  const devices = integerOption(values.devices, 'devices', { fallback: 10_000, min: 1, max: 50_000 }, usage);
  const rate = integerOption(values.rate, 'rate', { fallback: 600, min: 1, max: 5_000 }, usage);
  const rounds = integerOption(values.rounds, 'rounds', { fallback: 2, min: 1, max: 10 }, usage);
  const rttMs = integerOption(values.rtt, 'rtt', { fallback: 0, min: 0, max: 10_000 }, usage);
  const variants = (values.variant ?? ['defaults']).map(parseVariant);
  if (new Set(variants.map((variant) => variant.name)).size !== variants.length) throw new UsageError('--variant names must differ');

  const startedAt = new Date();
  const pinning: Pinning = await pinLoadGenerator(!values['no-pin']);
  await assertOpenFilesFor(devices);
  progress(`shedding benchmark: ${devices} devices back at ${rate}/s${rttMs > 0 ? ` through a ${rttMs} ms round trip` : ''}; variants ${variants.map((variant) => variant.name).join(', ')}; ${describePinning(pinning)}`);
  const dir = await makeTempDir('bench');
  const rows: StormRow[] = [];
  try {
    const fleet = await prepareBrokerFleet(dir, Math.max(devices, WARMUP_CONNECTS), pinning);
    if (values.mosquitto) rows.push({ broker: 'mosquitto', round: 1, storm: await stormAgainst(await startMosquitto({ dir, fleet, pinning }), fleet, devices, rate, rttMs) });
    for (let round = 1; round <= rounds; round++) {
      // ABBA over the rounds: no variant always runs first on a machine whose speed drifts.
      const order = round % 2 === 1 ? variants : [...variants].reverse();
      for (const variant of order) {
        progress(`round ${round}: fleetgate ${variant.name}`);
        const broker = await startFleetgateBroker({ fleet, pinning, limits: {}, listeners: 'defaults', listenerOverrides: variant.listeners, why: `variant ${variant.name}` });
        rows.push({ broker: `fleetgate ${variant.name}`, round, storm: await stormAgainst(broker, fleet, devices, rate, rttMs, variant.listeners.shedPendingConnections) });
      }
    }
  } finally {
    await removeTempDir(dir);
  }
  console.log(
    renderTable(
      ['server', 'round', 'connected', 'admitted CONNACK p50 / p99', 'p99 from actual start', 'shed of attempts', 'all connected after', 'load generator start lag p99', 'server cores', 'load generator cores', 'errors'],
      rows.map(rowOf),
    ),
  );
  for (const variant of variants) console.log(`${variant.name}: ${Object.entries(variant.listeners).map(([key, value]) => `listeners.${key} ${value}`).join(', ') || 'shipped defaults'}`);
  const path = await writeResults({ benchmark: 'shedding', startedAt: startedAt.toISOString(), machine: await describeMachine(), pinning, devices, rate, rttMs, variants, rows }, startedAt, 'shedding');
  console.log(`results: ${path}`);
  return 0;
}

installCleanupHandlers();
main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof UsageError ? error.message : error);
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
