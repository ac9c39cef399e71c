/**
 * Querying the audit log (issue 13): the registry reads newest or oldest first by sequence with
 * filters and a cursor; the admin API takes them and refuses bad values with a code; `fleetgate
 * audit` lists newest first with --since/--until/--type/--actor/--device/--limit, pages through
 * the API, follows new entries until SIGINT; `audit export` writes the chain as JSON Lines and
 * `audit verify --file [--head]` checks it with no server. Also the one-line usage errors of
 * parseCommandArgs.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { readFile, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { auditCommand, auditExportCommand, auditVerifyCommand } from '../server/src/cli/commands/audit.ts';
import { AUDIT_GENESIS, sealAuditEntry } from '../server/src/registry/audit-chain.ts';
import { LevelRegistry } from '../server/src/registry/level/level-registry.ts';
import { AUDIT_HEAD_KEY, auditKey } from '../server/src/registry/level/write-queue.ts';
import type { AuditEntry, AuditEvent, AuditPage, AuditQuery, RegistryRecord } from '../server/src/registry/types.ts';
import { ENGINES } from './helpers/registries.ts';
import { stopSharedPostgres } from './helpers/postgres.ts';
import { admin } from './helpers/admin-client.ts';
import { fleetgate, refused, STACK_TRACE } from './helpers/cli.ts';
import { enrolledDevices } from './helpers/device.ts';
import { makeDataDir, startFleet, type Fleet } from './helpers/fleet.ts';
import type { RunResult } from './helpers/run.ts';
import { FLEETGATE_BIN } from './helpers/serve-process.ts';
import { SOURCE_NODE_ARGS } from './helpers/source-node.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { waitFor, withDeadline } from './helpers/wait.ts';
import { AUDIT_TYPES } from '../server/src/registry/types.ts';

const T0 = Date.parse('2026-11-23T10:00:00.000Z');

test.after.always(stopSharedPostgres);

/** Runs the CLI against the fleet with the data directory's operator credential. */
function cli(fleet: Fleet, args: readonly string[]): Promise<RunResult> {
  return fleetgate([...args, '--data', fleet.dir, '--server', fleet.server.adminUrl]);
}


/** A chain of `count` sealed entries, as {@link seedChain} writes them. */
function sealedChain(count: number, event: (seq: number) => AuditEvent = defaultEvent): AuditEntry[] {
  const entries: AuditEntry[] = [];
  let prevHash = AUDIT_GENESIS;
  for (let seq = 1; seq <= count; seq++) {
    const entry = sealAuditEntry(event(seq), seq, new Date(T0 + seq * 60_000).toISOString(), prevHash);
    prevHash = entry.hash;
    entries.push(entry);
  }
  return entries;
}

/** Audit entries as the records of a registry import (how the suite seeds any engine). */
async function* asRecords(entries: readonly AuditEntry[]): AsyncGenerator<RegistryRecord> {
  for (const entry of entries) yield { kind: 'audit', record: entry };
}

/**
 * Writes a chain of `count` entries straight into a registry directory (as the write queue
 * would: sealed, keyed by sequence, indexed by device, with the head), one minute apart from T0.
 * Entry i (1-based): device `thermostat-<i % 3>`, type by i % 4, actor by i % 5.
 */
async function seedChain(path: string, count: number, event: (seq: number) => AuditEvent = defaultEvent): Promise<AuditEntry[]> {
  const db = new Level<string, string>(path, { valueEncoding: 'utf8' });
  await db.open();
  const entries = sealedChain(count, event);
  let batch = db.batch();
  for (const entry of entries) {
    batch.put(auditKey(entry.seq), JSON.stringify(entry));
    if (entry.deviceId) batch.put(`ad!${entry.deviceId}!${auditKey(entry.seq).slice(2)}`, '');
    if (entry.seq % 5_000 === 0) {
      await batch.write();
      batch = db.batch();
    }
  }
  batch.put(AUDIT_HEAD_KEY, JSON.stringify({ seq: count, hash: entries.at(-1)?.hash ?? AUDIT_GENESIS }));
  await batch.write();
  await db.close();
  return entries;
}

const TYPES = ['enrolled', 'renewed', 'refused', 'disabled'] as const;
const ACTORS = ['system', 'operator:alice', 'operator:bob', 'device:thermostat-aaaaaaaaaaa1', 'trust:acme'] as const;
function defaultEvent(seq: number): AuditEvent {
  return { type: TYPES[seq % 4] ?? 'enrolled', deviceId: `thermostat-aaaaaaaaaaa${seq % 3}`, actor: ACTORS[seq % 5] ?? 'system', detail: `event ${seq}` };
}

const seqs = (entries: readonly AuditEntry[]): number[] => entries.map((entry) => entry.seq);
const range = (from: number, to: number): number[] => Array.from({ length: Math.abs(to - from) + 1 }, (_, index) => (from <= to ? from + index : from - index));

// ---------------------------------------------------------------------------------------------
// The registry

for (const engine of ENGINES) {
  test(`registry (${engine.name}): newest first by sequence with a cursor; filters applied while reading; a bounded scan ends the page early`, async (t) => {
    const { registry } = await engine.create(t);
    const all = sealedChain(200);
    await registry.importRecords(asRecords(all));

    // Oldest first stays the default of the registry (device show, tests read it that way).
    t.deepEqual(seqs(await registry.readAudit({ limit: 3 })), [1, 2, 3]);
    const newest = await registry.readAuditPage({ order: 'newest', limit: 3 });
    t.deepEqual(seqs(newest.entries), [200, 199, 198]);
    t.like(newest, { cursor: 198, more: true, head: 200 });
    t.deepEqual(seqs((await registry.readAuditPage({ order: 'newest', limit: 3, before: newest.cursor })).entries), [197, 196, 195]);
    t.deepEqual(seqs((await registry.readAuditPage({ order: 'oldest', after: 197 })).entries), [198, 199, 200]);
    t.like(await registry.readAuditPage({ order: 'oldest', after: 200 }), { entries: [], cursor: 200, more: false, head: 200 });

    // Filters, alone and together, in both orders, with and without the device index.
    const expect = (query: AuditQuery, match: (entry: AuditEntry) => boolean): Promise<void> =>
      registry.readAuditPage(query).then((page) => {
        const wanted = all.filter(match);
        t.deepEqual(seqs(page.entries), seqs(query.order === 'newest' ? wanted.reverse() : wanted).slice(0, query.limit ?? Infinity), JSON.stringify(query));
      });
    const since = new Date(T0 + 50 * 60_000).toISOString();
    const until = new Date(T0 + 120 * 60_000).toISOString();
    for (const order of ['newest', 'oldest'] as const) {
      await expect({ order, types: ['refused'] }, (entry) => entry.type === 'refused');
      await expect({ order, types: ['refused', 'disabled'], limit: 7 }, (entry) => entry.type === 'refused' || entry.type === 'disabled');
      await expect({ order, actor: 'operator:alice' }, (entry) => entry.actor === 'operator:alice');
      await expect({ order, actor: 'operator:' }, (entry) => entry.actor.startsWith('operator:'));
      await expect({ order, actor: 'operator' }, () => false);
      await expect({ order, deviceId: 'thermostat-aaaaaaaaaaa1' }, (entry) => entry.deviceId === 'thermostat-aaaaaaaaaaa1');
      await expect({ order, deviceId: 'thermostat-aaaaaaaaaaa2', types: ['enrolled'], limit: 4 }, (entry) => entry.deviceId === 'thermostat-aaaaaaaaaaa2' && entry.type === 'enrolled');
      await expect({ order, since, until }, (entry) => entry.time >= since && entry.time < until);
      await expect({ order, since, until, deviceId: 'thermostat-aaaaaaaaaaa0', actor: 'system' }, (entry) => entry.time >= since && entry.time < until && entry.deviceId === 'thermostat-aaaaaaaaaaa0' && entry.actor === 'system');
      await expect({ order, after: 10, before: 20 }, (entry) => entry.seq > 10 && entry.seq < 20);
    }

    // A time bound ends a read in its direction: newest first with --since stops near it, not at entry 1.
    t.like(await registry.readAuditPage({ order: 'newest', since: new Date(T0 + 190 * 60_000).toISOString() }), { more: false });
    const stopped = await registry.readAuditPage({ order: 'newest', since: new Date(T0 + 190 * 60_000).toISOString() });
    t.true(stopped.cursor >= 170 && stopped.cursor < 190, `stopped at entry ${stopped.cursor}, within the clock slack of --since`);

    // A bounded scan: a filter that matches nothing ends each page after maxScan entries, with a
    // cursor; following the cursors visits every entry once and ends with more: false.
    let cursor: number | undefined;
    let pages = 0;
    let page: AuditPage;
    do {
      page = await registry.readAuditPage({ order: 'newest', types: ['trust-added'], maxScan: 64, before: cursor });
      t.deepEqual(page.entries, []);
      cursor = page.cursor;
      pages++;
    } while (page.more && pages < 10);
    t.is(pages, 4, '200 entries, 64 a page');
    t.is(cursor, 1);
    // Pages of matching entries, oldest first: no gap, no repeat.
    const collected: number[] = [];
    let after = 0;
    for (let round = 0; round < 100; round++) {
      const next = await registry.readAuditPage({ order: 'oldest', types: ['refused'], after, limit: 7, maxScan: 20 });
      collected.push(...seqs(next.entries));
      after = next.cursor;
      if (!next.more) break;
    }
    t.deepEqual(collected, seqs(all.filter((entry) => entry.type === 'refused')));
  });
}

// ---------------------------------------------------------------------------------------------
// The admin API

test('GET /v1/audit: newest first by default, order, filters and cursors; bad values are 400 ADMIN_BAD_REQUEST and change nothing', async (t) => {
  const data = await makeDataDir(t);
  await seedChain(data.layout.registry, 40);
  const fleet = await startFleet(t, { dataDir: data });
  const get = async (path: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const answer = await admin(fleet, 'GET', path);
    return { status: answer.status, body: answer.json() };
  };
  const page = async (path: string): Promise<AuditPage> => {
    const answer = await get(path);
    t.is(answer.status, 200, `${path}: ${JSON.stringify(answer.body)}`);
    return answer.body as unknown as AuditPage;
  };
  t.deepEqual(seqs((await page('/v1/audit?limit=3')).entries), [40, 39, 38]);
  t.deepEqual(seqs((await page('/v1/audit?limit=3&order=oldest')).entries), [1, 2, 3]);
  t.like(await page('/v1/audit?limit=3&before=38'), { cursor: 35, more: true, head: 40 });
  t.deepEqual(seqs((await page('/v1/audit?order=oldest&after=37')).entries), [38, 39, 40]);
  t.deepEqual(seqs((await page('/v1/audit?type=refused,disabled&actor=operator:&limit=100')).entries), range(40, 1).filter((seq) => (seq % 4 === 2 || seq % 4 === 3) && (seq % 5 === 1 || seq % 5 === 2)));
  t.deepEqual(seqs((await page('/v1/audit?device=thermostat-aaaaaaaaaaa1&since=2026-11-23T10:30:00Z&until=2026-11-23T10:35:00Z')).entries), [34, 31]);

  const bad: ReadonlyArray<[string, RegExp]> = [
    ['/v1/audit?type=refusd', /unknown audit type "refusd"; the types are enrolled, renewed, resent, refused/],
    ['/v1/audit?type=refused,', /unknown audit type ""/],
    ['/v1/audit?order=sideways', /order must be newest or oldest/],
    ['/v1/audit?after=-1', /after must be an audit sequence number/],
    ['/v1/audit?before=1e3', /before must be an audit sequence number/],
    ['/v1/audit?after=9999999999999', /after must be an audit sequence number/],
    ['/v1/audit?until=tomorrow', /until must be an ISO 8601 time/],
    ['/v1/audit?since=2026-11-24T00:00:00Z&until=2026-11-23T00:00:00Z', /since must be before until/],
    ['/v1/audit?actor=operator%20alice', /actor must be 1 to 200 printable characters/],
    ['/v1/audit?actor=', /actor must be/],
    ['/v1/audit?type=refused&type=revoked', /given more than once/],
  ];
  for (const [path, message] of bad) {
    const answer = await get(path);
    t.is(answer.status, 400, path);
    t.like(answer.body, { error: { code: 'ADMIN_BAD_REQUEST' } }, path);
    t.regex((answer.body.error as { message: string }).message, message, path);
  }
  t.like(await fleet.server.registry.verifyAudit(), { ok: true, entries: 40 });
});

// ---------------------------------------------------------------------------------------------
// The CLI: listing

test('fleetgate audit: newest first, --oldest-first, filters, --limit paging through the API; a typo in --type or a flag is a one-line usage error', async (t) => {
  const data = await makeDataDir(t);
  await seedChain(data.layout.registry, 120);
  const fleet = await startFleet(t, { dataDir: data });
  const json = (result: RunResult, label: string): AuditEntry[] => {
    t.is(result.code, 0, `${label}: ${result.stderr}`);
    return (JSON.parse(result.stdout) as { entries: AuditEntry[] }).entries;
  };
  const [table, defaults, oldest, filtered, typed, window, relative, limited] = await Promise.all([
    cli(fleet, ['audit', '--limit', '3']),
    cli(fleet, ['audit', '--json']),
    cli(fleet, ['audit', '--oldest-first', '--limit', '2', '--json']),
    cli(fleet, ['audit', '--type', 'refused', '--type', 'disabled,enabled', '--actor', 'operator:bob', '--json']),
    cli(fleet, ['audit', '--device', 'thermostat-aaaaaaaaaaa1', '--type', 'renewed', '--limit', '2', '--json']),
    cli(fleet, ['audit', '--since', '2026-11-23T11:00:00Z', '--until', '2026-11-23T11:05:00Z', '--json']),
    cli(fleet, ['audit', '--since', '1h', '--json']),
    cli(fleet, ['audit', '--limit', '100000', '--json']),
  ]);
  t.is(table.code, 0, table.stderr);
  t.regex(table.stdout, /^SEQ\s+TIME\s+EVENT\s+DEVICE\s+ACTOR\s+DETAIL\n120\s+2026-11-23 12:00:00Z\s+enrolled\s+thermostat-aaaaaaaaaaa0\s+system\s+event 120\n119\s.*\n118\s.*\n3 entries\n$/);
  t.is(table.stderr, '', 'no note when --limit is given');
  t.deepEqual(seqs(json(defaults, 'default')), range(120, 71), 'the newest 50 by default');
  t.regex(defaults.stderr, /^note: showing the newest 50 entries; see more with --limit/);
  t.deepEqual(seqs(json(oldest, 'oldest first')), [1, 2]);
  t.deepEqual(seqs(json(filtered, 'type and actor')), range(120, 1).filter((seq) => (seq % 4 === 2 || seq % 4 === 3) && seq % 5 === 2));
  t.deepEqual(seqs(json(typed, 'device and type')), [109, 97]);
  t.deepEqual(seqs(json(window, 'since/until')), [64, 63, 62, 61, 60]);
  t.deepEqual(json(relative, 'since 1h'), [], 'the seeded entries are from 2026-11-23');
  t.deepEqual(seqs(json(limited, 'everything')), range(120, 1));

  const [typo, unknownFlag, missingValue, valueOnBoolean, badUntil, followUntil, backwards] = await Promise.all([
    cli(fleet, ['audit', '--type', 'refused,revokd']),
    cli(fleet, ['audit', '--lmit', '3']),
    cli(fleet, ['audit', '--limit']),
    cli(fleet, ['audit', '--json=yes']),
    cli(fleet, ['audit', '--until', 'tomorrow']),
    cli(fleet, ['audit', '--follow', '--until', '1h']),
    cli(fleet, ['audit', '--since', '1h', '--until', '2h']),
  ]);
  refused(t, typo, '--type typo', 2, 'CLI_USAGE', new RegExp(`^fleetgate: CLI_USAGE: unknown audit type "revokd"; the types are ${AUDIT_TYPES.join(', ')}\\n$`));
  refused(t, unknownFlag, 'unknown flag', 2, 'CLI_USAGE', /^fleetgate: CLI_USAGE: unknown option --lmit \(did you mean --limit\?\); see `fleetgate audit --help`\n$/);
  refused(t, missingValue, 'flag without its value', 2, 'CLI_USAGE', /^fleetgate: CLI_USAGE: --limit needs a value; see `fleetgate audit --help`\n$/);
  refused(t, valueOnBoolean, 'value on a boolean flag', 2, 'CLI_USAGE', /^fleetgate: CLI_USAGE: --json takes no value; see `fleetgate audit --help`\n$/);
  refused(t, badUntil, '--until tomorrow', 2, 'CLI_USAGE', /--until takes an ISO 8601 time/);
  refused(t, followUntil, '--follow --until', 2, 'CLI_USAGE', /--follow .* does not take --until/);
  refused(t, backwards, '--since after --until', 2, 'CLI_USAGE', /--since .* must be before --until/);
});

test('the audit commands document every flag they take; the top-level help lists audit export', async (t) => {
  for (const command of [auditCommand, auditVerifyCommand, auditExportCommand]) {
    const label = `fleetgate ${command.path.join(' ')} --help`;
    t.true(command.help.startsWith(`Usage: fleetgate ${command.path.join(' ')}`), label);
    for (const flag of [...Object.keys(command.options).map((name) => `--${name}`), '--help']) t.regex(command.help, new RegExp(`${flag}(?![\\w-])`), `${label} mentions ${flag}`);
  }
  const top = await fleetgate(['--help']);
  t.regex(top.stdout, /^ {2}audit export {2,}save the audit log as JSON Lines/m);
});

test('every command gives one usage line for a wrong flag, not the parser message and the whole help', async (t) => {
  const dir = await tempDir(t, 'fleetgate-usage-');
  const [init, listing, verify, exported] = await Promise.all([
    fleetgate(['init', '--data', dir, '--bogus']),
    fleetgate(['device', 'list', '--stat', 'enrolled']),
    fleetgate(['audit', 'verify', '--fiel', 'x']),
    fleetgate(['audit', 'export', '-x']),
  ]);
  refused(t, init, 'init --bogus', 2, 'CLI_USAGE', /^fleetgate: CLI_USAGE: unknown option --bogus; see `fleetgate init --help`\n$/);
  refused(t, listing, 'device list --stat', 2, 'CLI_USAGE', /^fleetgate: CLI_USAGE: unknown option --stat \(did you mean --state\?\); see `fleetgate device list --help`\n$/);
  refused(t, verify, 'audit verify --fiel', 2, 'CLI_USAGE', /^fleetgate: CLI_USAGE: unknown option --fiel \(did you mean --file\?\); see `fleetgate audit verify --help`\n$/);
  refused(t, exported, 'audit export -x', 2, 'CLI_USAGE', /^fleetgate: CLI_USAGE: unknown option -x; see `fleetgate audit export --help`\n$/);
  t.deepEqual(await readdir(dir), [], 'init wrote nothing');
});

// ---------------------------------------------------------------------------------------------
// The CLI: --follow

test('fleetgate audit --follow prints the last entries, then each new one once and in order, and exits 0 on SIGINT', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet, 'thermostat', 1);
  if (!device) throw new Error('no device');
  const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, FLEETGATE_BIN, 'audit', '--follow', '--json', '--limit', '1', '--data', fleet.dir, '--server', fleet.server.adminUrl], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitFor(() => /following the audit log after entry 1 \(Ctrl-C to stop\)/.test(stderr), { what: () => `follow to start (stderr: ${stderr})`, timeoutMs: 60_000 });
  const lines = (): AuditEntry[] => stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as AuditEntry);
  t.deepEqual(lines().map((entry) => [entry.seq, entry.type]), [[1, 'enrolled']], 'the backlog: the last entry');

  for (const action of ['disable', 'enable', 'disable']) {
    const answer = await admin(fleet, 'POST', `/v1/devices/${device.id}/${action}`, { body: {} });
    t.is(answer.status, 200, answer.body.toString());
  }
  await waitFor(() => lines().length >= 4, { what: () => `3 new entries (stdout: ${stdout})`, timeoutMs: 60_000 });
  child.kill('SIGINT');
  t.is(await withDeadline(exited, { what: 'follow to exit after SIGINT', timeoutMs: 30_000 }), 0, stderr);
  t.deepEqual(
    lines().map((entry) => [entry.seq, entry.type, entry.actor]),
    [
      [1, 'enrolled', `device:${device.id}`],
      [2, 'disabled', 'operator:operator'],
      [3, 'enabled', 'operator:operator'],
      [4, 'disabled', 'operator:operator'],
    ],
    'no duplicates, no gaps',
  );
});

// ---------------------------------------------------------------------------------------------
// Export and offline verification

test('audit export writes the chain as JSON Lines with the head; audit verify --file checks it offline and names an edited, removed or cut entry', async (t) => {
  const data = await makeDataDir(t);
  const seeded = await seedChain(data.layout.registry, 30);
  const fleet = await startFleet(t, { dataDir: data });
  const dir = await tempDir(t, 'fleetgate-audit-export-');
  const file = join(dir, 'audit.jsonl');
  const [exported, toStdout, ranged, asJson] = await Promise.all([
    cli(fleet, ['audit', 'export', '--out', file]),
    cli(fleet, ['audit', 'export', '--out', '-']),
    cli(fleet, ['audit', 'export', '--out', join(dir, 'range.jsonl'), '--since', '2026-11-23T10:10:00Z', '--until', '2026-11-23T10:20:00Z']),
    cli(fleet, ['audit', 'export', '--out', join(dir, 'again.jsonl'), '--json']),
  ]);
  const head = seeded.at(-1)?.hash ?? '';
  t.is(exported.code, 0, exported.stderr);
  t.is(exported.stdout, `exported 30 audit entries (1..30) to ${file}\nhead ${head}\n`);
  const text = await readFile(file, 'utf8');
  t.deepEqual(text.trimEnd().split('\n').map((line) => JSON.parse(line) as AuditEntry), seeded, 'every entry as stored, hash and prevHash included');
  t.is(toStdout.stdout, text, '--out - writes the same lines to stdout');
  t.is(toStdout.stderr, `exported 30 audit entries (1..30) to stdout\nhead ${head}\n`);
  t.is(ranged.code, 0, ranged.stderr);
  t.regex(ranged.stdout, /^exported 10 audit entries \(10\.\.19\) to /);
  t.like(JSON.parse(asJson.stdout), { entries: 30, first: 1, last: 30, head });
  t.deepEqual((await readdir(dir)).sort(), ['again.jsonl', 'audit.jsonl', 'range.jsonl'], 'no temporary file left');

  // Offline: no --server, no --data, no credential anywhere.
  const offline = (name: string, contents: string, ...extra: string[]): Promise<RunResult> =>
    writeFile(join(dir, name), contents).then(() => fleetgate(['audit', 'verify', '--file', join(dir, name), ...extra], { cwd: dir }));
  const lines = text.trimEnd().split('\n');
  const edited = [...lines];
  edited[11] = JSON.stringify({ ...(JSON.parse(lines[11] ?? '{}') as AuditEntry), actor: 'operator:mallory' });
  const resealed = [...lines];
  const twelve = JSON.parse(lines[11] ?? '{}') as AuditEntry;
  resealed[11] = JSON.stringify(sealAuditEntry({ ...twelve, actor: 'operator:mallory' }, twelve.seq, twelve.time, twelve.prevHash));
  const [intact, intactHead, intactJson, rangeOnly, editedEntry, resealedEntry, removed, cut, cutNoHead, pastHead, garbage] = await Promise.all([
    offline('intact.jsonl', text),
    offline('intact-head.jsonl', text, '--head', head),
    offline('intact-json.jsonl', text, '--json'),
    fleetgate(['audit', 'verify', '--file', join(dir, 'range.jsonl')]),
    offline('edited.jsonl', `${edited.join('\n')}\n`),
    offline('resealed.jsonl', `${resealed.join('\n')}\n`),
    offline('removed.jsonl', `${lines.filter((_, index) => index !== 14).join('\n')}\n`),
    offline('cut.jsonl', `${lines.slice(0, 27).join('\n')}\n`, '--head', head),
    offline('cut-no-head.jsonl', `${lines.slice(0, 27).join('\n')}\n`),
    offline('past-head.jsonl', text, '--head', seeded[19]?.hash ?? ''),
    offline('garbage.jsonl', `${lines.slice(0, 5).join('\n')}\nnot json\n${lines.slice(6).join('\n')}\n`),
  ]);
  t.is(intact.code, 0, intact.stderr);
  t.is(intact.stdout, `audit export intact: 30 entries (1..30), head ${head}\n`);
  t.is(intactHead.stdout, `audit export intact: 30 entries (1..30), head ${head} (the recorded head)\n`);
  t.deepEqual(JSON.parse(intactJson.stdout), { ok: true, entries: 30, first: 1, last: 30, head });
  t.is(rangeOnly.code, 0, rangeOnly.stderr);
  t.regex(rangeOnly.stdout, /^audit export intact: 10 entries \(10\.\.19\), head /);
  t.is(cutNoHead.code, 0, 'without a head, a cut file is a shorter chain');

  const broken = (result: RunResult, label: string, line: RegExp): void => {
    t.is(result.code, 1, `${label}: ${result.stderr}`);
    t.regex(result.stdout, line, label);
    t.regex(result.stderr, /^fleetgate: CLI_AUDIT_BROKEN: the exported audit log \S+ is broken at entry \d+ \(line \d+\): .+\n$/, label);
    t.false(STACK_TRACE.test(result.stderr), label);
  };
  broken(editedEntry, 'an edited entry', /^audit export BROKEN at entry 12 \(line 12\): entry 12 was altered \(11 entries before it verified\)$/m);
  broken(resealedEntry, 'an edited entry with its hash recomputed', /^audit export BROKEN at entry 13 \(line 13\): entry 13 does not follow entry 12 \(12 entries before it verified\)$/m);
  broken(removed, 'a removed middle entry', /^audit export BROKEN at entry 15 \(line 15\): entry 15 is missing \(line 15 holds entry 16\)/m);
  broken(cut, 'a truncated tail with --head', /^audit export BROKEN at entry 28 \(line 28\): the file ends at entry 27, whose hash is not the head [0-9a-f]{64}: entries after 27 are missing/m);
  broken(pastHead, 'a head from within the file', /^audit export BROKEN at entry 21 \(line 31\): the file goes on past the head: [0-9a-f]{64} is the hash of entry 20, and the file ends at entry 30/m);
  broken(garbage, 'a line that is not JSON', /^audit export BROKEN at entry 6 \(line 6\): line 6 is not JSON/m);

  const [missing, badHead, headAlone, unwritable] = await Promise.all([
    fleetgate(['audit', 'verify', '--file', join(dir, 'nope.jsonl')]),
    fleetgate(['audit', 'verify', '--file', file, '--head', 'abc']),
    cli(fleet, ['audit', 'verify', '--head', head]),
    cli(fleet, ['audit', 'export', '--out', join(file, 'under-a-file.jsonl')]),
  ]);
  refused(t, missing, 'a missing file', 1, 'CLI_INPUT_INVALID', /cannot read --file \S+nope\.jsonl \(ENOENT\)/);
  refused(t, badHead, 'a head that is not a hash', 2, 'CLI_USAGE', /--head must be a SHA-256 hash/);
  refused(t, headAlone, '--head without --file', 2, 'CLI_USAGE', /--head goes with --file/);
  refused(t, unwritable, 'export under a file', 1, 'CLI_OUTPUT_FAILED', /cannot write --out \S+under-a-file\.jsonl \((ENOTDIR|EEXIST)\)/);

  // Against the server, verify works as before.
  const server = await cli(fleet, ['audit', 'verify']);
  t.is(server.stdout, `audit log intact: 30 entries, head ${head}\n`);
});

// ---------------------------------------------------------------------------------------------
// Scale

test('100,000 entries: the newest 10 are read without walking the log (measured)', async (t) => {
  const data = await makeDataDir(t);
  const seedStarted = performance.now();
  // Entry 3 is the only trust removal: far behind 20,000-entry pages.
  await seedChain(data.layout.registry, 100_000, (seq) => (seq === 3 ? { type: 'trust-removed', detail: 'acme', actor: 'operator:alice' } : defaultEvent(seq)));
  t.log(`seeded 100,000 entries in ${Math.round(performance.now() - seedStarted)} ms`);
  const fleet = await startFleet(t, { dataDir: data });

  const timed = async (path: string): Promise<{ ms: number; page: AuditPage }> => {
    const started = performance.now();
    const answer = await admin(fleet, 'GET', path);
    const ms = performance.now() - started;
    t.is(answer.status, 200, path);
    return { ms, page: answer.json<AuditPage>() };
  };
  await timed('/v1/audit?limit=1'); // TLS and code warm-up
  const newest = await timed('/v1/audit?limit=10');
  t.deepEqual(seqs(newest.page.entries), range(100_000, 99_991));
  t.is(newest.page.cursor, 99_991, 'it examined the 10 entries it returned, nothing more');
  const device = await timed('/v1/audit?limit=10&device=thermostat-aaaaaaaaaaa1');
  t.is(device.page.entries.length, 10);
  const nothing = await timed('/v1/audit?limit=10&type=trust-removed');
  t.deepEqual(nothing.page.entries, []);
  t.like(nothing.page, { more: true, cursor: 80_001 }, 'a page examines at most 20,000 entries, then gives a cursor');
  const sparse = await cli(fleet, ['audit', '--type', 'trust-removed', '--json']);
  t.is(sparse.code, 0, sparse.stderr);
  t.deepEqual(seqs((JSON.parse(sparse.stdout) as { entries: AuditEntry[] }).entries), [3], 'the CLI follows the cursor through five pages to entry 3');
  // What the newest 10 cost before (the API read oldest first): the whole log, in the registry.
  const wholeStarted = performance.now();
  t.is((await fleet.server.registry.readAudit()).length, 100_000);
  const wholeMs = performance.now() - wholeStarted;
  const started = performance.now();
  const viaCli = await cli(fleet, ['audit', '--limit', '10']);
  const cliMs = performance.now() - started;
  t.is(viaCli.code, 0, viaCli.stderr);
  t.regex(viaCli.stdout, /^10 entries$/m);
  t.log(`GET /v1/audit?limit=10: ${newest.ms.toFixed(1)} ms; with device: ${device.ms.toFixed(1)} ms; type matching nothing (one page: 20,000 entries examined): ${nothing.ms.toFixed(0)} ms; fleetgate audit --limit 10: ${cliMs.toFixed(0)} ms (process start included); the whole log read in the registry: ${wholeMs.toFixed(0)} ms`);
});
