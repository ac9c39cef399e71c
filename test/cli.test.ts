/**
 * The `fleetgate` command line through the real executable in child processes: help, usage errors,
 * and `bootstrap issue` (bad inputs write nothing; good batches write what the help promises).
 */
import test, { type ExecutionContext } from 'ava';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { access, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from '../server/src/cli/args.ts';
import { bootstrapIssueCommand } from '../server/src/cli/commands/bootstrap-issue.ts';
import { initCommand } from '../server/src/cli/commands/init.ts';
import { serveCommand } from '../server/src/cli/commands/serve.ts';
import { fromPemAll } from '../server/src/pki/pem.ts';
import { fleetgate } from './helpers/cli.ts';
import { changedFiles, listFiles, snapshotFiles } from './helpers/files.ts';
import { makeDataDir, type DataDir } from './helpers/fleet.ts';
import { run, type RunResult } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';

const ID_PATTERN = /^thermostat-[0-9a-f]{12}$/;
const STACK_TRACE = /unexpected error|\n\s+at /;

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

/** One manifest entry as `bootstrap issue` writes it. */
interface ManifestEntry {
  readonly id: string;
  readonly model: string;
  readonly serial: string;
  readonly expiry: string;
}

function isManifestEntry(value: unknown): value is ManifestEntry {
  if (typeof value !== 'object' || value === null) return false;
  const entry = value as Record<string, unknown>;
  return ['id', 'model', 'serial', 'expiry'].every((field) => typeof entry[field] === 'string');
}

function entriesOf(value: unknown, what: string): ManifestEntry[] {
  const devices = typeof value === 'object' && value !== null ? (value as Record<string, unknown>).devices : undefined;
  if (!Array.isArray(devices) || !devices.every(isManifestEntry)) throw new Error(`${what} has no valid devices list`);
  return devices;
}

async function readManifest(out: string): Promise<{ format: unknown; factoryCa: unknown; devices: ManifestEntry[] }> {
  const parsed: unknown = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
  const record = parsed as Record<string, unknown>;
  return { format: record.format, factoryCa: record.factoryCa, devices: entriesOf(parsed, 'manifest.json') };
}

/** What openssl says about a bootstrap certificate file (its first certificate). */
async function opensslFacts(file: string): Promise<{ serial: bigint; serialText: string; notAfter: number; subject: string }> {
  const result = await run('openssl', ['x509', '-in', file, '-noout', '-serial', '-enddate', '-subject', '-nameopt', 'RFC2253']);
  if (result.code !== 0) throw new Error(`openssl x509 ${file}: ${result.stderr}`);
  const field = (name: string): string => new RegExp(`^${name}=(.*)$`, 'm').exec(result.stdout)?.[1] ?? '';
  return { serial: BigInt(`0x${field('serial')}`), serialText: field('serial'), notAfter: Date.parse(field('notAfter')), subject: field('subject') };
}

function issueArgs(data: DataDir, out: string, extra: readonly string[] = []): string[] {
  return ['bootstrap', 'issue', '--data', data.dir, '--model', 'thermostat', '--out', out, ...extra];
}

// ---------------------------------------------------------------------------------------------
// Help and usage errors

const HELP_CASES: ReadonlyArray<{ readonly args: readonly string[]; readonly usage: string; readonly command?: Command; readonly flags: readonly string[] }> = [
  { args: ['--help'], usage: 'Usage: fleetgate <command>', flags: [] },
  { args: ['init', '--help'], usage: 'Usage: fleetgate init', command: initCommand, flags: ['--data', '--hostname', '--json', '--help'] },
  {
    args: ['serve', '--help'],
    usage: 'Usage: fleetgate serve',
    command: serveCommand,
    flags: ['--data', '--host', '--est-port', '--mqtt-port', '--admin-port', '--metrics-port', '--help'],
  },
  {
    args: ['bootstrap', 'issue', '--help'],
    usage: 'Usage: fleetgate bootstrap issue',
    command: bootstrapIssueCommand,
    flags: ['--data', '--model', '--count', '--out', '--valid-days', '--json', '--help'],
  },
  { args: ['init', '-h'], usage: 'Usage: fleetgate init', command: initCommand, flags: ['--data'] },
];

test('--help on every command exits 0 and documents every flag the command accepts', async (t) => {
  const results = await Promise.all(HELP_CASES.map((entry) => fleetgate(entry.args)));
  HELP_CASES.forEach((entry, index) => {
    const result = results[index] as RunResult;
    const label = `fleetgate ${entry.args.join(' ')}`;
    t.is(result.code, 0, `${label}: ${result.stderr}`);
    t.is(result.stderr, '', `${label}: nothing on stderr`);
    t.true(result.stdout.startsWith(entry.usage), `${label} starts with "${entry.usage}":\n${result.stdout}`);
    // The flags the design documents, and every option the parser really accepts.
    const accepted = Object.keys(entry.command?.options ?? {}).map((name) => `--${name}`);
    for (const flag of new Set([...entry.flags, ...accepted])) {
      t.true(new RegExp(`${flag}(?![\\w-])`).test(result.stdout), `${label} mentions ${flag}`);
    }
  });
  const top = results[0]?.stdout ?? '';
  for (const command of ['init', 'serve', 'bootstrap issue']) t.true(top.includes(`  ${command} `), `top-level help lists ${command}`);
  t.true(top.includes('FLEETGATE_DATA'), 'top-level help names FLEETGATE_DATA');
});

test('fleetgate bootstrap --help shows the bootstrap commands', async (t) => {
  const result = await fleetgate(['bootstrap', '--help']);
  t.is(result.code, 0, `exit ${result.code}: ${result.stderr}`);
  t.true(result.stdout.includes('bootstrap issue'), result.stdout);
});

test('unknown commands and unknown flags exit 2 with a message on stderr, and do nothing', async (t) => {
  const base = await tempDir(t);
  const data = join(base, 'data');
  const cases: ReadonlyArray<readonly [readonly string[], RegExp]> = [
    [['frobnicate'], /^fleetgate: CLI_USAGE: unknown command: frobnicate\n/],
    [[], /^fleetgate: CLI_USAGE: a command is required\n/],
    [['bootstrap'], /bootstrap/],
    [['init', '--data', data, '--bogus'], /--bogus/],
    [['bootstrap', 'issue', '--data', data, '--model', 'thermostat', '--count', '1', '--out', join(base, 'out'), '--frobnicate'], /--frobnicate/],
    [['serve', '--data', data, '--est-port', '70000'], /--est-port/],
    [['init', '--data'], /--data/],
  ];
  const results = await Promise.all(cases.map(([args]) => fleetgate(args)));
  cases.forEach(([args, message], index) => {
    const result = results[index] as RunResult;
    const label = `fleetgate ${args.join(' ')}`;
    t.is(result.code, 2, `${label}: exit code (stderr: ${result.stderr})`);
    t.regex(result.stderr, message, label);
    t.false(STACK_TRACE.test(result.stderr), `${label}: no stack trace`);
    t.is(result.stdout, '', `${label}: nothing on stdout`);
  });
  t.deepEqual(await listFiles(base), [], 'no data directory or output was created');
});

// ---------------------------------------------------------------------------------------------
// bootstrap issue: bad inputs

test('bootstrap issue refuses bad inputs with a clear message and writes nothing into --out', async (t) => {
  const data = await makeDataDir(t);
  const dataBefore = await snapshotFiles(data.dir);
  const base = await tempDir(t, 'fleetgate-out-');
  const cases: ReadonlyArray<{ readonly name: string; readonly args: (out: string) => string[]; readonly code?: number; readonly message: RegExp }> = [
    { name: 'missing --model', args: (out) => ['bootstrap', 'issue', '--data', data.dir, '--count', '1', '--out', out], code: 2, message: /--model/ },
    { name: 'invalid model', args: (out) => ['bootstrap', 'issue', '--data', data.dir, '--model', 'Thermostat!', '--count', '1', '--out', out], message: /model.*Thermostat!|Thermostat!.*model/i },
    { name: 'model with a slash', args: (out) => ['bootstrap', 'issue', '--data', data.dir, '--model', '../etc', '--count', '1', '--out', out], message: /model/ },
    { name: 'missing --count', args: (out) => issueArgs(data, out), code: 2, message: /--count/ },
    { name: '--count 0', args: (out) => issueArgs(data, out, ['--count', '0']), code: 2, message: /--count/ },
    { name: '--count abc', args: (out) => issueArgs(data, out, ['--count', 'abc']), code: 2, message: /--count.*abc/ },
    { name: '--count 100001', args: (out) => issueArgs(data, out, ['--count', '100001']), code: 2, message: /--count.*100000/ },
    { name: '--count 2.5', args: (out) => issueArgs(data, out, ['--count', '2.5']), code: 2, message: /--count/ },
    { name: '--valid-days 0', args: (out) => issueArgs(data, out, ['--count', '1', '--valid-days', '0']), code: 2, message: /--valid-days/ },
  ];
  const outs = cases.map((entry, index) => ({ dir: join(base, entry.name.replace(/\W+/g, '-')), precreated: index % 2 === 0 }));
  await Promise.all(outs.filter((out) => out.precreated).map((out) => mkdir(out.dir)));
  const results = await Promise.all(cases.map((entry, index) => fleetgate(entry.args(outs[index]?.dir ?? base))));
  for (const [index, entry] of cases.entries()) {
    const result = results[index] as RunResult;
    const out = outs[index];
    if (!out) continue;
    if (entry.code !== undefined) t.is(result.code, entry.code, `${entry.name}: exit code (stderr: ${result.stderr})`);
    else t.not(result.code, 0, `${entry.name}: must fail`);
    t.regex(result.stderr, entry.message, `${entry.name}: clear message`);
    t.false(STACK_TRACE.test(result.stderr), `${entry.name}: no stack trace: ${result.stderr}`);
    t.is(await exists(out.dir), out.precreated, `${entry.name}: --out ${out.precreated ? 'still exists' : 'was not created'}`);
    t.deepEqual(await listFiles(out.dir), [], `${entry.name}: nothing written into --out`);
  }
  // Missing --out: nothing written anywhere, the data directory untouched.
  const cwd = await tempDir(t, 'fleetgate-cwd-');
  const noOut = await fleetgate(['bootstrap', 'issue', '--data', data.dir, '--model', 'thermostat', '--count', '1'], { cwd });
  t.is(noOut.code, 2, noOut.stderr);
  t.regex(noOut.stderr, /--out/);
  t.deepEqual(await listFiles(cwd), []);
  t.deepEqual(changedFiles(dataBefore, await snapshotFiles(data.dir)), [], 'the data directory is untouched');
});

test('bootstrap issue on an uninitialised data directory exits 1 with DATA_NOT_INITIALIZED', async (t) => {
  const base = await tempDir(t);
  const data = join(base, 'data');
  await mkdir(data);
  const out = join(base, 'out');
  const result = await fleetgate(['bootstrap', 'issue', '--data', data, '--model', 'thermostat', '--count', '1', '--out', out]);
  t.is(result.code, 1, result.stderr);
  t.regex(result.stderr, /DATA_NOT_INITIALIZED/);
  t.regex(result.stderr, /fleetgate init/, 'tells the operator what to do');
  t.false(STACK_TRACE.test(result.stderr), result.stderr);
  t.false(await exists(out), '--out not created');
  t.deepEqual(await listFiles(data), [], 'nothing created in the data directory');
});

// ---------------------------------------------------------------------------------------------
// bootstrap issue: good batches

/** Checks one bootstrap credential pair in `out` against its manifest entry, openssl and the data directory. */
async function checkCredential(t: ExecutionContext, data: DataDir, out: string, entry: ManifestEntry): Promise<void> {
  const label = entry.id;
  t.regex(entry.id, ID_PATTERN, label);
  t.is(entry.model, 'thermostat', label);
  const certPem = await readFile(join(out, `${entry.id}.crt`), 'utf8');
  const keyPem = await readFile(join(out, `${entry.id}.key`), 'utf8');
  t.true(keyPem.startsWith('-----BEGIN PRIVATE KEY-----\n'), `${label}.key is PKCS#8 PEM`);
  const [leaf, chain, extra] = fromPemAll(certPem, 'CERTIFICATE');
  t.is(extra, undefined, `${label}.crt holds the certificate and the factory CA, nothing more`);
  const factoryDer = fromPemAll(await readFile(data.layout.authorityCert('factory'), 'utf8'), 'CERTIFICATE')[0];
  t.true(chain !== undefined && factoryDer !== undefined && chain.equals(factoryDer), `${label}.crt continues with the factory CA`);
  const certificate = new X509Certificate(leaf ?? Buffer.alloc(0));
  t.true(certificate.checkPrivateKey(createPrivateKey(keyPem)), `${label}.key belongs to ${label}.crt`);

  const facts = await opensslFacts(join(out, `${entry.id}.crt`));
  t.is(facts.serial, BigInt(`0x${entry.serial}`), `${label}: manifest serial ${entry.serial} is the certificate's`);
  t.is(entry.serial, facts.serialText, `${label}: serial written as openssl x509 -serial prints it`);
  t.false(Number.isNaN(facts.notAfter), `${label}: openssl enddate`);
  t.is(Date.parse(entry.expiry), facts.notAfter, `${label}: manifest expiry ${entry.expiry} is the certificate's notAfter ${new Date(facts.notAfter).toISOString()}`);
  const rdns = facts.subject.split(',');
  t.true(rdns.includes(`CN=${entry.id}`), `${label}: subject ${facts.subject}`);
  t.true(rdns.includes('OU=thermostat'), `${label}: subject ${facts.subject}`);
}

async function checkCsv(t: ExecutionContext, out: string, entries: readonly ManifestEntry[]): Promise<void> {
  const csv = await readFile(join(out, 'manifest.csv'), 'utf8');
  const lines = csv.trimEnd().split('\n');
  t.is(lines[0], 'id,model,serial,expiry');
  t.deepEqual(lines.slice(1), entries.map((entry) => `${entry.id},${entry.model},${entry.serial},${entry.expiry}`), 'manifest.csv matches manifest.json');
}

test('bootstrap issue writes keys, certificates, root and a manifest; a second batch adds to it', async (t) => {
  const data = await makeDataDir(t);
  const out = join(await tempDir(t, 'fleetgate-out-'), 'batch');

  const first = await fleetgate(issueArgs(data, out, ['--count', '3']));
  t.is(first.code, 0, first.stderr);
  t.true(first.stdout.includes(out), `stdout names the folder: ${first.stdout}`);
  const manifest = await readManifest(out);
  t.is(manifest.format, 'fleetgate-bootstrap-manifest/1');
  const factory = new X509Certificate(await readFile(data.layout.authorityCert('factory')));
  t.is(manifest.factoryCa, factory.fingerprint256, 'manifest names the factory CA');
  t.is(manifest.devices.length, 3);
  const ids = manifest.devices.map((entry) => entry.id);
  t.is(new Set(ids).size, 3, 'ids are distinct');
  t.deepEqual(await listFiles(out), [...ids.flatMap((id) => [`${id}.crt`, `${id}.key`]), 'manifest.csv', 'manifest.json', 'root.crt'].sort());
  t.true((await readFile(join(out, 'root.crt'))).equals(await readFile(data.layout.rootCert)), 'root.crt is the data directory\'s root');
  const keyModes = await run('stat', ['-c', '%a', ...ids.map((id) => join(out, `${id}.key`))]);
  t.deepEqual(keyModes.stdout.trim().split('\n'), ['600', '600', '600'], 'keys are mode 0600');
  for (const entry of manifest.devices) await checkCredential(t, data, out, entry);
  await checkCsv(t, out, manifest.devices);

  // Second batch into the same folder, with --json.
  const before = await snapshotFiles(out);
  const second = await fleetgate(issueArgs(data, out, ['--count', '3', '--json']));
  t.is(second.code, 0, second.stderr);
  const printed: unknown = JSON.parse(second.stdout);
  const batch = entriesOf(printed, '--json output');
  t.is((printed as Record<string, unknown>).outDir, out);
  t.is(batch.length, 3, '--json prints this batch');
  t.deepEqual(batch.filter((entry) => ids.includes(entry.id)), [], 'new ids');

  const after = await readManifest(out);
  t.is(after.devices.length, 6, 'the manifest accumulates');
  t.deepEqual(after.devices.slice(0, 3), manifest.devices, 'earlier entries unchanged');
  t.deepEqual(after.devices.slice(3), batch, 'the printed batch is what was appended');
  t.deepEqual(changedFiles(before, await snapshotFiles(out)).filter((file) => !file.startsWith('manifest.')).sort(), batch.flatMap((entry) => [`${entry.id}.crt`, `${entry.id}.key`]).sort(), 'only new credential files; nothing overwritten');
  for (const entry of batch) await checkCredential(t, data, out, entry);
  await checkCsv(t, out, after.devices);
});

test('manifest expiry is exactly the certificate notAfter when --valid-days is shorter than the CA', async (t) => {
  const data = await makeDataDir(t);
  const out = join(await tempDir(t, 'fleetgate-out-'), 'batch');
  const result = await fleetgate(issueArgs(data, out, ['--count', '1', '--valid-days', '30', '--json']));
  t.is(result.code, 0, result.stderr);
  const [entry] = entriesOf(JSON.parse(result.stdout), '--json output');
  if (!entry) return t.fail('no entry');
  const facts = await opensslFacts(join(out, `${entry.id}.crt`));
  const days = (facts.notAfter - Date.now()) / 86_400_000;
  t.true(days > 29.9 && days < 30.1, `valid for 30 days (${days.toFixed(3)})`);
  t.is(entry.expiry, new Date(facts.notAfter).toISOString(), 'manifest.json expiry equals the certificate\'s notAfter (openssl -enddate)');
});
