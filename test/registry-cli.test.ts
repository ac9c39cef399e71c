import test from 'ava';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import type { RegistryStatus } from '../server/src/registry/types.ts';
import { fleetgate, refused } from './helpers/cli.ts';
import { connackCode, enrolledDevices } from './helpers/device.ts';
import { makeDataDir, startFleet } from './helpers/fleet.ts';
import { sharedPostgres, stopSharedPostgres } from './helpers/postgres.ts';
import { tempDir } from './helpers/temp-dir.ts';

/*
 * `fleetgate init --registry`, `registry status`, `registry export` and `registry import`: the
 * operator's way onto PostgreSQL, and the registry's backup format.
 */

test.after.always(stopSharedPostgres);

async function status(args: string[]): Promise<RegistryStatus> {
  const result = await fleetgate(['registry', 'status', ...args, '--json']);
  if (result.code !== 0) throw new Error(`registry status failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as RegistryStatus;
}

test('init --registry makes the schema and records the URL without its password; registry status shows the version', async (t) => {
  const url = await (await sharedPostgres()).createDatabase();
  const dir = await tempDir(t);
  const withPassword = url.replace('fleetgate@', 'fleetgate:s3cret@');
  // Trust authentication ignores the password; what matters is where it ends up.
  const init = await fleetgate(['init', '--data', dir, '--registry', withPassword]);
  t.is(init.code, 0, init.stderr);
  t.regex(init.stdout, /registry postgres:\/\/fleetgate:\*\*\*@127\.0\.0\.1:\d+\/\w+: PostgreSQL schema version 1 \(from 0\)/);
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { registry: { url: string; poolSize: number } };
  t.is(config.registry.url, url);
  t.is(config.registry.poolSize, 10);
  t.false((await readFile(join(dir, 'config.json'), 'utf8')).includes('s3cret'));
  // Again: nothing to migrate; config.json kept.
  const again = await fleetgate(['init', '--data', dir, '--registry', url, '--json']);
  t.is(again.code, 0, again.stderr);
  t.like(JSON.parse(again.stdout), { registry: { schemaVersion: 1, migratedFrom: 1 } });
  // status through config.json's registry.url, and through the flag.
  t.like(await status(['--data', dir]), { engine: 'postgres', schemaVersion: 1, certificates: 0, audit: { entries: 0 } });
  t.like(await status(['--registry', url]), { engine: 'postgres', schemaVersion: 1 });
  const text = await fleetgate(['registry', 'status', '--registry', url]);
  t.regex(text.stdout, /^engine {10}postgres$/m);
  t.regex(text.stdout, /^schema version {2}1$/m);
});

test('a LevelDB fleet moves to PostgreSQL: export, import, equal counts, the audit chain verifies, devices connect without enrolling again', async (t) => {
  const data = await makeDataDir(t);
  const leveldb = await startFleet(t, { dataDir: data });
  const devices = await enrolledDevices(t, leveldb, 'thermostat', 3);
  const [kept, gone] = devices;
  if (!kept || !gone) throw new Error('no devices');
  await leveldb.server.registry.changeState({ deviceId: gone.id, to: 'revoked', actor: 'operator:test', revocationReason: 'keyCompromise' });
  await leveldb.server.close();

  const before = await status(['--data', data.dir]);
  t.like(before, { engine: 'leveldb', schemaVersion: null, devices: { enrolled: 2, revoked: 1 }, certificates: 3 });
  const file = join(await tempDir(t), 'fleet.jsonl');
  const exported = await fleetgate(['registry', 'export', '--data', data.dir, '--out', file]);
  t.is(exported.code, 0, exported.stderr);
  t.regex(exported.stdout, /^exported 3 devices, 3 certificates, 0 trusts, \d+ credentials, 0 batches, \d+ audit entries to /);
  t.is((await stat(file)).mode & 0o777, 0o600);

  const url = await (await sharedPostgres()).createDatabase();
  const imported = await fleetgate(['registry', 'import', '--registry', url, '--in', file, '--json']);
  t.is(imported.code, 0, imported.stderr);
  t.like(JSON.parse(imported.stdout), { counts: { device: 3, certificate: 3 }, auditHead: before.audit.head });
  const after = await status(['--registry', url]);
  t.deepEqual({ ...after, engine: 'leveldb', location: before.location, schemaVersion: null }, before, 'same devices, certificates, credentials, audit head and CRL number');
  const verify = await import('../server/src/registry/postgres/postgres-registry.ts').then(async ({ PostgresRegistry }) => {
    const registry = await PostgresRegistry.open(url);
    try {
      return await registry.verifyAudit();
    } finally {
      await registry.close();
    }
  });
  t.like(verify, { ok: true, entries: before.audit.entries, head: before.audit.head });

  // The same data directory served from PostgreSQL: the enrolled device connects with the
  // certificate it has, the revoked one is still refused.
  const postgres = await startFleet(t, { dataDir: data, registryUrl: url });
  t.is(await connackCode(postgres, kept.operational), 0);
  t.is(await connackCode(postgres, gone.operational), 5);

  // Importing again into a registry that is not empty writes nothing.
  await postgres.server.close();
  const twice = await fleetgate(['registry', 'import', '--registry', url, '--in', file]);
  refused(t, twice, 'import into a registry that is not empty', 1, 'REGISTRY_NOT_EMPTY');
  t.like(await status(['--registry', url]), { certificates: 3, audit: { entries: before.audit.entries } });
});

test('registry import refuses a file cut short, altered or not an export, and writes nothing; bad options are usage errors', async (t) => {
  const data = await makeDataDir(t);
  const fleet = await startFleet(t, { dataDir: data });
  await enrolledDevices(t, fleet, 'camera', 2);
  await fleet.server.close();
  const dir = await tempDir(t);
  const file = join(dir, 'fleet.jsonl');
  t.is((await fleetgate(['registry', 'export', '--data', data.dir, '--out', file])).code, 0);
  const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
  const variants: [string, string[], RegExp][] = [
    ['cut short (no end line)', lines.slice(0, -1), /no end line: it was cut short/],
    ['a device taken out', lines.filter((line, index) => !(index > 0 && line.startsWith('{"kind":"device"') && lines.indexOf(line) === lines.findIndex((other) => other.startsWith('{"kind":"device"')))), /counts 2 device records, the file holds 1/],
    ['an audit entry altered', lines.map((line) => (line.startsWith('{"kind":"audit"') ? line.replace('"enrolled"', '"renewed"') : line)), /audit chain: entry \d+ was altered/],
    ['not an export', ['{"hello":"world"}'], /not a fleetgate registry export/],
    ['not JSON', ['format: fleetgate'], /line 1: not JSON/],
  ];
  const url = await (await sharedPostgres()).createDatabase();
  for (const [label, content, message] of variants) {
    const broken = join(dir, `${label.replaceAll(' ', '-')}.jsonl`);
    await writeFile(broken, `${content.join('\n')}\n`);
    const result = await fleetgate(['registry', 'import', '--registry', url, '--in', broken]);
    refused(t, result, label, 1, 'REGISTRY_EXPORT_INVALID', message);
    t.like(await status(['--registry', url]), { devices: { enrolled: 0 }, certificates: 0, audit: { entries: 0 } }, `${label}: nothing written`);
  }
  refused(t, await fleetgate(['registry', 'import', '--registry', 'mysql://db/fleet', '--in', file]), 'a registry URL that is not PostgreSQL', 2, 'CLI_USAGE', /--registry must be a PostgreSQL URL/);
  refused(t, await fleetgate(['registry', 'import', '--registry', url, '--in', join(dir, 'missing.jsonl')]), 'a missing file', 1, 'CLI_INPUT_INVALID', /cannot read --in .*missing\.jsonl \(ENOENT\)/);
  refused(t, await fleetgate(['registry', 'export', '--data', join(dir, 'nowhere'), '--out', join(dir, 'x.jsonl')]), 'no registry to export', 1, 'CLI_INPUT_INVALID', /no LevelDB registry at/);
  refused(t, await fleetgate(['serve', '--data', data.dir, '--registry', 'leveldb']), 'serve --registry without a URL', 2, 'CLI_USAGE');
  // The database down: a clear error, not a stack trace.
  const down = `postgres://fleetgate@127.0.0.1:1/none`;
  refused(t, await fleetgate(['registry', 'status', '--registry', down]), 'database unreachable', 1, 'REGISTRY_UNAVAILABLE', /does not answer/);
  // A fresh database stays empty after all of it.
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.teardown(() => client.end());
  t.is((await client.query('SELECT count(*)::int AS n FROM devices')).rows[0].n, 0);
});
