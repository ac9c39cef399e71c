/**
 * `npm run bench:memory`: where a held MQTT connection's memory goes, fleetgate's broker against
 * the bare Node TLS server that is its floor (bench/broker/node-tls-floor-server.ts). For each:
 * RSS per held connection (one pass, read with half and with all of them held, and split by
 * mapping), then the JS heap per held connection by kind, from two V8 heap snapshots
 * (`--heapsnapshot-signal`) taken before and with the connections held (a second pass: a
 * snapshot itself grows RSS). Table on stdout, JSON in bench/results/latest-memory.json.
 */
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { BrokerUnderTest } from '../broker/broker-under-test.ts';
import { warmUpConnects } from '../broker/connect-cost.ts';
import { assertOpenFilesFor } from '../broker/fd-limit.ts';
import { prepareBrokerFleet, type BrokerFleet } from '../broker/fleet.ts';
import { startFleetgateBroker } from '../broker/fleetgate-broker.ts';
import { openConnection, type MqttConnection } from '../broker/mqtt-connection.ts';
import { startNodeTlsFloor } from '../broker/node-tls-floor.ts';
import { sourceAddress } from '../broker/source-addresses.ts';
import { installCleanupHandlers, makeTempDir, removeTempDir } from '../cleanup.ts';
import { describeMachine } from '../machine.ts';
import { describePinning, pinLoadGenerator, type Pinning } from '../pinning.ts';
import { readRssKiB } from '../proc-cpu.ts';
import { progress } from '../progress.ts';
import { writeResults } from '../results.ts';
import { renderTable } from '../table.ts';
import { heapBytes, heapDifference, summarizeHeapSnapshot, type HeapKind } from './heap-summary.ts';
import { readResidentByMapping, residentPerConnection, type ResidentByMapping } from './smaps.ts';

const HELP = `Usage: npm run bench:memory -- [--connections N] [--top K] [--no-pin]

Holds N MQTT connections (mTLS, CONNECT, CONNACK) to fleetgate's broker and then to a bare Node
TLS server with the broker's TLS settings (the floor), and reports each one's RSS per held
connection (and what each of the second half of them added: the cost of one more connection,
without what the process grows once) and its JS heap per held connection by kind (V8 heap
snapshots before and with the connections held), the K kinds that differ most first.
Defaults: --connections 2000 --top 30.`;

type ServerKind = 'fleetgate' | 'floor';

/** What one server measured. */
interface MemoryReading {
  readonly held: number;
  readonly rssPerConnectionKiB: number;
  /**
   * RSS added by the second half of the connections, per connection: what one more held
   * connection costs, apart from the first half, where what the process grows once at the
   * first connections (code compiled, V8's young generation sized up) would land.
   */
  readonly marginalRssPerConnectionKiB: number;
  /** The RSS per held connection by mapping: malloc's main arena against V8's heap and the rest. */
  readonly rssByMapping: ResidentByMapping;
  readonly heapPerConnectionKiB: number;
  readonly heapByKind: Record<string, HeapKind>;
}

const WARMUP_CONNECTS = 300;
/** Let the server finish what the connections started (timers, GC) before RSS or a snapshot is read. */
const SETTLE_MS = 3_000;

async function start(kind: ServerKind, fleet: BrokerFleet, pinning: Pinning, nodeArgs: readonly string[]): Promise<BrokerUnderTest> {
  if (kind === 'floor') return startNodeTlsFloor({ fleet, pinning, nodeArgs });
  return startFleetgateBroker({ fleet, pinning, nodeArgs, limits: { connectionsPerSecond: 100_000, connectionBurst: 100_000 }, why: 'so holding the connections is not rate limited' });
}

/** Opens connections `from` to `to - 1` of the fleet's devices, 50 at a time, and keeps those that got CONNACK 0. */
async function hold(broker: BrokerUnderTest, fleet: BrokerFleet, from: number, to: number): Promise<MqttConnection[]> {
  const held: MqttConnection[] = [];
  for (let first = from; first < to; first += 50) {
    const batch = fleet.devices.slice(first, Math.min(to, first + 50));
    const opened = await Promise.all(
      batch.map((identity, index) =>
        openConnection(broker.address, identity, { keepaliveSeconds: 600, timeoutMs: 30_000, serverCheck: 'chain', localAddress: sourceAddress(first + index, fleet.devices.length) }),
      ),
    );
    for (const result of opened) if (result.ok) held.push(result.connection);
  }
  if (held.length < to - from) progress(`${to - from - held.length} of ${to - from} connections failed`);
  return held;
}

/** Sends the snapshot signal and waits for the new snapshot file to be complete. */
async function heapSnapshot(pid: number, dir: string): Promise<string> {
  const before = new Set(await readdir(dir));
  process.kill(pid, 'SIGUSR2');
  const deadline = performance.now() + 120_000;
  while (performance.now() < deadline) {
    await sleep(250);
    const fresh = (await readdir(dir)).find((name) => !before.has(name) && name.endsWith('.heapsnapshot'));
    if (!fresh) continue;
    const path = join(dir, fresh);
    // V8 writes the file in one go; it is complete when its size stops changing.
    let size = -1;
    for (let current = (await stat(path)).size; current !== size || current === 0; current = (await stat(path)).size) {
      size = current;
      await sleep(500);
    }
    return path;
  }
  throw new Error(`no heap snapshot from pid ${pid} within 120 s`);
}

async function measure(kind: ServerKind, fleet: BrokerFleet, pinning: Pinning, count: number, snapshotDir: string): Promise<MemoryReading> {
  // Pass 1: RSS alone.
  const plain = await start(kind, fleet, pinning, []);
  let held: MqttConnection[];
  let rssPerConnectionKiB: number;
  let marginalRssPerConnectionKiB: number;
  let rssByMapping: ResidentByMapping;
  try {
    await warmUpConnects(plain, fleet.devices, WARMUP_CONNECTS, 16);
    await sleep(SETTLE_MS);
    const mappingsBefore = await readResidentByMapping(plain.daemon.pid);
    const rssBefore = await readRssKiB(plain.daemon.pid);
    const half = Math.floor(count / 2);
    const firstHalf = await hold(plain, fleet, 0, half);
    await sleep(SETTLE_MS);
    const rssHalf = await readRssKiB(plain.daemon.pid);
    const secondHalf = await hold(plain, fleet, half, count);
    await sleep(SETTLE_MS);
    const rssAll = await readRssKiB(plain.daemon.pid);
    held = [...firstHalf, ...secondHalf];
    rssByMapping = residentPerConnection(mappingsBefore, await readResidentByMapping(plain.daemon.pid), held.length);
    rssPerConnectionKiB = (rssAll - rssBefore) / Math.max(1, held.length);
    marginalRssPerConnectionKiB = (rssAll - rssHalf) / Math.max(1, secondHalf.length);
    await Promise.all(held.map((connection) => connection.disconnect()));
  } finally {
    await plain.daemon.stop();
  }
  progress(
    `${kind}: ${rssPerConnectionKiB.toFixed(1)} KiB RSS per held connection (${held.length} held), ${marginalRssPerConnectionKiB.toFixed(1)} KiB for each of the second half; ` +
      `malloc heap ${rssByMapping.mallocHeapKiB.toFixed(1)}, other anonymous ${rssByMapping.otherAnonymousKiB.toFixed(1)}, files ${rssByMapping.fileKiB.toFixed(1)} KiB`,
  );
  // Pass 2: the JS heap, kind by kind.
  const traced = await start(kind, fleet, pinning, ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshotDir}`]);
  try {
    await warmUpConnects(traced, fleet.devices, WARMUP_CONNECTS, 16);
    await sleep(SETTLE_MS);
    const before = await summarizeHeapSnapshot(await heapSnapshot(traced.daemon.pid, snapshotDir));
    held = await hold(traced, fleet, 0, count);
    await sleep(SETTLE_MS);
    const after = await summarizeHeapSnapshot(await heapSnapshot(traced.daemon.pid, snapshotDir));
    const difference = heapDifference(before, after, Math.max(1, held.length));
    await Promise.all(held.map((connection) => connection.disconnect()));
    const heapPerConnectionKiB = heapBytes(difference) / 1024;
    progress(`${kind}: ${heapPerConnectionKiB.toFixed(2)} KiB JS heap per held connection`);
    return { held: held.length, rssPerConnectionKiB, marginalRssPerConnectionKiB, rssByMapping, heapPerConnectionKiB, heapByKind: Object.fromEntries(difference) };
  } finally {
    await traced.daemon.stop();
    await rm(snapshotDir, { recursive: true, force: true });
    await mkdir(snapshotDir);
  }
}

installCleanupHandlers();
const { values } = parseArgs({ options: { connections: { type: 'string' }, top: { type: 'string' }, 'no-pin': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
if (values.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
const count = Number(values.connections ?? 2000);
const top = Number(values.top ?? 30);
if (!Number.isInteger(count) || count < 100 || count > 50_000 || !Number.isInteger(top) || top < 1 || top > 500) {
  process.stderr.write(`--connections must be 100 to 50000 and --top 1 to 500\n\n${HELP}\n`);
  process.exit(2);
}
const startedAt = new Date();
const machine = await describeMachine();
const pinning = await pinLoadGenerator(values['no-pin'] !== true);
await assertOpenFilesFor(count);
progress(`${machine.nproc} CPUs, node ${machine.node}; ${describePinning(pinning)}`);
const dir = await makeTempDir('bench');
try {
  const snapshotDir = join(dir, 'snapshots');
  await mkdir(snapshotDir);
  const fleet = await prepareBrokerFleet(dir, count, pinning);
  const fleetgate = await measure('fleetgate', fleet, pinning, count, snapshotDir);
  const floor = await measure('floor', fleet, pinning, count, snapshotDir);
  const kinds = new Set([...Object.keys(fleetgate.heapByKind), ...Object.keys(floor.heapByKind)]);
  const rows = [...kinds]
    .map((kind) => ({ kind, ours: fleetgate.heapByKind[kind] ?? { count: 0, bytes: 0 }, floor: floor.heapByKind[kind] ?? { count: 0, bytes: 0 } }))
    .sort((a, b) => Math.abs(b.ours.bytes - b.floor.bytes) - Math.abs(a.ours.bytes - a.floor.bytes))
    .slice(0, top);
  process.stdout.write(
    `\nMemory per held connection (${fleetgate.held} connections)\n\n${renderTable(
      ['', 'fleetgate', 'Node TLS floor', 'above the floor'],
      [
        ['RSS', `${fleetgate.rssPerConnectionKiB.toFixed(1)} KiB`, `${floor.rssPerConnectionKiB.toFixed(1)} KiB`, `${(fleetgate.rssPerConnectionKiB - floor.rssPerConnectionKiB).toFixed(1)} KiB`],
        [
          'RSS, second half only',
          `${fleetgate.marginalRssPerConnectionKiB.toFixed(1)} KiB`,
          `${floor.marginalRssPerConnectionKiB.toFixed(1)} KiB`,
          `${(fleetgate.marginalRssPerConnectionKiB - floor.marginalRssPerConnectionKiB).toFixed(1)} KiB`,
        ],
        ...(
          [
            ['  in malloc\'s main arena ([heap])', (reading: MemoryReading) => reading.rssByMapping.mallocHeapKiB],
            ['  in other anonymous mappings (V8 heap, stacks, thread arenas)', (reading: MemoryReading) => reading.rssByMapping.otherAnonymousKiB],
          ] as const
        ).map(([label, pick]) => [label, `${pick(fleetgate).toFixed(1)} KiB`, `${pick(floor).toFixed(1)} KiB`, `${(pick(fleetgate) - pick(floor)).toFixed(1)} KiB`]),
        ['JS heap', `${fleetgate.heapPerConnectionKiB.toFixed(2)} KiB`, `${floor.heapPerConnectionKiB.toFixed(2)} KiB`, `${(fleetgate.heapPerConnectionKiB - floor.heapPerConnectionKiB).toFixed(2)} KiB`],
      ],
    )}\n\nJS heap per held connection by kind (bytes, objects), largest differences first\n\n${renderTable(
      ['kind', 'fleetgate', 'floor', 'difference'],
      rows.map(({ kind, ours, floor: base }) => [kind, `${ours.bytes.toFixed(0)} B (${ours.count.toFixed(1)})`, `${base.bytes.toFixed(0)} B (${base.count.toFixed(1)})`, `${(ours.bytes - base.bytes).toFixed(0)} B`]),
    )}\n`,
  );
  const path = await writeResults({ benchmark: 'memory', startedAt: startedAt.toISOString(), machine, pinning, connections: count, fleetgate, floor }, startedAt, 'memory');
  progress(`results: ${path} (and bench/results/latest-memory.json)`);
} finally {
  await removeTempDir(dir);
}
