import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LevelRegistry } from '../server/src/registry/level/level-registry.ts';
import { PostgresRegistry } from '../server/src/registry/postgres/postgres-registry.ts';
import type { DeviceQuery, Registry } from '../server/src/registry/types.ts';
import { startPostgres } from './postgres.ts';

/*
 * What the dashboard's device list costs at 100,000 devices, on LevelDB and on a throwaway
 * PostgreSQL: a page of 50 by id order, in the middle (a cursor), descending, by id prefix (a
 * search), and the worst case, a state filter that matches nothing (read until the page is full,
 * so every device). Run with
 * `node --import tsx --conditions=@fleetgate/source bench/device-list.ts [devices] [leveldb|postgres|both]`.
 */

const DEVICES = Number(process.argv[2] ?? 100_000);
const ENGINES = process.argv[3] ?? 'both';
const BATCH = 10_000;
const RUNS = 20;

const idOf = (index: number): string => `sensor-${index.toString(16).padStart(12, '0')}`;

async function measure(name: string, registry: Registry): Promise<void> {
  const started = performance.now();
  for (let first = 0; first < DEVICES; first += BATCH) {
    const devices = Array.from({ length: Math.min(BATCH, DEVICES - first) }, (_, index) => ({ id: idOf(first + index) }));
    await registry.importBatch({ id: `b-${first}`, model: 'sensor', trust: 'fleetgate-factory', issuedAt: new Date().toISOString(), devices }, 'system');
  }
  console.log(`${name}: ${DEVICES} devices imported in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const cases: [string, DeviceQuery][] = [
    ['first page (50, id order)', { limit: 50 }],
    ['a page in the middle (after=)', { limit: 50, after: idOf(DEVICES >> 1) }],
    ['descending (order=desc)', { limit: 50, order: 'desc' }],
    ['search by prefix (16 match)', { limit: 50, prefix: 'sensor-000000000a' }],
    ['search by prefix, no match', { limit: 50, prefix: 'zzz' }],
    ['state=enrolled, none match (reads every device)', { limit: 50, state: 'enrolled' }],
  ];
  for (const [label, query] of cases) {
    const times: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const start = performance.now();
      await registry.listDevices(query);
      times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    console.log(`  ${label.padEnd(50)} median ${times[RUNS >> 1]?.toFixed(2)} ms, max ${times.at(-1)?.toFixed(2)} ms`);
  }
}

const dir = await mkdtemp(join(tmpdir(), 'fleetgate-device-list-'));
try {
  if (ENGINES !== 'postgres') {
    const registry = await LevelRegistry.open(join(dir, 'registry'));
    await measure('leveldb', registry).finally(() => registry.close());
  }
  if (ENGINES !== 'leveldb') {
    // Its own directory under the temp dir: as root, PostgreSQL runs as the postgres user, which must reach it.
    const pgDir = await mkdtemp(join(tmpdir(), 'fleetgate-device-list-pg-'));
    const server = await startPostgres({ dir: pgDir, settings: { shared_buffers: '64MB' } });
    try {
      const registry = await PostgresRegistry.open(await server.createDatabase());
      await measure('postgres', registry).finally(() => registry.close());
    } finally {
      await server.destroy();
      await rm(pgDir, { recursive: true, force: true });
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
