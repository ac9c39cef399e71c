import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LevelRegistry } from '../server/src/registry/level/level-registry.ts';
import type { DeviceQuery } from '../server/src/registry/types.ts';

/*
 * What the dashboard's device list costs at 100,000 devices (LevelDB registry): a page of 50 by id
 * order, by id prefix (a search), in descending order, and the worst case, a state filter that
 * matches few devices (it reads devices until the page is full). Run with
 * `node --import tsx --conditions=@fleetgate/source bench/device-list.ts [devices]`.
 */

const DEVICES = Number(process.argv[2] ?? 100_000);
const BATCH = 10_000;
const RUNS = 20;

const dir = await mkdtemp(join(tmpdir(), 'fleetgate-device-list-'));
try {
  const registry = await LevelRegistry.open(join(dir, 'registry'));
  const started = performance.now();
  for (let first = 0; first < DEVICES; first += BATCH) {
    const devices = Array.from({ length: Math.min(BATCH, DEVICES - first) }, (_, index) => ({ id: `sensor-${(first + index).toString(16).padStart(12, '0')}` }));
    await registry.importBatch({ id: `b-${first}`, model: 'sensor', trust: 'fleetgate-factory', issuedAt: new Date().toISOString(), devices }, 'system');
  }
  console.log(`${DEVICES} devices imported in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const cases: [string, DeviceQuery][] = [
    ['first page (50, id order)', { limit: 50 }],
    ['a page in the middle (after=)', { limit: 50, after: `sensor-${(DEVICES >> 1).toString(16).padStart(12, '0')}` }],
    ['descending (order=desc)', { limit: 50, order: 'desc' }],
    ['search by prefix (16 match)', { limit: 50, prefix: 'sensor-000000000a' }],
    ['search by prefix, no match', { limit: 50, prefix: 'zzz' }],
    ['state=enrolled, none match (reads every device)', { limit: 50, state: 'enrolled' }],
  ];
  for (const [name, query] of cases) {
    const times: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const start = performance.now();
      await registry.listDevices(query);
      times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    console.log(`${name.padEnd(50)} median ${times[RUNS >> 1]?.toFixed(2)} ms, max ${times.at(-1)?.toFixed(2)} ms`);
  }
  await registry.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
