import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PostgresRegistry } from '../server/src/registry/postgres/postgres-registry.ts';
import { DOC_FENCE_LANGUAGES, REPO_ROOT, bashBlocks, docEnvironment, fencedBlocks, freeListenerPortSets, isListening, runDocScript, tail } from './helpers/doc-script.ts';
import { startPostgres } from './helpers/postgres.ts';
import { tempDir } from './helpers/temp-dir.ts';

/*
 * docs/postgres.md is executable: its ```bash blocks, in order, set up a data directory on
 * PostgreSQL, run two `fleetgate serve` processes on one registry (a device enrolled through one,
 * revoked through the other, refused by the first one's broker), read the registry while they run,
 * back it up, and move a LevelDB fleet into a second database. This test gives the guide a
 * throwaway PostgreSQL of its own (two databases), runs exactly those blocks in one bash in an
 * empty directory with free ports, checks what the guide claims to show, and then reads both
 * registries it left behind.
 */

const GUIDE = join(REPO_ROOT, 'docs', 'postgres.md');
/** About 25 CLI calls at a process start each, three servers started, openssl, curl, mosquitto. */
const TIMEOUT_MS = 180_000;

/** Lines that call an operator command of the CLI (they reach the admin API). */
const ADMIN_CALL = /\bfleetgate (device|audit|crl|bootstrap (trust|list|untrust))\b/;

test('every code block of docs/postgres.md is marked bash or text, every admin call names its process, the database comes from the reader', async (t) => {
  const blocks = fencedBlocks(await readFile(GUIDE, 'utf8'));
  for (const block of blocks) {
    t.true(DOC_FENCE_LANGUAGES.has(block.language), `line ${block.line}: fence language "${block.language}" (use bash, text or console)`);
  }
  // The reader's own database server: shown, never run.
  const shown = blocks.filter((block) => block.language === 'text').map((block) => block.body).join('\n');
  t.regex(shown, /^export FLEETGATE_REGISTRY_URL=postgres:\/\/fleetgate@127\.0\.0\.1:5432\/fleetgate$/m);
  t.regex(shown, /createuser --pwprompt fleetgate/);
  t.regex(shown, /createdb --owner fleetgate fleetgate\b/);
  t.regex(shown, /pg_dump -Fc /);
  t.regex(shown, /pg_restore /);
  const runnable = await bashBlocks(GUIDE);
  t.true(runnable.length >= 12, 'the walk-through has its steps as bash blocks');
  t.regex(runnable[0]?.body ?? '', /\$\{FLEETGATE_REGISTRY_URL:\?/, 'the walk-through stops at once without a database');
  t.regex(runnable[0]?.body ?? '', /fleetgate init --data "\$DATA" --registry "\$FLEETGATE_REGISTRY_URL"/);
  t.regex(runnable.at(-1)?.body ?? '', /kill "\$MOVED_PID"/, 'the walk-through ends by stopping the server it started');
  const script = runnable.map((block) => block.body).join('\n');
  t.notRegex(script, /\b(createdb|createuser|dropdb|pg_restore)\b/, 'the script never creates or changes databases');
  for (const variable of ['EST_PORT', 'MQTT_PORT', 'ADMIN_PORT', 'METRICS_PORT']) {
    for (const name of [variable, `${variable}_2`]) {
      t.true(script.includes(`${name}=\${${name}:-`), `${name} has a default`);
      t.true(script.includes(`--${variable.toLowerCase().replace('_', '-')} "$${name}"`), `fleetgate serve gets --${variable.toLowerCase().replace('_', '-')} "$${name}"`);
    }
  }
  const calls = script.split('\n').filter((line) => !line.trim().startsWith('#') && ADMIN_CALL.test(line));
  t.true(calls.length >= 6, `${calls.length} admin calls`);
  for (const line of calls) {
    t.true(/"\$\{(OPS1|OPS2|LEGACY_OPS)\[@\]\}"/.test(line), `passes the server: ${line}`);
  }
});

test('the commands of docs/postgres.md run two processes on one PostgreSQL registry and move a LevelDB fleet onto another', async (t) => {
  const postgres = await startPostgres();
  t.teardown(() => postgres.destroy());
  const [registryUrl, movedUrl] = await Promise.all([postgres.createDatabase(), postgres.createDatabase()]);
  if (!registryUrl || !movedUrl) throw new Error('no databases');
  const cwd = await tempDir(t, 'fleetgate-docs-postgres-');
  const [first, second] = await freeListenerPortSets(2);
  if (!first || !second) throw new Error('no ports');
  const env = {
    ...docEnvironment(first),
    EST_PORT_2: String(second.est),
    MQTT_PORT_2: String(second.mqtt),
    ADMIN_PORT_2: String(second.admin),
    METRICS_PORT_2: String(second.metrics),
    FLEETGATE_REGISTRY_URL: registryUrl,
    MOVED_REGISTRY_URL: movedUrl,
  };
  const result = await runDocScript(t, GUIDE, { cwd, env, timeoutMs: TIMEOUT_MS });
  const { report } = result;
  t.false(result.timedOut, report);
  t.is(result.code, 0, report);
  const out = result.stdout;
  const database = (url: string): string => new URL(url).pathname.slice(1);
  const [id = ''] = (JSON.parse(await readFile(join(cwd, 'lot.json'), 'utf8')) as { devices: { id: string }[] }).devices.map((device) => device.id);
  const [kept = '', gone = ''] = (JSON.parse(await readFile(join(cwd, 'legacy-lot.json'), 'utf8')) as { devices: { id: string }[] }).devices.map((device) => device.id);

  // 1. init makes the schema and records the URL; status on the empty registry.
  t.regex(out, new RegExp(`^registry postgres://fleetgate@127\\.0\\.0\\.1:${postgres.port}/${database(registryUrl)}: PostgreSQL schema version 1 \\(from 0\\)$`, 'm'), report);
  t.regex(out, new RegExp(`^ {4}"url": "${registryUrl}"$`, 'm'), report);
  t.regex(out, /^engine {10}postgres\nlocation {8}postgres:\/\/\S+\nschema version {2}1\ndevices {9}0 \(0 provisioned, 0 enrolled, 0 disabled, 0 revoked\)$/m, report);

  // 2-3. Two processes on PostgreSQL; enrolled at one, listed and seen online by the other, revoked there, refused at both.
  t.regex(out, /^"engine":"postgres"\n"engine":"postgres"$/m, report);
  t.regex(out, new RegExp(`^enrolled ${id} at port ${first.est}$`, 'm'), report);
  t.regex(out, new RegExp(`^${id}\\s+thermostat\\s+enrolled\\s+\\d{4}-`, 'm'), report);
  t.regex(out, /^connected\s+yes, since \S+ \S+ from 127\.0\.0\.1 on node \S+$/m, report);
  t.regex(out, new RegExp(`^device ${id} revoked \\(keyCompromise\\): `, 'm'), report);
  t.regex(out, /^the session at the first process was dropped \(mosquitto_sub exit \d+\)$/m, report);
  for (const port of [first.mqtt, second.mqtt]) {
    t.regex(out, new RegExp(`Connection Refused: not authori[sz]ed\\.\\n(.*\\n)?refused at port ${port} \\(mosquitto_pub exit 5\\)$`, 'm'), report);
  }
  const verified = [...out.matchAll(/^audit log intact: (\d+) entries, head ([0-9a-f]{64})$/gm)].map((match) => `${match[1]} ${match[2]}`);
  t.is(verified.length, 2, report);
  t.is(verified[0], verified[1], 'both processes verify the same chain');
  t.regex(out, new RegExp(`^\\d+\\s+\\S+ \\S+\\s+enrolled\\s+device:${id}\\s`, 'm'), report);
  t.regex(out, /^\d+\s+\S+ \S+\s+revoked\s+operator:operator\s+keyCompromise; serial /m, report);

  // 4. Status while running, the schema, a backup while running.
  t.regex(out, /^devices {9}1 \(0 provisioned, 0 enrolled, 0 disabled, 1 revoked\)$/m, report);
  t.regex(out, /^ +1 \| registry *$/m, report);
  t.regex(out, /^ audit_seq \| change_seq \| crl_number *$/m, report);
  t.regex(out, /^exported 1 devices, 1 certificates, 0 trusts, \d+ credentials, 1 batches, \d+ audit entries to \S+backup\.jsonl$/m, report);

  // 5. The LevelDB fleet, exported, refused when altered, imported once, served from PostgreSQL.
  t.regex(out, /^"engine":"leveldb"$/m, report);
  const exported = /^exported 2 devices, 2 certificates, 0 trusts, (\d+) credentials, 1 batches, (\d+) audit entries to \S+legacy\.jsonl\naudit head ([0-9a-f]{64})$/m.exec(out);
  t.truthy(exported, report);
  const [, credentials, entries, head] = exported ?? [];
  t.regex(result.stderr, /^fleetgate: REGISTRY_EXPORT_INVALID: tampered\.jsonl: line \d+: audit chain: entry \d+ was altered$/m, report);
  t.regex(out, new RegExp(`^refused \\(exit 1\\)\\nimported 2 devices, 2 certificates, 0 trusts, ${credentials} credentials, 1 batches, ${entries} audit entries from legacy\\.jsonl\\naudit head ${head}\\nrefused \\(exit 1\\)$`, 'm'), report);
  t.regex(result.stderr, new RegExp(`^fleetgate: REGISTRY_NOT_EMPTY: the registry at postgres://fleetgate@127\\.0\\.0\\.1:${postgres.port}/${database(movedUrl)} already holds devices or audit entries$`, 'm'), report);
  t.regex(out, /^updated  \S+legacy\/config\.json$/m, report);
  t.regex(out, /^"engine":"postgres"\n(.*\n)*?.* connected with its old certificate$/m, report);
  t.regex(out, new RegExp(`^${kept} connected with its old certificate\\n${gone} refused \\(mosquitto_pub exit 5\\)$`, 'm'), report);
  t.regex(out, new RegExp(`^audit entries {3}\\d+, head [0-9a-f]{64}$`, 'm'), report);

  // Every server the guide started was stopped by it.
  for (const log of ['gw1.log', 'gw2.log', 'legacy.log', 'moved.log']) {
    const text = await readFile(join(cwd, log), 'utf8');
    t.regex(text, /"msg":"fleetgate stopped"/, `${log}: ${tail(text)}`);
  }
  for (const port of [first.est, first.mqtt, first.admin, second.est, second.mqtt, second.admin]) {
    t.false(await isListening(port), `port ${port} still accepts connections after the guide stopped its servers`);
  }

  // What the guide left in the two databases.
  const shared = await PostgresRegistry.open(registryUrl);
  t.teardown(() => shared.close());
  t.like(await shared.getDevice(id), { state: 'revoked', stateReason: 'keyCompromise' });
  t.like(await shared.verifyAudit(), { ok: true });
  const moved = await PostgresRegistry.open(movedUrl);
  t.teardown(() => moved.close());
  t.like(await moved.getDevice(kept), { state: 'enrolled' });
  t.like(await moved.getDevice(gone), { state: 'revoked' });
  // The move kept the chain: the same head, and the entries the served fleet added after it.
  const verification = await moved.verifyAudit();
  t.like(verification, { ok: true });
  t.true(verification.entries >= Number(entries), `${verification.entries} entries after the move, ${entries} moved`);
  t.like(await moved.readAudit({ after: Number(entries) - 1, limit: 1 }), [{ seq: Number(entries), hash: head }]);
});
