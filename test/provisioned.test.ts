import test from 'ava';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { EST_PATHS } from '../device-sdk/src/protocol.ts';
import { loadAuthorityFromDataDir } from '../server/src/datadir/authorities.ts';
import { batchDirectory } from '../server/src/factory/batch-files.ts';
import { issueBootstrapBatch } from '../server/src/factory/bootstrap-batch.ts';
import type { DeviceRecord } from '../server/src/registry/types.ts';
import { admin } from './helpers/admin-client.ts';
import { fleetgate } from './helpers/cli.ts';
import { enrollWithBootstrap } from './helpers/device.ts';
import { csrBody, estRequest } from './helpers/est-client.ts';
import { makeDataDir, startFleet, type Credential, type DataDir, type Fleet } from './helpers/fleet.ts';
import { tempDir } from './helpers/temp-dir.ts';
import type { ExecutionContext } from 'ava';

/** A `bootstrap issue` batch recorded in the data directory, with the credentials in hand. */
async function issueBatch(t: ExecutionContext, data: DataDir, count: number, model = 'thermostat'): Promise<{ batch: string; credentials: Credential[] }> {
  const out = await tempDir(t, 'fleetgate-factory-');
  const factory = await loadAuthorityFromDataDir(data.dir, 'factory');
  const issued = await issueBootstrapBatch({ factory, root: Buffer.from(data.rootPem.replace(/-----[^-]+-----|\s/g, ''), 'base64'), model, count, outDir: out, validDays: 365, dataDir: data.dir });
  const credentials = await Promise.all(
    issued.devices.map(async ({ id }) => ({ id, certPem: await readFile(join(out, `${id}.crt`), 'utf8'), keyPem: await readFile(join(out, `${id}.key`), 'utf8') })),
  );
  return { batch: issued.batch ?? '', credentials };
}

async function enrollStatus(fleet: Fleet, credential: Credential): Promise<{ status: number; text: string }> {
  const keys = await generateDeviceKeyPair();
  const response = await estRequest({ url: fleet.estUrl, path: EST_PATHS.simpleenroll, body: csrBody(await createCsr(credential.id, keys)), ca: fleet.rootPem, cert: credential.certPem, key: credential.keyPem });
  return { status: response.status, text: response.text };
}

async function provisionedIds(fleet: Fleet): Promise<string[]> {
  const answer = await admin(fleet, 'GET', '/v1/devices?state=provisioned');
  return answer.json<{ devices: DeviceRecord[] }>().devices.map((device) => device.id).sort();
}

test('a batch issued offline is imported at start: its ids are provisioned with model, batch and issue time; an enrollment moves one to enrolled', async (t) => {
  const data = await makeDataDir(t);
  const { batch, credentials } = await issueBatch(t, data, 3);
  t.regex(batch, /^\d{8}t\d{6}-[0-9a-f]{8}$/);
  t.deepEqual(await readdir(batchDirectory(data.dir)), [`bootstrap-${batch}.json`]);
  const fleet = await startFleet(t, { dataDir: data });
  const ids = credentials.map((credential) => credential.id).sort();
  t.deepEqual(await provisionedIds(fleet), ids);
  const device = await fleet.server.registry.getDevice(ids[0] as string);
  t.like(device, { state: 'provisioned', model: 'thermostat', batch, enrollments: 0, certSerial: '', bootstrap: { trust: 'fleetgate-factory', key: '' } });
  t.truthy(device?.provisionedAt);

  const first = credentials[0] as Credential;
  await enrollWithBootstrap(fleet, first);
  const enrolled = await fleet.server.registry.getDevice(first.id);
  t.like(enrolled, { state: 'enrolled', enrollments: 1, batch });
  t.deepEqual(await provisionedIds(fleet), ids.filter((id) => id !== first.id));
});

test('fleetgate device list --state provisioned lists exactly the never-enrolled ids of a batch (CLI against the running server)', async (t) => {
  const data = await makeDataDir(t);
  const fleet = await startFleet(t, { dataDir: data });
  const { credentials } = await issueBatch(t, data, 4);
  // The server was running when the batch was issued: told to import it now.
  const imported = await admin(fleet, 'POST', '/v1/batches/import', { body: {} });
  t.is(imported.status, 200);
  t.like(imported.json<{ batches: { added: number; existing: number }[] }>().batches[0], { added: 4, existing: 0 });
  await enrollWithBootstrap(fleet, credentials[1] as Credential);
  const result = await fleetgate(['device', 'list', '--state', 'provisioned', '--json', '--data', data.dir, '--server', fleet.server.adminUrl]);
  t.is(result.code, 0, result.stderr);
  const listed = (JSON.parse(result.stdout) as { devices: DeviceRecord[] }).devices.map((device) => device.id).sort();
  t.deepEqual(listed, credentials.filter((_, index) => index !== 1).map((credential) => credential.id).sort());
});

test('re-importing a batch changes nothing: no record, no audit entry; an enrolled or revoked id stays as it is', async (t) => {
  const data = await makeDataDir(t);
  const { credentials } = await issueBatch(t, data, 2);
  const fleet = await startFleet(t, { dataDir: data });
  const [a, b] = credentials as [Credential, Credential];
  await enrollWithBootstrap(fleet, a);
  t.is((await admin(fleet, 'POST', `/v1/devices/${b.id}/revoke`, { body: {} })).status, 200);
  const before = { a: await fleet.server.registry.getDevice(a.id), b: await fleet.server.registry.getDevice(b.id), audit: (await fleet.server.registry.readAudit()).length };
  const again = await admin(fleet, 'POST', '/v1/batches/import', { body: {} });
  t.like(again.json<{ batches: { added: number; existing: number }[] }>().batches[0], { added: 0, existing: 2 });
  t.deepEqual(await fleet.server.registry.getDevice(a.id), before.a);
  t.deepEqual(await fleet.server.registry.getDevice(b.id), before.b);
  t.is((await fleet.server.registry.readAudit()).length, before.audit);
});

test('the factory credential in hand cannot enroll after device revoke of its provisioned id (403 ENROLL_DEVICE_REVOKED, audited); reset makes it provisioned again', async (t) => {
  const data = await makeDataDir(t);
  const { credentials } = await issueBatch(t, data, 1);
  const fleet = await startFleet(t, { dataDir: data });
  const lost = credentials[0] as Credential;
  // Before this change: ADMIN_DEVICE_NOT_FOUND, and the unit could enroll later.
  const revoked = await fleetgate(['device', 'revoke', lost.id, '--data', data.dir, '--server', fleet.server.adminUrl]);
  t.is(revoked.code, 0, revoked.stderr);
  t.like(await fleet.server.registry.getDevice(lost.id), { state: 'revoked', enrollments: 0 });
  const refused = await enrollStatus(fleet, lost);
  t.is(refused.status, 403);
  t.regex(refused.text, /ENROLL_DEVICE_REVOKED/);
  t.is((await fleet.server.registry.listCertificates(lost.id)).length, 0, 'nothing issued');
  const audit = await fleet.server.registry.readAudit({ deviceId: lost.id });
  t.deepEqual(audit.map((entry) => entry.type), ['revoked', 'refused']);
  t.is(audit[1]?.code, 'ENROLL_DEVICE_REVOKED');
  t.is(audit[0]?.serial, undefined, 'no certificate to name');

  t.is((await admin(fleet, 'POST', `/v1/devices/${lost.id}/reset`, { body: {} })).status, 200);
  t.like(await fleet.server.registry.getDevice(lost.id), { state: 'provisioned' });
  await enrollWithBootstrap(fleet, lost);
  t.like(await fleet.server.registry.getDevice(lost.id), { state: 'enrolled', enrollments: 1 });
});

test('a disabled provisioned id is refused with ENROLL_DEVICE_DISABLED; enable puts it back to provisioned, not enrolled', async (t) => {
  const data = await makeDataDir(t);
  const { credentials } = await issueBatch(t, data, 1);
  const fleet = await startFleet(t, { dataDir: data });
  const unit = credentials[0] as Credential;
  t.is((await admin(fleet, 'POST', `/v1/devices/${unit.id}/disable`, { body: { reason: 'in transit' } })).status, 200);
  const refused = await enrollStatus(fleet, unit);
  t.is(refused.status, 403);
  t.regex(refused.text, /ENROLL_DEVICE_DISABLED/);
  const enabled = await admin(fleet, 'POST', `/v1/devices/${unit.id}/enable`, { body: {} });
  t.is(enabled.json<{ device: DeviceRecord }>().device.state, 'provisioned');
  await enrollWithBootstrap(fleet, unit);
  t.like(await fleet.server.registry.getDevice(unit.id), { state: 'enrolled' });
});

test('the ids of a trust allow-list are provisioned under that trust', async (t) => {
  const fleet = await startFleet(t);
  const caPem = await readFile(fleet.layout.authorityCert('factory'), 'utf8');
  const root = fleet.rootPem;
  // Any CA chain will do for the registration; the allow-list is what is recorded.
  const put = await admin(fleet, 'PUT', '/v1/trusts/acme', { body: { model: 'atm', caPem: caPem + root, namespace: 'acme.', allowList: ['acme.atm-1', 'acme.atm-2'] } });
  t.is(put.status, 200, put.body.toString());
  t.deepEqual(await provisionedIds(fleet), ['acme.atm-1', 'acme.atm-2']);
  t.like(await fleet.server.registry.getDevice('acme.atm-1'), { model: 'atm', batch: 'trust:acme', bootstrap: { trust: 'acme' } });
});

test('an invalid batch file is skipped with BATCH_FILE_INVALID and writes nothing; the valid ones are imported', async (t) => {
  const data = await makeDataDir(t);
  const { credentials } = await issueBatch(t, data, 1);
  await writeFile(join(batchDirectory(data.dir), 'bootstrap-broken.json'), '{"format":"fleetgate-batch/1","kind":"bootstrap","id":"x","model":"Bad Model"');
  await writeFile(join(batchDirectory(data.dir), 'bootstrap-bad-id.json'), JSON.stringify({ format: 'fleetgate-batch/1', kind: 'bootstrap', id: 'bad-id', model: 'thermostat', trust: 'fleetgate-factory', issuedAt: new Date().toISOString(), devices: [{ id: 'NOT AN ID' }] }));
  const fleet = await startFleet(t, { dataDir: data });
  t.deepEqual(await provisionedIds(fleet), [(credentials[0] as Credential).id]);
  const report = (await admin(fleet, 'POST', '/v1/batches/import', { body: {} })).json<{ invalid: { file: string; code: string }[] }>();
  t.deepEqual(report.invalid.map((entry) => [entry.file, entry.code]).sort(), [
    ['bootstrap-bad-id.json', 'BATCH_FILE_INVALID'],
    ['bootstrap-broken.json', 'BATCH_FILE_INVALID'],
  ]);
  t.is((await fleet.server.registry.listDevices()).length, 1);
  // An unknown field in the request is refused too.
  const bad = await admin(fleet, 'POST', '/v1/batches/import', { body: { path: '/etc' } });
  t.is(bad.status, 400);
  t.is(bad.json<{ error: { code: string } }>().error.code, 'ADMIN_BAD_REQUEST');
});
