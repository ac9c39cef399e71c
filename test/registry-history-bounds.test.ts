import test from 'ava';
import { join } from 'node:path';
import { HistoryBounds } from '../server/src/registry/level/history-bounds.ts';
import { LevelRegistry } from '../server/src/registry/level/level-registry.ts';
import type { DeviceEventRecord } from '../server/src/registry/types.ts';
import { tempDir } from './helpers/temp-dir.ts';

/*
 * The LevelDB registry skips reading a device's stored history keys while an upper bound on their
 * number stays within the limit (history-bounds.ts). Whatever the order of new entries, rewritten
 * entries and reopenings, each device must keep exactly its newest entries.
 */

const at = (deviceId: string, second: number, count = 1): DeviceEventRecord => {
  const first = new Date(Date.UTC(2026, 11, 3, 9, 0, second)).toISOString();
  return { deviceId, kind: 'dropped', code: 'client-disconnect', first, last: first, count };
};
const seconds = async (registry: LevelRegistry, deviceId: string): Promise<number[]> =>
  (await registry.listDeviceEvents(deviceId)).map((entry) => new Date(entry.first).getUTCSeconds());

test('HistoryBounds: unknown until set, grows by what is added, forgets the least recently set beyond its capacity, and everything on clear', (t) => {
  const bounds = new HistoryBounds(2);
  t.is(bounds.after('a', 1), undefined);
  bounds.set('a', 3);
  t.is(bounds.after('a', 2), 5);
  bounds.set('b', 1);
  bounds.set('a', 4); // a is now the most recent
  bounds.set('c', 0);
  t.is(bounds.after('b', 0), undefined, 'b was the least recently set');
  t.is(bounds.after('a', 0), 4);
  t.is(bounds.after('c', 1), 1);
  bounds.clear();
  t.is(bounds.after('a', 0), undefined);
});

test('history trimming with bounds: one new entry per flush, rewritten entries, several devices and a reopened registry all keep exactly the newest entries', async (t) => {
  const path = join(await tempDir(t), 'registry');
  let registry = await LevelRegistry.open(path);
  t.teardown(() => registry.close());
  const keep = 3;
  // One entry per flush: the bound grows past the limit and the trim reads, then trims.
  for (let second = 0; second < 8; second++) await registry.recordDeviceEvents([at('cam-1', second), at('cam-10', second)], keep);
  t.deepEqual(await seconds(registry, 'cam-1'), [7, 6, 5]);
  t.deepEqual(await seconds(registry, 'cam-10'), [7, 6, 5]);

  // A rewritten entry (the same first occurrence, a growing count) replaces its key: the bound
  // counts it as new, which may only cause an extra read, never a missed trim.
  for (let count = 2; count < 6; count++) await registry.recordDeviceEvents([at('cam-1', 7, count)], keep);
  t.deepEqual(await seconds(registry, 'cam-1'), [7, 6, 5]);
  t.is((await registry.listDeviceEvents('cam-1'))[0]?.count, 5);
  await registry.recordDeviceEvents([at('cam-1', 8)], keep);
  t.deepEqual(await seconds(registry, 'cam-1'), [8, 7, 6]);

  // A device below the limit, flushed without reads after its first, then over it.
  await registry.recordDeviceEvents([at('cam-2', 0)], keep);
  await registry.recordDeviceEvents([at('cam-2', 1)], keep);
  t.deepEqual(await seconds(registry, 'cam-2'), [1, 0]);
  await registry.recordDeviceEvents([at('cam-2', 2), at('cam-2', 3)], keep);
  t.deepEqual(await seconds(registry, 'cam-2'), [3, 2, 1]);

  // Reopened: nothing remembered, the first flush of each device reads from disk.
  await registry.close();
  registry = await LevelRegistry.open(path);
  await registry.recordDeviceEvents([at('cam-2', 4), at('cam-10', 9)], keep);
  t.deepEqual(await seconds(registry, 'cam-2'), [4, 3, 2]);
  t.deepEqual(await seconds(registry, 'cam-10'), [9, 7, 6]);
  // A smaller limit than before applies at once.
  await registry.recordDeviceEvents([at('cam-2', 5)], 2);
  t.deepEqual(await seconds(registry, 'cam-2'), [5, 4]);
});
