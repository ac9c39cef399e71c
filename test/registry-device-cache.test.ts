import test from 'ava';
import { join } from 'node:path';
import { DeviceRecordCache } from '../server/src/registry/level/device-cache.ts';
import { LevelRegistry } from '../server/src/registry/level/level-registry.ts';
import { enrollmentCommit as enrollment } from './helpers/registry-records.ts';
import { tempDir } from './helpers/temp-dir.ts';

const isDeviceKey = (key: string): boolean => key.startsWith('d!');

test('a device read from memory after a revoke or a disable is the new state, never the cached one', async (t) => {
  const registry = await LevelRegistry.open(join(await tempDir(t), 'registry'));
  t.teardown(() => registry.close());
  await registry.commitIssuance(enrollment('thermostat-1', 'aa01'));
  t.is((await registry.getDevice('thermostat-1'))?.state, 'enrolled');
  t.is((await registry.getDevice('thermostat-1'))?.state, 'enrolled'); // now remembered
  await registry.changeState({ deviceId: 'thermostat-1', to: 'disabled', actor: 'operator:test' });
  t.is((await registry.getDevice('thermostat-1'))?.state, 'disabled');
  await registry.changeState({ deviceId: 'thermostat-1', to: 'revoked', actor: 'operator:test', revocationReason: 'keyCompromise' });
  t.is((await registry.getDevice('thermostat-1'))?.state, 'revoked');
});

test('a read from disk that a write overtook is returned but not remembered', async (t) => {
  const cache = new DeviceRecordCache(8);
  let finishRead: (value: string) => void = () => {};
  const slow = cache.read('d!a', () => new Promise<string>((resolve) => (finishRead = resolve)));
  cache.written([{ type: 'put', key: 'd!a', value: 'new' }], isDeviceKey);
  finishRead('old');
  t.is(await slow, 'old'); // what LevelDB answered before the write landed
  t.is(await cache.read('d!a', () => Promise.reject(new Error('must come from memory'))), 'new');
});

test('a deleted device is forgotten, a clear forgets everything, the oldest entry goes first', async (t) => {
  const cache = new DeviceRecordCache(2);
  const loads: string[] = [];
  const load = (key: string): Promise<string> => {
    loads.push(key);
    return Promise.resolve(`disk:${key}`);
  };
  cache.written([{ type: 'put', key: 'd!a', value: 'a1' }, { type: 'put', key: 'x!a', value: 'not a device' }], isDeviceKey);
  t.is(await cache.read('d!a', load), 'a1');
  t.is(await cache.read('x!a', load), 'disk:x!a'); // only device writes are taken in
  cache.written([{ type: 'del', key: 'd!a' }], isDeviceKey);
  t.is(await cache.read('d!a', load), 'disk:d!a');
  await cache.read('d!b', load);
  await cache.read('d!c', load); // capacity 2: d!a, the oldest, goes
  loads.length = 0;
  await cache.read('d!a', load);
  await cache.read('d!c', load);
  t.deepEqual(loads, ['d!a']);
  cache.clear();
  await cache.read('d!c', load);
  t.deepEqual(loads, ['d!a', 'd!c']);
});
