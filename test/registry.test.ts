import test from 'ava';
import { Level } from 'level';
import { join } from 'node:path';
import { RegistryError } from '../server/src/registry/errors.ts';
import { LevelRegistry } from '../server/src/registry/level/level-registry.ts';
import { RECORD_TIME as NOW, certificateRecord as certificate, deviceRecord as device, enrollmentCommit as enrollment } from './helpers/registry-records.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { SOURCE_NODE_ARGS } from './helpers/source-node.ts';

test('an issuance is recorded atomically and survives a reopen', async (t) => {
  const path = join(await tempDir(t), 'registry');
  const registry = await LevelRegistry.open(path);
  await registry.commitIssuance(enrollment('thermostat-1', 'aa01'));
  await registry.close();
  const reopened = await LevelRegistry.open(path);
  t.teardown(() => reopened.close());
  t.is((await reopened.getDevice('thermostat-1'))?.certSerial, 'aa01');
  t.is((await reopened.getCertificate('aa01'))?.deviceId, 'thermostat-1');
  t.deepEqual((await reopened.listCertificates('thermostat-1')).map((record) => record.serial), ['aa01']);
  const audit = await reopened.readAudit();
  t.is(audit.length, 1);
  t.like(audit[0], { seq: 1, type: 'enrolled', deviceId: 'thermostat-1' });
});

test('concurrent enrollments of one device: exactly one wins, the rest conflict and write nothing', async (t) => {
  const registry = await LevelRegistry.open(join(await tempDir(t), 'registry'));
  t.teardown(() => registry.close());
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

test('many devices committed at once share fsyncs (group commit) and all land', async (t) => {
  const registry = await LevelRegistry.open(join(await tempDir(t), 'registry'));
  t.teardown(() => registry.close());
  await Promise.all(Array.from({ length: 500 }, (_, index) => registry.commitIssuance(enrollment(`car-${index}`, `s${index}`))));
  t.is((await registry.listDevices()).length, 500);
  t.is((await registry.listDevices({ limit: 10 })).length, 10);
  const verification = await registry.verifyAudit();
  t.true(verification.ok);
  t.is(verification.entries, 500);
});

test('an issuance for a device revoked meanwhile is refused (REGISTRY_DEVICE_BLOCKED)', async (t) => {
  const registry = await LevelRegistry.open(join(await tempDir(t), 'registry'));
  t.teardown(() => registry.close());
  await registry.commitIssuance(enrollment('thermostat-2', 'b1'));
  await registry.changeState({ deviceId: 'thermostat-2', to: 'revoked', actor: 'operator:test', revocationReason: 'keyCompromise' });
  const error = await t.throwsAsync(registry.commitIssuance(enrollment('thermostat-2', 'b2', 'b1')));
  t.is((error as RegistryError).code, 'REGISTRY_DEVICE_BLOCKED');
  t.is(await registry.getCertificate('b2'), undefined);
  t.true((await registry.revokedSerials()).has('b1'));
  t.is((await registry.getCertificate('b1'))?.revocationReason, 'keyCompromise');
});

test('state changes: disable, enable, revoke is final until reset; unknown devices are reported', async (t) => {
  const registry = await LevelRegistry.open(join(await tempDir(t), 'registry'));
  t.teardown(() => registry.close());
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

test('revoking a device revokes every certificate it still holds, superseded ones included', async (t) => {
  const registry = await LevelRegistry.open(join(await tempDir(t), 'registry'));
  t.teardown(() => registry.close());
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

test('presence is written in batches and read back', async (t) => {
  const registry = await LevelRegistry.open(join(await tempDir(t), 'registry'));
  t.teardown(() => registry.close());
  await registry.recordPresence([
    { deviceId: 'thermostat-p1', connected: true, lastSeen: NOW, connectedAt: NOW, peer: '127.0.0.1' },
    { deviceId: 'thermostat-p2', connected: false, lastSeen: NOW, disconnectedAt: NOW },
  ]);
  t.like(await registry.getPresence('thermostat-p1'), { connected: true, peer: '127.0.0.1' });
  t.like(await registry.getPresence('thermostat-p2'), { connected: false });
  t.is(await registry.getPresence('thermostat-p3'), undefined);
});

test('a reset allows one more enrollment but does not lift a disablement', async (t) => {
  const registry = await LevelRegistry.open(join(await tempDir(t), 'registry'));
  t.teardown(() => registry.close());
  await registry.commitIssuance(enrollment('camera-7', 'g1'));
  await registry.changeState({ deviceId: 'camera-7', to: 'disabled', reason: 'maintenance', actor: 'operator:test' });
  const reset = await registry.resetDevice('camera-7', 'operator:test');
  t.like(reset, { state: 'disabled', resetPending: true, stateReason: 'maintenance' });
});
