import test from 'ava';
import { Level } from 'level';
import { join } from 'node:path';
import { RegistryError } from '../server/src/registry/errors.ts';
import { LevelRegistry } from '../server/src/registry/level/level-registry.ts';
import type { Registry, RegistryRecord } from '../server/src/registry/types.ts';
import { RECORD_TIME as NOW, certificateRecord as certificate, deviceRecord as device, enrollmentCommit as enrollment } from './helpers/registry-records.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { ENGINES, LEVELDB, POSTGRES } from './helpers/registries.ts';
import { stopSharedPostgres } from './helpers/postgres.ts';
import { SOURCE_NODE_ARGS } from './helpers/source-node.ts';

test.after.always(stopSharedPostgres);

for (const engine of ENGINES) {
  test(`${engine.name}: an issuance is recorded atomically and survives a reopen`, async (t) => {
    const store = await engine.create(t);
    await store.registry.commitIssuance(enrollment('thermostat-1', 'aa01'));
    await store.registry.close();
    const reopened = await store.open();
    t.is((await reopened.getDevice('thermostat-1'))?.certSerial, 'aa01');
    t.is((await reopened.getCertificate('aa01'))?.deviceId, 'thermostat-1');
    t.deepEqual((await reopened.listCertificates('thermostat-1')).map((record) => record.serial), ['aa01']);
    const audit = await reopened.readAudit();
    t.is(audit.length, 1);
    t.like(audit[0], { seq: 1, type: 'enrolled', deviceId: 'thermostat-1' });
  });

  test(`${engine.name}: concurrent enrollments of one device: exactly one wins, the rest conflict and write nothing`, async (t) => {
    const { registry } = await engine.create(t);
    const attempts = Array.from({ length: 20 }, (_, index) => registry.commitIssuance(enrollment('camera-1', `c${index}`)));
    const results = await Promise.allSettled(attempts);
    const won = results.filter((result) => result.status === 'fulfilled');
    t.is(won.length, 1);
    for (const result of results) {
      if (result.status === 'rejected') t.is((result.reason as RegistryError).code, 'REGISTRY_CONFLICT');
    }
    t.is((await registry.listCertificates('camera-1')).length, 1);
    t.is((await registry.readAudit()).length, 1);
  });

  test(`${engine.name}: many devices committed at once share fsyncs (group commit) and all land`, async (t) => {
    const { registry } = await engine.create(t);
    await Promise.all(Array.from({ length: 500 }, (_, index) => registry.commitIssuance(enrollment(`car-${index}`, `s${index}`))));
    t.is((await registry.listDevices()).length, 500);
    t.is((await registry.listDevices({ limit: 10 })).length, 10);
    const verification = await registry.verifyAudit();
    t.true(verification.ok);
    t.is(verification.entries, 500);
  });

  test(`${engine.name}: an issuance for a device revoked meanwhile is refused (REGISTRY_DEVICE_BLOCKED)`, async (t) => {
    const { registry } = await engine.create(t);
    await registry.commitIssuance(enrollment('thermostat-2', 'b1'));
    await registry.changeState({ deviceId: 'thermostat-2', to: 'revoked', actor: 'operator:test', revocationReason: 'keyCompromise' });
    const error = await t.throwsAsync(registry.commitIssuance(enrollment('thermostat-2', 'b2', 'b1')));
    t.is((error as RegistryError).code, 'REGISTRY_DEVICE_BLOCKED');
    t.is(await registry.getCertificate('b2'), undefined);
    t.true((await registry.revokedSerials()).has('b1'));
    t.is((await registry.getCertificate('b1'))?.revocationReason, 'keyCompromise');
  });

  test(`${engine.name}: state changes: disable, enable, revoke is final until reset; unknown devices are reported`, async (t) => {
    const { registry } = await engine.create(t);
    await registry.commitIssuance(enrollment('camera-2', 'd1'));
    const seen: string[] = [];
    registry.onDeviceChange(({ device: changed, revokedSerials }) => seen.push(`${changed.id}:${changed.state}${revokedSerials.length ? `:${revokedSerials.join(',')}` : ''}`));
    t.is((await registry.changeState({ deviceId: 'camera-2', to: 'disabled', actor: 'operator:test' })).state, 'disabled');
    t.is((await registry.listDevices({ state: 'disabled' })).length, 1);
    t.is((await registry.changeState({ deviceId: 'camera-2', to: 'enrolled', actor: 'operator:test' })).state, 'enrolled');
    await registry.changeState({ deviceId: 'camera-2', to: 'revoked', actor: 'operator:test' });
    const final = await t.throwsAsync(registry.changeState({ deviceId: 'camera-2', to: 'enrolled', actor: 'operator:test' }));
    t.is((final as RegistryError).code, 'REGISTRY_INVALID_STATE');
    const missing = await t.throwsAsync(registry.changeState({ deviceId: 'nope', to: 'disabled', actor: 'operator:test' }));
    t.is((missing as RegistryError).code, 'REGISTRY_NOT_FOUND');
    const reset = await registry.resetDevice('camera-2', 'operator:test');
    t.true(reset.resetPending);
    t.deepEqual(seen, ['camera-2:disabled', 'camera-2:enrolled', 'camera-2:revoked:d1', 'camera-2:enrolled']);
    t.deepEqual((await registry.readAudit({ deviceId: 'camera-2' })).map((entry) => entry.type), ['enrolled', 'disabled', 'enabled', 'cert-revoked', 'revoked', 'reset']);
  });

  test(`${engine.name}: revoking a device revokes every certificate it still holds, superseded ones included`, async (t) => {
    const { registry } = await engine.create(t);
    await registry.commitIssuance(enrollment('car-9', 'f1'));
    await registry.commitIssuance({
      kind: 'renew',
      device: device('car-9', 'f2'),
      certificate: certificate('car-9', 'f2'),
      expect: { currentSerial: 'f1' },
      previous: { serial: 'f1', status: 'superseded', reason: 'superseded' },
      audit: { type: 'renewed', deviceId: 'car-9', serial: 'f2', actor: 'device:car-9' },
    });
    t.is((await registry.getCertificate('f1'))?.status, 'superseded');
    const changes: string[][] = [];
    registry.onDeviceChange(({ revokedSerials }) => changes.push([...revokedSerials].sort()));
    await registry.changeState({ deviceId: 'car-9', to: 'revoked', actor: 'operator:test' });
    t.deepEqual(changes, [['f1', 'f2']]);
    t.deepEqual([...(await registry.revokedSerials())].sort(), ['f1', 'f2']);
  });

  test(`${engine.name}: presence is written in batches and read back`, async (t) => {
    const { registry } = await engine.create(t);
    await registry.recordPresence([
      { deviceId: 'thermostat-p1', connected: true, lastSeen: NOW, connectedAt: NOW, peer: '127.0.0.1' },
      { deviceId: 'thermostat-p2', connected: false, lastSeen: NOW, disconnectedAt: NOW },
    ]);
    t.like(await registry.getPresence('thermostat-p1'), { connected: true, peer: '127.0.0.1' });
    t.like(await registry.getPresence('thermostat-p2'), { connected: false });
    t.is(await registry.getPresence('thermostat-p3'), undefined);
    const many = await registry.getPresences(['thermostat-p2', 'thermostat-p3', 'thermostat-p1']);
    t.deepEqual(many.map((record) => record?.deviceId), ['thermostat-p2', undefined, 'thermostat-p1'], 'in the order asked, undefined where none');
    t.deepEqual(many[2], await registry.getPresence('thermostat-p1'));
    t.deepEqual(await registry.getPresences([]), []);
  });

  test(`${engine.name}: a reset allows one more enrollment but does not lift a disablement`, async (t) => {
    const { registry } = await engine.create(t);
    await registry.commitIssuance(enrollment('camera-7', 'g1'));
    await registry.changeState({ deviceId: 'camera-7', to: 'disabled', reason: 'maintenance', actor: 'operator:test' });
    const reset = await registry.resetDevice('camera-7', 'operator:test');
    t.like(reset, { state: 'disabled', resetPending: true, stateReason: 'maintenance' });
  });

  test(`${engine.name}: listing filters, trusts, credentials, batches, broker history and CRL numbers behave alike`, async (t) => {
    const { registry } = await engine.create(t);
    for (let index = 0; index < 5; index++) await registry.commitIssuance(enrollment(`lamp-${index}`, `l${index}`));
    await registry.commitIssuance({ ...enrollment('zz-car-1', 'z1'), device: { ...device('zz-car-1', 'z1'), model: 'car', certNotAfter: '2026-11-30T00:00:00.000Z' } });
    await registry.changeState({ deviceId: 'lamp-1', to: 'disabled', actor: 'operator:test' });
    t.deepEqual((await registry.listDevices({ after: 'lamp-2', limit: 2 })).map((entry) => entry.id), ['lamp-3', 'lamp-4']);
    t.deepEqual((await registry.listDevices({ state: 'disabled' })).map((entry) => entry.id), ['lamp-1']);
    t.deepEqual((await registry.listDevices({ model: 'car' })).map((entry) => entry.id), ['zz-car-1']);
    t.deepEqual((await registry.listDevices({ expiresBefore: '2026-12-01T00:00:00Z' })).map((entry) => entry.id), ['zz-car-1']);
    // Id prefix and order (the dashboard's search and sort), with the cursor in either order.
    t.deepEqual((await registry.listDevices({ prefix: 'lamp-' })).map((entry) => entry.id), ['lamp-0', 'lamp-1', 'lamp-2', 'lamp-3', 'lamp-4']);
    t.deepEqual((await registry.listDevices({ prefix: 'lamp-3' })).map((entry) => entry.id), ['lamp-3']);
    t.deepEqual((await registry.listDevices({ prefix: 'lamp_' })).map((entry) => entry.id), [], 'an underscore is not a wildcard');
    t.deepEqual((await registry.listDevices({ prefix: 'zz' })).map((entry) => entry.id), ['zz-car-1']);
    t.deepEqual((await registry.listDevices({ order: 'desc', limit: 3 })).map((entry) => entry.id), ['zz-car-1', 'lamp-4', 'lamp-3']);
    t.deepEqual((await registry.listDevices({ order: 'desc', after: 'lamp-3', limit: 2 })).map((entry) => entry.id), ['lamp-2', 'lamp-1']);
    t.deepEqual((await registry.listDevices({ prefix: 'lamp-', order: 'desc', after: 'lamp-1' })).map((entry) => entry.id), ['lamp-0']);
    t.deepEqual((await registry.listDevices({ prefix: 'lamp-', after: 'lamp-3', state: 'enrolled' })).map((entry) => entry.id), ['lamp-4']);
    t.deepEqual((await registry.listDevices({ prefix: 'lamp-', after: 'a' })).map((entry) => entry.id).length, 5, 'a cursor before the prefix starts at the prefix');

    // Batches: provisioned ids, idempotent re-import, known ids left alone.
    const batch = { id: 'b-1', model: 'lamp', trust: 'fleetgate-factory', issuedAt: NOW, devices: [{ id: 'lamp-0' }, { id: 'lamp-9', serial: '0a' }] };
    t.deepEqual(await registry.importBatch(batch, 'system'), { batch: 'b-1', added: 1, existing: 1 });
    t.deepEqual(await registry.importBatch(batch, 'system'), { batch: 'b-1', added: 0, existing: 2 });
    t.like(await registry.getDevice('lamp-9'), { state: 'provisioned', batch: 'b-1', bootstrap: { key: '', trust: 'fleetgate-factory', serial: '0a' } });
    t.is((await registry.getDevice('lamp-0'))?.state, 'enrolled');

    // Trusts, with their listeners; an allow-list provisions its ids.
    let trustChanges = 0;
    registry.onTrustChange(() => trustChanges++);
    const trust = { name: 'acme', model: 'camera', caPem: 'PEM', fingerprint: 'ff', namespace: 'acme.', allowList: ['acme.1'], createdAt: NOW, actor: 'operator:test' };
    await registry.putTrust(trust);
    t.deepEqual((await registry.listTrusts()).map((entry) => entry.name), ['acme']);
    t.is((await registry.getDevice('acme.1'))?.batch, 'trust:acme');
    t.true(await registry.deleteTrust('acme', 'operator:test'));
    t.false(await registry.deleteTrust('acme', 'operator:test'));
    t.is(trustChanges, 2);

    // Credentials: recorded once, revoked by name, the last operator kept unless forced.
    const credential = (name: string, serial: string) => ({ kind: 'operator' as const, name, serial, issuedAt: NOW, expiresAt: '2099-01-01T00:00:00.000Z', state: 'valid' as const, recordedVia: 'issue' as const, recordedAt: NOW });
    const revokedCredentials: string[] = [];
    registry.onCredentialChange((record) => revokedCredentials.push(`${record.name}:${record.state}`));
    await registry.recordCredential(credential('alice', 'a1'), 'system');
    t.is((await registry.recordCredential({ ...credential('alice', 'a1'), name: 'other' }, 'system')).name, 'alice');
    await registry.recordCredential(credential('bob', 'b1'), 'system');
    t.like((await registry.revokeCredentials({ kind: 'operator', ref: 'bob', actor: 'operator:alice' }))[0], { state: 'revoked', revokedBy: 'operator:alice' });
    const last = await t.throwsAsync(registry.revokeCredentials({ kind: 'operator', ref: 'a1', actor: 'operator:alice' }));
    t.is((last as RegistryError).code, 'REGISTRY_LAST_CREDENTIAL');
    const missing = await t.throwsAsync(registry.revokeCredentials({ kind: 'service', ref: 'nobody', actor: 'operator:alice' }));
    t.is((missing as RegistryError).code, 'REGISTRY_NOT_FOUND');
    t.deepEqual((await registry.listCredentials('operator')).map((record) => `${record.name}:${record.state}`), ['alice:valid', 'bob:revoked']);
    t.deepEqual(revokedCredentials, ['alice:valid', 'bob:valid', 'bob:revoked']);

    // Broker history: an entry of the same first occurrence replaces the stored one; each device keeps its newest.
    const event = (first: string, count: number) => ({ deviceId: 'lamp-2', kind: 'refused' as const, code: 'BROKER_X', first, last: first, count });
    await registry.recordDeviceEvents([event('2026-11-23T10:00:01.000Z', 1), event('2026-11-23T10:00:02.000Z', 1)], 2);
    await registry.recordDeviceEvents([event('2026-11-23T10:00:02.000Z', 5), event('2026-11-23T10:00:03.000Z', 1)], 2);
    t.deepEqual((await registry.listDeviceEvents('lamp-2')).map((entry) => `${entry.first.slice(17, 19)}x${entry.count}`), ['03x1', '02x5']);
    t.is((await registry.listDeviceEvents('lamp-2', 1)).length, 1);
    // Several devices trimmed in one batch, ids that extend one another, one with more stored
    // entries than one read of the LevelDB trim returns (32).
    const at = (deviceId: string, second: number) => ({ deviceId, kind: 'refused' as const, code: 'BROKER_X', first: new Date(Date.UTC(2026, 10, 23, 11, 0, second)).toISOString(), last: '2026-11-23T11:00:00.000Z', count: 1 });
    const seconds = (from: number, count: number) => Array.from({ length: count }, (_, index) => from + index);
    await registry.recordDeviceEvents(seconds(0, 45).map((second) => at('lamp-4', second)), 50);
    await registry.recordDeviceEvents([...seconds(45, 2).map((second) => at('lamp-4', second)), at('lamp-4-b', 0), at('lamp', 0), at('lamp-40', 0)], 40);
    t.deepEqual((await registry.listDeviceEvents('lamp-4')).map((entry) => new Date(entry.first).getUTCSeconds()), seconds(7, 40).reverse(), 'the newest 40 of 47');
    for (const other of ['lamp-4-b', 'lamp', 'lamp-40']) t.is((await registry.listDeviceEvents(other)).length, 1, other);

    // CRL numbers only grow; all-or-nothing bulk actions write nothing when one is refused.
    const numbers = await Promise.all([registry.nextCrlNumber(), registry.nextCrlNumber(), registry.nextCrlNumber()]);
    t.deepEqual([...numbers].sort(), [1n, 2n, 3n]);
    const before = (await registry.readAuditPage()).head;
    const bulk = await registry.applyDeviceActions([{ deviceId: 'lamp-3', action: 'disable', actor: 'operator:test' }, { deviceId: 'ghost', action: 'disable', actor: 'operator:test' }], { allOrNothing: true });
    t.deepEqual(bulk.map((result) => result.status), ['skipped', 'refused']);
    t.is((await registry.getDevice('lamp-3'))?.state, 'enrolled');
    t.is((await registry.readAuditPage()).head, before);
    t.true((await registry.verifyAudit()).ok);
  });
}

// Across engines: an export of either imports into the other, record for record.

test('export from LevelDB, import into PostgreSQL and back: the same records, the same audit chain', async (t) => {
  const level = await LEVELDB.create(t);
  const source = level.registry;
  for (let index = 0; index < 3; index++) await source.commitIssuance(enrollment(`cam-${index}`, `d${index}`));
  await source.changeState({ deviceId: 'cam-1', to: 'revoked', actor: 'operator:test', revocationReason: 'keyCompromise' });
  await source.importBatch({ id: 'b-7', model: 'camera', trust: 'fleetgate-factory', issuedAt: NOW, devices: [{ id: 'cam-9' }] }, 'system');
  await source.putTrust({ name: 'acme', model: 'camera', caPem: 'PEM', fingerprint: 'ff', namespace: 'acme.', createdAt: NOW, actor: 'operator:test' });
  await source.recordCredential({ kind: 'operator', name: 'alice', serial: 'a1', issuedAt: NOW, expiresAt: '2099-01-01T00:00:00.000Z', state: 'valid', recordedVia: 'issue', recordedAt: NOW }, 'system');
  await source.recordPresence([{ deviceId: 'cam-0', connected: true, lastSeen: NOW }]);
  await source.recordDeviceEvents([{ deviceId: 'cam-0', kind: 'refused', code: 'BROKER_X', first: NOW, last: NOW, count: 2 }], 10);
  await source.nextCrlNumber();
  const collect = async (registry: Registry): Promise<RegistryRecord[]> => {
    const out: RegistryRecord[] = [];
    for await (const record of registry.exportRecords()) out.push(record);
    return out;
  };
  const original = await collect(source);
  t.is(original.filter((record) => record.kind === 'device').length, 4);

  const postgres = await POSTGRES.create(t);
  await postgres.registry.importRecords(source.exportRecords());
  t.deepEqual(await collect(postgres.registry), original);
  t.like(await postgres.registry.verifyAudit(), { ok: true, entries: (await source.verifyAudit()).entries });
  // The chain goes on from the imported head, and the CRL number from the imported one.
  await postgres.registry.changeState({ deviceId: 'cam-0', to: 'disabled', actor: 'operator:test' });
  t.true((await postgres.registry.verifyAudit()).ok);
  t.is(await postgres.registry.nextCrlNumber(), 2n);

  const back = await LEVELDB.create(t);
  await back.registry.importRecords(postgres.registry.exportRecords());
  t.deepEqual((await collect(back.registry)).filter((record) => record.kind === 'trust' || record.kind === 'certificate'), (await collect(postgres.registry)).filter((record) => record.kind === 'trust' || record.kind === 'certificate'));
  t.true((await back.registry.verifyAudit()).ok);
  t.is((await back.registry.getDevice('cam-0'))?.state, 'disabled');
  const refused = await t.throwsAsync(back.registry.importRecords(postgres.registry.exportRecords()));
  t.is((refused as RegistryError).code, 'REGISTRY_NOT_EMPTY');
});

// LevelDB only: its files and its lock.

test('the audit chain detects an edited and a removed entry', async (t) => {
  const path = join(await tempDir(t), 'registry');
  const registry = await LevelRegistry.open(path);
  for (let index = 0; index < 5; index++) await registry.commitIssuance(enrollment(`thermostat-a${index}`, `e${index}`));
  t.true((await registry.verifyAudit()).ok);
  await registry.close();

  // Tamper with the raw database, as someone with file access would.
  const raw = new Level<string, string>(path, { valueEncoding: 'utf8' });
  const key = 'a!000000000003';
  const original = (await raw.get(key)) as string;
  await raw.put(key, original.replace('thermostat-a2', 'thermostat-zz'));
  await raw.close();
  let reopened = await LevelRegistry.open(path);
  const edited = await reopened.verifyAudit();
  t.false(edited.ok);
  if (!edited.ok) t.is(edited.brokenAt, 3);
  await reopened.close();

  const raw2 = new Level<string, string>(path, { valueEncoding: 'utf8' });
  await raw2.put(key, original);
  await raw2.del('a!000000000004');
  await raw2.close();
  reopened = await LevelRegistry.open(path);
  const removed = await reopened.verifyAudit();
  t.false(removed.ok);
  if (!removed.ok) t.regex(removed.reason, /missing/);
  await reopened.close();
});

test('a second process cannot open a registry in use (REGISTRY_LOCKED)', async (t) => {
  const path = join(await tempDir(t), 'registry');
  const registry = await LevelRegistry.open(path);
  t.teardown(() => registry.close());
  const { run } = await import('./helpers/run.ts');
  const script = `import { LevelRegistry } from ${JSON.stringify(new URL('../server/src/registry/level/level-registry.ts', import.meta.url).pathname)};
try { await LevelRegistry.open(${JSON.stringify(path)}); console.log('opened'); } catch (e) { console.log(e.code); }`;
  const result = await run(process.execPath, [...SOURCE_NODE_ARGS, '--input-type=module', '-e', script]);
  t.is(result.stdout.trim(), 'REGISTRY_LOCKED', result.stderr);
});

