import test from 'ava';
import { join } from 'node:path';
import { pino } from 'pino';
import { PresenceRecorder, type PresenceStore } from '../server/src/broker/presence.ts';
import { LevelRegistry } from '../server/src/registry/level/level-registry.ts';
import type { PresenceRecord } from '../server/src/registry/types.ts';
import { tempDir } from './helpers/temp-dir.ts';

/*
 * Presence is written in slices (a reconnect storm's 10,000 records in one LevelDB batch held the
 * event loop for 0.4 s): every record still arrives, and a slice the registry refuses is kept,
 * with every later one, for the next flush.
 */

const silent = pino({ level: 'silent' });

test('a flush of more records than one slice writes them all; a refused slice and the rest are kept and written by the next flush', async (t) => {
  const registry = await LevelRegistry.open(join(await tempDir(t, 'fleetgate-presence-'), 'registry'));
  t.teardown(() => registry.close());
  let refuseWrite = 0;
  const writes: number[] = [];
  // The real registry, refusing one chosen write the way a database that went down would.
  const store: PresenceStore = {
    getPresences: (deviceIds) => registry.getPresences(deviceIds),
    async recordPresence(records: readonly PresenceRecord[]) {
      writes.push(records.length);
      if (writes.length === refuseWrite) throw new Error('registry unavailable');
      await registry.recordPresence(records);
    },
  };
  const presence = new PresenceRecorder(store, 3_600_000, silent, undefined);
  const ids = Array.from({ length: 600 }, (_, index) => `dev-${String(index).padStart(4, '0')}`);
  for (const id of ids) presence.connected(id, '127.0.0.1');
  await presence.flush();
  t.deepEqual(writes, [256, 256, 88], 'three slices');
  t.true((await Promise.all(ids.map((id) => registry.getPresence(id)))).every((record) => record?.connected === true));

  writes.length = 0;
  refuseWrite = 2;
  for (const id of ids) presence.disconnected(id);
  await presence.flush();
  t.deepEqual(writes, [256, 256], 'the second slice was refused; nothing after it was tried');
  const stored = await Promise.all(ids.map((id) => registry.getPresence(id)));
  t.is(stored.filter((record) => record?.connected === false).length, 256, 'the first slice is written');

  writes.length = 0;
  refuseWrite = 0;
  await presence.flush();
  t.deepEqual(writes, [256, 88], 'the next flush writes what was kept');
  t.true((await Promise.all(ids.map((id) => registry.getPresence(id)))).every((record) => record?.connected === false));
  await presence.close();
});
