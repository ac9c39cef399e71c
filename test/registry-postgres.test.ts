import test from 'ava';
import pg from 'pg';
import { RegistryError } from '../server/src/registry/errors.ts';
import { schemaVersion } from '../server/src/registry/postgres/migrate.ts';
import { PostgresRegistry } from '../server/src/registry/postgres/postgres-registry.ts';
import { SCHEMA_VERSION } from '../server/src/registry/postgres/schema.ts';
import type { DeviceChange, DeviceRecord, Registry } from '../server/src/registry/types.ts';
import { RECORD_TIME as NOW, enrollmentCommit as enrollment } from './helpers/registry-records.ts';
import { sharedPostgres, startPostgres, stopSharedPostgres, type PostgresServer } from './helpers/postgres.ts';
import { untilClockPasses, withDeadline, waitFor } from './helpers/wait.ts';

/*
 * What only a registry shared by several processes must do. Each handle opened here has its own
 * pool and its own LISTEN connection, as a separate fleetgate process would; the whole-server
 * version (4 processes x 250 enrollments) is in test/postgres-processes.test.ts.
 */

test.after.always(stopSharedPostgres);

async function open(t: import('ava').ExecutionContext, url: string, options: Parameters<typeof PostgresRegistry.open>[1] = {}): Promise<PostgresRegistry> {
  const registry = await PostgresRegistry.open(url, options);
  t.teardown(() => registry.close());
  return registry;
}

/** A server of the test's own, for tests that stop it. */
async function ownServer(t: import('ava').ExecutionContext): Promise<PostgresServer> {
  const server = await startPostgres();
  t.teardown(() => server.destroy());
  return server;
}

/** Resolves with the first change a listener sees that matches. */
function nextChange(registry: Registry, accept: (change: DeviceChange) => boolean): Promise<DeviceChange> {
  return new Promise((resolve) => {
    const stop = registry.onDeviceChange((change) => {
      if (!accept(change)) return;
      stop();
      resolve(change);
    });
  });
}

test('processes starting at once against an empty database: the schema is made once, under the advisory lock', async (t) => {
  const url = await (await sharedPostgres()).createDatabase();
  const handles = await Promise.all(Array.from({ length: 4 }, () => open(t, url)));
  t.is(handles.length, 4);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.teardown(() => client.end());
  t.is(await schemaVersion(client as unknown as pg.Pool), SCHEMA_VERSION);
  t.deepEqual((await client.query('SELECT version FROM schema_migrations ORDER BY version')).rows, [{ version: 1 }]);
});

test('a database whose schema is newer than this fleetgate is refused with a clear error, and left alone', async (t) => {
  const url = await (await sharedPostgres()).createDatabase();
  await (await PostgresRegistry.open(url)).close();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.teardown(() => client.end());
  await client.query("INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')");
  const error = await t.throwsAsync(PostgresRegistry.open(url));
  t.is((error as RegistryError).code, 'REGISTRY_IO');
  t.regex((error as Error).message, /schema version 999, newer than this fleetgate knows \(1\)/);
  t.is((await client.query('SELECT count(*)::int AS n FROM schema_migrations')).rows[0].n, 2);
});

test('four handles enrolling and revoking at once: one strict audit chain, every issuance recorded, no device overwritten', async (t) => {
  const url = await (await sharedPostgres()).createDatabase();
  const handles = await Promise.all(Array.from({ length: 4 }, () => open(t, url)));
  // Each handle enrolls its own 100 devices, and all four race for 20 shared ones.
  const work = handles.flatMap((registry, index) => [
    ...Array.from({ length: 100 }, (_, n) => registry.commitIssuance(enrollment(`own-${index}-${n}`, `${index}f${n}`))),
    ...Array.from({ length: 20 }, (_, n) => registry.commitIssuance(enrollment(`shared-${n}`, `${index}e${n}`))),
  ]);
  const results = await Promise.allSettled(work);
  const refused = results.filter((result) => result.status === 'rejected');
  t.is(refused.length, 60, 'each shared device enrolled once, by one handle');
  for (const result of refused) t.is(((result as PromiseRejectedResult).reason as RegistryError).code, 'REGISTRY_CONFLICT');
  // Revocations from every handle while the renewals of others go on.
  await Promise.all(handles.map((registry, index) => registry.changeState({ deviceId: `own-${(index + 1) % 4}-0`, to: 'revoked', actor: `operator:h${index}` })));
  const [first] = handles;
  if (!first) throw new Error('no handle');
  t.is((await first.listDevices()).length, 420);
  const verification = await first.verifyAudit();
  t.true(verification.ok, JSON.stringify(verification));
  // 420 enrollments, 4 revocations (each with its cert-revoked entry).
  t.is(verification.entries, 428);
  const seqs = (await first.readAudit()).map((entry) => entry.seq);
  t.deepEqual(seqs, Array.from({ length: 428 }, (_, index) => index + 1));
  t.is((await first.revokedSerials()).size, 4);
});

test('a revocation, a trust change and a credential revocation through one process reach another within 1 s', async (t) => {
  const url = await (await sharedPostgres()).createDatabase();
  const [writer, reader] = await Promise.all([open(t, url), open(t, url)]);
  await writer.commitIssuance(enrollment('camera-1', 'c1'));
  const seen = nextChange(reader, (change) => change.device.state === 'revoked');
  const started = performance.now();
  await writer.changeState({ deviceId: 'camera-1', to: 'revoked', actor: 'operator:test' });
  const change = await withDeadline(seen, { what: 'the revocation at the other process', timeoutMs: 5_000 });
  const elapsed = performance.now() - started;
  t.deepEqual(change.revokedSerials, ['c1']);
  t.true(elapsed < 1_000, `${elapsed.toFixed(0)} ms`);
  t.log(`revocation seen by the other process after ${elapsed.toFixed(1)} ms`);

  const trust = new Promise<void>((resolve) => reader.onTrustChange(resolve));
  await writer.putTrust({ name: 'acme', model: 'camera', caPem: 'PEM', fingerprint: 'ff', namespace: 'acme.', createdAt: NOW, actor: 'operator:test' });
  await withDeadline(trust, { what: 'the trust change at the other process', timeoutMs: 1_000 });

  const credential = new Promise<string>((resolve) => reader.onCredentialChange((record) => record.state === 'revoked' && resolve(record.name)));
  await writer.recordCredential({ kind: 'service', name: 'ingest', serial: '5e', issuedAt: NOW, expiresAt: '2099-01-01T00:00:00.000Z', state: 'valid', recordedVia: 'issue', recordedAt: NOW }, 'system');
  await writer.revokeCredentials({ kind: 'service', ref: 'ingest', actor: 'operator:test' });
  t.is(await withDeadline(credential, { what: 'the credential revocation at the other process', timeoutMs: 1_000 }), 'ingest');
});

test('PostgreSQL restarted between a revocation and the check: the other process catches up when it reconnects; during the outage calls fail fast with REGISTRY_UNAVAILABLE and write nothing', async (t) => {
  const server = await ownServer(t);
  const url = await server.createDatabase();
  const [writer, reader] = await Promise.all([open(t, url, { connectTimeoutMs: 1_000 }), open(t, url, { connectTimeoutMs: 1_000 })]);
  await writer.commitIssuance(enrollment('car-1', 'a1'));
  await writer.commitIssuance(enrollment('car-2', 'a2'));
  const states = new Map<string, string>();
  reader.onDeviceChange((change) => states.set(change.device.id, change.device.state));

  await server.stop();
  await waitFor(() => !reader.following, { what: 'the reader to notice its LISTEN connection dropped' });
  // The outage: every call answers at once with REGISTRY_UNAVAILABLE.
  for (const call of [() => writer.getDevice('car-1'), () => writer.changeState({ deviceId: 'car-1', to: 'revoked', actor: 'operator:test' }), () => writer.commitIssuance(enrollment('car-3', 'a3'))]) {
    const started = performance.now();
    const error = await t.throwsAsync(call());
    t.is((error as RegistryError).code, 'REGISTRY_UNAVAILABLE', (error as Error).message);
    t.true(performance.now() - started < 2_000, 'no hang');
  }

  await server.start();
  // The revocation, made while the reader is still reconnecting: its NOTIFY goes to nobody.
  await waitFor(() => writer.changeState({ deviceId: 'car-1', to: 'revoked', actor: 'operator:test' }).then(() => true, () => false), { what: 'the writer to reach the database again' });
  await waitFor(() => states.get('car-1') === 'revoked', { what: 'the reader to catch up on the revocation', timeoutMs: 10_000 });
  t.true(reader.following);
  // Nothing of the refused calls was written; the chain is whole.
  t.is(await writer.getDevice('car-3'), undefined);
  t.like(await writer.verifyAudit(), { ok: true, entries: 4 });
  // And live notifications flow again.
  await writer.changeState({ deviceId: 'car-2', to: 'disabled', actor: 'operator:test' });
  await waitFor(() => states.get('car-2') === 'disabled', { what: 'a change after the restart', timeoutMs: 2_000 });
});

test('after an outage of 3 s, a revocation committed as soon as the database answers reaches another process within 1 s', async (t) => {
  const server = await ownServer(t);
  const url = await server.createDatabase();
  const [writer, reader] = await Promise.all([open(t, url, { connectTimeoutMs: 1_000 }), open(t, url, { connectTimeoutMs: 1_000 })]);
  await writer.commitIssuance(enrollment('car-1', 'a1'));
  const seen = new Map<string, number>();
  reader.onDeviceChange((change) => {
    if (change.device.state === 'revoked') seen.set(change.device.id, performance.now());
  });
  const downAt = Date.now();
  await server.stop();
  await waitFor(() => !reader.following, { what: 'the reader to notice its LISTEN connection dropped' });
  // Long enough for the reader's reconnection backoff to reach its cap.
  await untilClockPasses(downAt + 3_000, { what: 'three seconds of outage' });
  await server.start();
  const committed = await waitFor(
    () => writer.changeState({ deviceId: 'car-1', to: 'revoked', actor: 'operator:test' }).then(() => performance.now(), () => undefined),
    { what: 'the writer to reach the database again' },
  );
  const arrived = await waitFor(() => seen.get('car-1'), { what: 'the reader to catch up on the revocation', timeoutMs: 5_000 });
  t.true(arrived - committed < 1_000, `reached the other process ${(arrived - committed).toFixed(0)} ms after its commit`);
});

test('changes pruned before a process read them: it replays the registry instead of missing them', async (t) => {
  const url = await (await sharedPostgres()).createDatabase();
  const [writer, reader] = await Promise.all([open(t, url), open(t, url)]);
  const replayed = new Map<string, DeviceChange>();
  reader.onDeviceChange((change) => replayed.set(change.device.id, change));
  await writer.commitIssuance(enrollment('lamp-1', 'b1'));
  await writer.commitIssuance(enrollment('lamp-2', 'b2'));
  await waitFor(() => replayed.size === 2, { what: 'the enrollments to reach the reader' });
  replayed.clear();

  // Another process revokes lamp-1, and in the same transaction every change but the newest is
  // pruned (as a reader away longer than the retention would find): the reader never sees it.
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  t.teardown(() => admin.end());
  await admin.query('BEGIN');
  const next = Number((await admin.query('SELECT change_seq FROM registry_head FOR UPDATE')).rows[0].change_seq) + 1;
  const device = (await admin.query("SELECT record FROM devices WHERE id = 'lamp-1'")).rows[0].record as DeviceRecord;
  const revoked: DeviceRecord = { ...device, state: 'revoked' };
  await admin.query("UPDATE devices SET state = 'revoked', record = $1 WHERE id = 'lamp-1'", [JSON.stringify(revoked)]);
  await admin.query(`UPDATE certificates SET status = 'revoked', record = (record::jsonb || '{"status":"revoked"}')::json WHERE serial = 'b1'`);
  await admin.query("INSERT INTO changes (seq, kind, payload) VALUES ($1, 'device', $2), ($3, 'trust', '{}')", [next, JSON.stringify({ device: revoked, revokedSerials: ['b1'] }), next + 1]);
  await admin.query('UPDATE registry_head SET change_seq = $1', [next + 1]);
  await admin.query('DELETE FROM changes WHERE seq < $1', [next + 1]);
  await admin.query("SELECT pg_notify('fleetgate_changes', $1)", [String(next + 1)]);
  await admin.query('COMMIT');

  await waitFor(() => replayed.get('lamp-1')?.device.state === 'revoked', { what: 'the replayed revocation', timeoutMs: 5_000 });
  t.deepEqual(replayed.get('lamp-1')?.revokedSerials, ['b1']);
  t.true(replayed.has('lamp-2'), 'the replay covers every device');
});
