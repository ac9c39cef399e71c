import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { loadAuthorityFromDataDir } from '../server/src/datadir/authorities.ts';
import { issueOperatorCredential } from '../server/src/factory/operator-credential.ts';
import { issueServiceCredential } from '../server/src/factory/service-credential.ts';
import type { CredentialRecord } from '../server/src/registry/types.ts';
import { admin } from './helpers/admin-client.ts';
import { fleetgate } from './helpers/cli.ts';
import { connackCode, mqttOptions } from './helpers/device.ts';
import { makeDataDir, serviceCredential, startFleet, type Credential, type DataDir, type Fleet } from './helpers/fleet.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { nextEvent, waitFor, withDeadline } from './helpers/wait.ts';
import { formatSerial, serialKey } from '../server/src/pki/serial.ts';

const rootDer = (data: DataDir): Buffer => Buffer.from(data.rootPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');

/** `fleetgate operator issue NAME` with the data directory: recorded for import. */
async function operator(t: ExecutionContext, data: DataDir, name: string): Promise<Credential & { serial: string }> {
  const out = await tempDir(t, 'fleetgate-operator-');
  const issuing = await loadAuthorityFromDataDir(data.dir, 'issuing');
  const issued = await issueOperatorCredential({ issuing, root: rootDer(data), name, outDir: out, validDays: 30, dataDir: data.dir });
  return { id: name, serial: serialKey(issued.serial), certPem: await readFile(issued.cert, 'utf8'), keyPem: await readFile(issued.key, 'utf8') };
}

/** `fleetgate service issue --name NAME` with the data directory. */
async function service(t: ExecutionContext, data: DataDir, name: string): Promise<Credential & { serial: string }> {
  const out = await tempDir(t, 'fleetgate-service-');
  const issuing = await loadAuthorityFromDataDir(data.dir, 'issuing');
  const issued = await issueServiceCredential({ issuing, root: rootDer(data), name, outDir: out, validDays: 30, dataDir: data.dir });
  return { id: name, serial: serialKey(issued.serial), certPem: await readFile(issued.cert, 'utf8'), keyPem: await readFile(issued.key, 'utf8') };
}

const cli = (fleet: Fleet, args: string[]) => fleetgate([...args, '--data', fleet.dir, '--server', fleet.server.adminUrl]);

/** One GET on a keep-alive agent; says whether the request went out on a reused connection. */
function keptAliveGet(fleet: Fleet, agent: Agent, path: string): Promise<{ status: number; reused: boolean; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, fleet.server.adminUrl), { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('operator certificates are recorded (issue record imported at start, or at first use) and listed with name, serial, issued, expires, state', async (t) => {
  const data = await makeDataDir(t);
  const alice = await operator(t, data, 'alice');
  const fleet = await startFleet(t, { dataDir: data });
  // The data directory's own operator certificate (fleetgate init) is recorded at its first use.
  const listed = await cli(fleet, ['operator', 'list', '--json']);
  t.is(listed.code, 0, listed.stderr);
  const records = (JSON.parse(listed.stdout) as { credentials: CredentialRecord[] }).credentials;
  t.deepEqual(
    records.map((record) => [record.name, record.recordedVia, record.state]),
    [
      ['alice', 'issue', 'valid'],
      ['operator', 'first-use', 'valid'],
    ],
  );
  t.is(records[0]?.serial, alice.serial);
  t.truthy(records[0]?.issuedAt && records[0]?.expiresAt);
  const table = await cli(fleet, ['operator', 'list']);
  t.regex(table.stdout, /^NAME\s+SERIAL\s+ISSUED\s+EXPIRES\s+STATE/m);
  t.regex(table.stdout, new RegExp(`^alice\\s+${formatSerial(alice.serial)}\\s`, 'm'));
});

test('a revoked operator certificate is refused at once (401 ADMIN_OPERATOR_REVOKED), also on a connection kept alive from before', async (t) => {
  const data = await makeDataDir(t);
  const alice = await operator(t, data, 'alice');
  const fleet = await startFleet(t, { dataDir: data });
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: fleet.rootPem, cert: alice.certPem, key: alice.keyPem });
  t.teardown(() => agent.destroy());
  const before = await keptAliveGet(fleet, agent, '/v1/devices');
  t.is(before.status, 200);
  const revoked = await cli(fleet, ['operator', 'revoke', alice.serial]);
  t.is(revoked.code, 0, revoked.stderr);
  t.regex(revoked.stdout, /operator alice serial [0-9A-F]+: revoked .* by operator:operator/);
  const after = await keptAliveGet(fleet, agent, '/v1/devices');
  t.true(after.reused, 'the same TLS connection as before the revocation');
  t.is(after.status, 401);
  t.is((JSON.parse(after.body) as { error: { code: string } }).error.code, 'ADMIN_OPERATOR_REVOKED');
  const fresh = await admin(fleet, 'GET', '/v1/devices', { cert: alice.certPem, key: alice.keyPem });
  t.is(fresh.status, 401);
  // Audited with who revoked it.
  const audit = await fleet.server.registry.readAudit();
  t.like(audit.find((entry) => entry.type === 'credential-revoked'), { serial: alice.serial, actor: 'operator:operator', detail: 'operator alice' });
});

test('revoking the last valid operator certificate is refused (ADMIN_LAST_OPERATOR) unless forced; revoking by name; unknown and bad refs', async (t) => {
  const data = await makeDataDir(t);
  const fleet = await startFleet(t, { dataDir: data });
  const refused = await cli(fleet, ['operator', 'revoke', 'operator']);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /^fleetgate: ADMIN_LAST_OPERATOR: /m);
  t.like((await fleet.server.registry.listCredentials('operator'))[0], { name: 'operator', state: 'valid' });
  const missing = await admin(fleet, 'POST', '/v1/operators/revoke', { body: { ref: 'nobody' } });
  t.is(missing.status, 404);
  t.is(missing.json<{ error: { code: string } }>().error.code, 'ADMIN_CREDENTIAL_NOT_FOUND');
  for (const body of [{}, { ref: '../x' }, { ref: 'alice', force: 'yes' }, { ref: 'alice', extra: 1 }]) {
    const bad = await admin(fleet, 'POST', '/v1/operators/revoke', { body });
    t.is(bad.status, 400, JSON.stringify(body));
    t.is(bad.json<{ error: { code: string } }>().error.code, 'ADMIN_BAD_REQUEST');
  }
  t.is((await fleet.server.registry.listCredentials('operator')).filter((record) => record.state === 'revoked').length, 0, 'nothing revoked');
  const forced = await cli(fleet, ['operator', 'revoke', 'operator', '--force']);
  t.is(forced.code, 0, forced.stderr);
  const locked = await admin(fleet, 'GET', '/v1/devices');
  t.is(locked.status, 401);
});

test('a revoked service: its MQTT.js and mosquitto_sub sessions are dropped within a second, reconnects refused with CONNACK 5', async (t) => {
  const data = await makeDataDir(t);
  const backend = await service(t, data, 'backend');
  const fleet = await startFleet(t, { dataDir: data });
  t.like((await fleet.server.registry.listCredentials('service'))[0], { name: 'backend', serial: backend.serial, recordedVia: 'issue' });

  const client = await connectAsync(fleet.server.mqttUrl, mqttOptions(fleet, backend, { clientId: 'backend:1' }));
  t.teardown(() => client.endAsync(true));
  const dir = await tempDir(t);
  await writeFile(join(dir, 'b.crt'), backend.certPem);
  await writeFile(join(dir, 'b.key'), backend.keyPem, { mode: 0o600 });
  const sub = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-d', '-h', '127.0.0.1', '-p', String(fleet.server.mqttPort), '--cafile', fleet.layout.rootCert, '--cert', join(dir, 'b.crt'), '--key', join(dir, 'b.key'), '-V', 'mqttv311', '-i', 'backend:2', '-t', 'devices/#'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    sub.kill('SIGKILL');
  });
  let subOut = '';
  sub.stdout.on('data', (chunk: Buffer) => (subOut += chunk.toString()));
  const subExited = new Promise<number | null>((resolve) => sub.on('close', (code) => resolve(code)));
  await waitFor(() => /Subscribed \(mid: \d+\)/.test(subOut), { what: () => `mosquitto_sub to subscribe: ${subOut}`, timeoutMs: 15_000, intervalMs: 20 });

  const clientClosed = nextEvent(client as unknown as EventEmitter, 'close', { what: 'the MQTT.js session to be closed', timeoutMs: 15_000 });
  const started = Date.now();
  const revoked = await admin(fleet, 'POST', '/v1/services/revoke', { body: { ref: 'backend' } });
  t.is(revoked.status, 200, revoked.body.toString());
  const answered = Date.now();
  await clientClosed;
  const code = await withDeadline(subExited, { what: 'mosquitto_sub to exit', timeoutMs: 15_000 });
  const dropped = Date.now();
  t.not(code, 0);
  // Dropped as soon as the revocation is on disk: the answer and the drop come together.
  t.true(dropped - answered < 1000, `dropped ${dropped - answered} ms after the answer (${answered - started} ms to answer)`);
  t.is(await connackCode(fleet, backend, { clientId: 'backend:3' }), 5);
  const list = await cli(fleet, ['service', 'list']);
  t.regex(list.stdout, /^backend\s+[0-9A-F]+\s.*revoked .* by operator:operator/m);
});

test('a service certificate issued without a record is recorded at its first connection, then revocable by serial', async (t) => {
  const fleet = await startFleet(t);
  const backend = await serviceCredential(t, fleet, 'backend');
  const client = await connectAsync(fleet.server.mqttUrl, mqttOptions(fleet, backend, { clientId: 'backend:1' }));
  t.teardown(() => client.endAsync(true));
  const [record] = await waitFor(async () => {
    const records = await fleet.server.registry.listCredentials('service');
    return records.length > 0 ? records : undefined;
  }, { what: 'the service to be recorded', timeoutMs: 10_000, intervalMs: 20 });
  t.like(record, { name: 'backend', recordedVia: 'first-use', state: 'valid' });
  const closed = nextEvent(client as unknown as EventEmitter, 'close', { what: 'the session to be closed', timeoutMs: 15_000 });
  const revoked = await cli(fleet, ['service', 'revoke', record?.serial ?? '']);
  t.is(revoked.code, 0, revoked.stderr);
  await closed;
  t.is(await connackCode(fleet, backend, { clientId: 'backend:2' }), 5);
});
