/**
 * A registry whose database does not answer (RegistryError REGISTRY_UNAVAILABLE, as the
 * PostgreSQL registry raises it) makes the admin API answer 503 ADMIN_UNAVAILABLE with
 * `Retry-After: 5`, for reads and for changes through the operator authority alike, and the API
 * serves again as soon as the registry answers. No database server needed: the server runs over
 * a LevelRegistry wrapped so that every call fails while it is "down".
 */
import test from 'ava';
import { join } from 'node:path';
import { RegistryError } from '../server/src/registry/errors.ts';
import { LevelRegistry } from '../server/src/registry/level/level-registry.ts';
import type { Registry } from '../server/src/registry/types.ts';
import { admin } from './helpers/admin-client.ts';
import { enrolledDevices } from './helpers/device.ts';
import { makeDataDir, startFleet } from './helpers/fleet.ts';
import { manufacturer } from './helpers/manufacturer.ts';

/** Subscriptions and close keep working while down: they are not calls to the database. */
const LOCAL_METHODS = new Set<PropertyKey>(['close', 'onDeviceChange', 'onTrustChange', 'onCredentialChange']);

/** A registry whose every call fails with REGISTRY_UNAVAILABLE while `state.down` is set. */
function switchable(registry: Registry): { readonly registry: Registry; readonly state: { down: boolean } } {
  const state = { down: false };
  const proxy = new Proxy(registry, {
    get(target, name) {
      const value: unknown = Reflect.get(target, name, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (state.down && !LOCAL_METHODS.has(name)) return Promise.reject(new RegistryError('REGISTRY_UNAVAILABLE', 'connect ECONNREFUSED 127.0.0.1:5432'));
        return (value as (...callArgs: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { registry: proxy, state };
}

test('the registry does not answer: 503 ADMIN_UNAVAILABLE with Retry-After 5 for reads and changes, nothing changed; served again once it answers', async (t) => {
  const data = await makeDataDir(t);
  const level = await LevelRegistry.open(join(data.dir, 'registry'));
  const database = switchable(level);
  const fleet = await startFleet(t, { dataDir: data, registry: database.registry });
  const [device] = await enrolledDevices(t, fleet);
  if (!device) throw new Error('no device');
  t.is((await admin(fleet, 'GET', '/v1/devices')).status, 200, 'up: served (and the operator certificate recorded at its first use)');
  const acme = await manufacturer('acme');

  database.state.down = true;
  const requests: [string, string, unknown?][] = [
    ['GET', '/v1/devices'],
    ['GET', `/v1/devices/${device.id}`],
    ['GET', '/v1/audit'],
    ['POST', `/v1/devices/${device.id}/revoke`, { reason: 'keyCompromise' }],
    ['POST', '/v1/devices/disable', { ids: [device.id] }],
    ['PUT', '/v1/trusts/acme', { model: 'atm', caPem: acme.pem, namespace: 'acme.' }],
    ['POST', '/v1/operators/revoke', { ref: 'operator' }],
  ];
  for (const [method, path, body] of requests) {
    const answer = await admin(fleet, method, path, body === undefined ? {} : { body });
    t.is(answer.status, 503, `${method} ${path}`);
    t.is(answer.headers['retry-after'], '5', `${method} ${path}: Retry-After`);
    t.is(answer.json<{ error: { code: string } }>().error.code, 'ADMIN_UNAVAILABLE', `${method} ${path}`);
  }
  // A malformed request is still refused for what it is, without asking the registry.
  t.is((await admin(fleet, 'GET', '/v1/devices?state=lost')).status, 400);

  database.state.down = false;
  const shown = await admin(fleet, 'GET', `/v1/devices/${device.id}`);
  t.is(shown.status, 200);
  t.is(shown.json<{ device: { state: string } }>().device.state, 'enrolled', 'the refused revocation changed nothing');
  t.deepEqual(await level.listTrusts(), [], 'the refused trust was not written');
  t.is((await admin(fleet, 'POST', `/v1/devices/${device.id}/disable`)).status, 200, 'changes go through again');
});
