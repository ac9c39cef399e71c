/**
 * `fleetgate init` through the real CLI in a child process: what it creates, how keys are stored,
 * idempotence, re-issuing the server certificate, CA key passphrases and FLEETGATE_DATA.
 */
import test, { type ExecutionContext } from 'ava';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fleetgate } from './helpers/cli.ts';
import { changedFiles, listFiles, snapshotFiles } from './helpers/files.ts';
import { run } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';

/** What init makes, relative to the data directory. */
const INIT_FILES = [
  'ca/factory.crt',
  'ca/factory.key',
  'ca/issuing.crt',
  'ca/issuing.key',
  'ca/root.crt',
  'ca/root.key',
  'config.json',
  'operator/operator.crt',
  'operator/operator.key',
  'tls/server.crt',
  'tls/server.key',
  'tls/ticket.secret',
];
const KEY_FILES = INIT_FILES.filter((file) => file.endsWith('.key'));
const CA_KEY_FILES = ['ca/root.key', 'ca/issuing.key', 'ca/factory.key'];
const CA_CERT_FILES = ['ca/root.crt', 'ca/issuing.crt', 'ca/factory.crt'];
const LEAF_KEY_FILES = ['tls/server.key', 'operator/operator.key'];

/** The report `init --json` prints. */
interface InitReport {
  readonly dataDir: string;
  readonly created: string[];
  readonly existing: string[];
  readonly updated: string[];
}

function isInitReport(value: unknown): value is InitReport {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  const strings = (field: unknown): boolean => Array.isArray(field) && field.every((item) => typeof item === 'string');
  return typeof record.dataDir === 'string' && strings(record.created) && strings(record.existing) && strings(record.updated);
}

/** Runs `init --json`, insists on exit 0, returns the report with paths made relative to `dir`. */
async function initJson(t: ExecutionContext, dir: string, extra: readonly string[] = [], env: Record<string, string> = {}): Promise<InitReport> {
  const result = await fleetgate(['init', '--data', dir, '--json', ...extra], { env });
  t.is(result.code, 0, `init ${extra.join(' ')} failed: ${result.stderr}`);
  const parsed: unknown = JSON.parse(result.stdout);
  if (!isInitReport(parsed)) throw new Error(`not an init report: ${result.stdout}`);
  const relative = (paths: readonly string[]): string[] => paths.map((path) => (path.startsWith(`${dir}/`) ? path.slice(dir.length + 1) : path)).sort();
  return { dataDir: parsed.dataDir, created: relative(parsed.created), existing: relative(parsed.existing), updated: relative(parsed.updated) };
}

/** File modes (octal, as `stat` prints them) of `files` under `dir`. */
async function modes(dir: string, files: readonly string[]): Promise<Record<string, string>> {
  const result = await run('stat', ['-c', '%a %n', ...files.map((file) => join(dir, file))]);
  if (result.code !== 0) throw new Error(result.stderr);
  const out: Record<string, string> = {};
  for (const line of result.stdout.trim().split('\n')) {
    const [mode = '', path = ''] = line.split(' ');
    out[path.slice(dir.length + 1)] = mode;
  }
  return out;
}

/** The files `init --help` says it creates, with `dir/name.crt, .key` expanded. */
function filesNamedInHelp(help: string): string[] {
  const start = help.indexOf('Creates in');
  const block = help.slice(start, help.indexOf('\n\n', start));
  const files: string[] = [];
  for (const line of block.split('\n').slice(1)) {
    const match = /^\s+(\S.*?)\s{2,}\S/.exec(line);
    if (!match?.[1]) continue;
    let previous = '';
    for (const item of match[1].split(/,\s*/)) {
      const file = item.startsWith('.') ? previous.replace(/\.[^./]+$/, item) : item;
      files.push(file);
      previous = file;
    }
  }
  return files.sort();
}

test('init creates every file its --help lists; keys are PKCS#8 PEM with mode 0600', async (t) => {
  const help = await fleetgate(['init', '--help']);
  t.is(help.code, 0, help.stderr);
  t.deepEqual(filesNamedInHelp(help.stdout), INIT_FILES, 'the files --help promises');

  const dir = join(await tempDir(t), 'data');
  const report = await initJson(t, dir);
  t.is(report.dataDir, dir);
  t.deepEqual(report.created, INIT_FILES);
  t.deepEqual(report.existing, []);
  t.deepEqual(report.updated, []);
  t.deepEqual(await listFiles(dir), INIT_FILES, 'exactly these files, no temporary leftovers');

  const keyModes = await modes(dir, [...KEY_FILES, 'tls/ticket.secret']);
  for (const file of [...KEY_FILES, 'tls/ticket.secret']) t.is(keyModes[file], '600', `${file} mode`);
  t.regex(await readFile(join(dir, 'tls/ticket.secret'), 'utf8'), /^[0-9a-f]{64}\n$/, 'a 256-bit secret, hex');

  for (const file of KEY_FILES) {
    const pem = await readFile(join(dir, file), 'utf8');
    t.true(pem.startsWith('-----BEGIN PRIVATE KEY-----\n'), `${file} is unencrypted PKCS#8 PEM`);
    t.is(pem.match(/-----BEGIN /g)?.length, 1, `${file} holds one PEM block`);
    t.true(pem.trimEnd().endsWith('-----END PRIVATE KEY-----'), file);
    const parsed = await run('openssl', ['pkey', '-in', join(dir, file), '-noout', '-text']);
    t.is(parsed.code, 0, `${file}: ${parsed.stderr}`);
    t.regex(parsed.stdout, /NIST CURVE: P-256/, file);
  }

  // Each certificate belongs to its key.
  const pairs: ReadonlyArray<readonly [string, string]> = [
    ['ca/root.crt', 'ca/root.key'],
    ['ca/issuing.crt', 'ca/issuing.key'],
    ['ca/factory.crt', 'ca/factory.key'],
    ['tls/server.crt', 'tls/server.key'],
    ['operator/operator.crt', 'operator/operator.key'],
  ];
  for (const [cert, key] of pairs) {
    const certificate = new X509Certificate(await readFile(join(dir, cert)));
    t.true(certificate.checkPrivateKey(createPrivateKey(await readFile(join(dir, key)))), `${cert} matches ${key}`);
  }
  const config: unknown = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
  t.is(typeof config, 'object');
});

test('a second init changes no byte and reports every file as existing; a lost certificate is re-made', async (t) => {
  const dir = await tempDir(t);
  await initJson(t, dir);
  const before = await snapshotFiles(dir);
  const again = await initJson(t, dir);
  t.deepEqual(again.created, []);
  t.deepEqual(again.updated, []);
  t.deepEqual(again.existing, INIT_FILES);
  t.deepEqual(changedFiles(before, await snapshotFiles(dir)), [], 'no key, no certificate, no config rewritten');

  // A missing certificate is re-made from its existing key; nothing else is touched.
  await run('rm', [join(dir, 'operator', 'operator.crt')]);
  const remake = await initJson(t, dir);
  t.deepEqual(remake.created, ['operator/operator.crt']);
  t.deepEqual(changedFiles(before, await snapshotFiles(dir)), ['operator/operator.crt']);
  const remade = new X509Certificate(await readFile(join(dir, 'operator', 'operator.crt')));
  t.true(remade.checkPrivateKey(createPrivateKey(await readFile(join(dir, 'operator', 'operator.key')))));
});

test('--hostname on a second run re-issues tls/server.crt with the new names and the same key', async (t) => {
  const dir = await tempDir(t);
  await initJson(t, dir);
  const before = await snapshotFiles(dir);

  const report = await initJson(t, dir, ['--hostname', 'fleet.example.com', '--hostname', '10.20.30.40']);
  t.deepEqual(report.updated, ['tls/server.crt']);
  t.deepEqual(report.created, []);
  t.deepEqual(report.existing, INIT_FILES.filter((file) => file !== 'tls/server.crt'));
  const afterHostname = await snapshotFiles(dir);
  t.deepEqual(changedFiles(before, afterHostname), ['tls/server.crt'], 'only the server certificate changed; tls/server.key kept');

  const san = await run('openssl', ['x509', '-noout', '-ext', 'subjectAltName', '-in', join(dir, 'tls', 'server.crt')]);
  t.is(san.code, 0, san.stderr);
  for (const name of ['DNS:fleet.example.com', 'IP Address:10.20.30.40', 'DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1']) {
    t.true(san.stdout.includes(name), `${name} in ${san.stdout}`);
  }
  // Same key: the certificate's public key is the one of tls/server.key.
  const certKey = await run('openssl', ['x509', '-noout', '-pubkey', '-in', join(dir, 'tls', 'server.crt')]);
  const fileKey = await run('openssl', ['pkey', '-pubout', '-in', join(dir, 'tls', 'server.key')]);
  t.is(certKey.stdout, fileKey.stdout);
  // And it is a valid server certificate for the new name.
  const verified = await run('openssl', [
    'verify', '-x509_strict', '-purpose', 'sslserver', '-verify_hostname', 'fleet.example.com',
    '-CAfile', join(dir, 'ca', 'root.crt'), '-untrusted', join(dir, 'ca', 'issuing.crt'), join(dir, 'tls', 'server.crt'),
  ]);
  t.is(verified.code, 0, verified.stdout + verified.stderr);

  // Asking again for names it already covers, or for none, changes nothing.
  const same = await initJson(t, dir, ['--hostname', 'fleet.example.com']);
  t.deepEqual(same.updated, []);
  const none = await initJson(t, dir);
  t.deepEqual(none.updated, []);
  t.deepEqual(changedFiles(afterHostname, await snapshotFiles(dir)), []);
});

/** What is wrong with how `init --hostname <value>` treated a bad value on a fresh data directory. */
async function badHostnameProblems(t: ExecutionContext, value: string): Promise<string[]> {
  const dir = join(await tempDir(t), 'data');
  const result = await fleetgate(['init', '--data', dir, '--hostname', value]);
  const problems: string[] = [];
  const label = `--hostname ${JSON.stringify(value)}`;
  if (result.code === 0) problems.push(`${label}: accepted (exit 0) and written into tls/server.crt`);
  if (/unexpected error|\n\s+at /.test(result.stderr)) problems.push(`${label}: stack trace instead of a clear error: ${result.stderr.split('\n')[0]}`);
  else if (result.code !== 0 && !result.stderr.includes(value)) problems.push(`${label}: the message does not name the value: ${result.stderr}`);
  const written = await listFiles(dir);
  if (result.code !== 0 && written.length > 0) problems.push(`${label}: refused after writing ${written.join(', ')} (half-initialised data directory)`);
  return problems;
}

test('--hostname with a malformed IP address is a clear error, refused before anything is written', async (t) => {
  const problems = await badHostnameProblems(t, '300.1.1.1');
  t.deepEqual(problems, []);
});

test('--hostname refuses a value that is not a DNS name', async (t) => {
  const problems = await badHostnameProblems(t, 'bad host!');
  t.deepEqual(problems, []);
});

test('--hostname with a typo does not replace the live server certificate', async (t) => {
  const dir = await tempDir(t);
  await initJson(t, dir);
  const before = await snapshotFiles(dir);
  const typo = await fleetgate(['init', '--data', dir, '--hostname', 'fleet example.com']);
  t.not(typo.code, 0, '--hostname "fleet example.com" must be refused');
  t.deepEqual(changedFiles(before, await snapshotFiles(dir)), [], 'tls/server.crt kept');
});

test('FLEETGATE_CA_PASSPHRASE encrypts the CA keys only; bootstrap issue needs the right passphrase', async (t) => {
  const passphrase = 'correct horse battery staple';
  const dir = await tempDir(t);
  const report = await initJson(t, dir, [], { FLEETGATE_CA_PASSPHRASE: passphrase });
  t.deepEqual(report.created, INIT_FILES);

  for (const file of CA_KEY_FILES) {
    const pem = await readFile(join(dir, file), 'utf8');
    t.true(pem.startsWith('-----BEGIN ENCRYPTED PRIVATE KEY-----\n'), `${file} is encrypted PKCS#8`);
    t.false(pem.includes('BEGIN PRIVATE KEY'), file);
    // Standard encrypted PKCS#8: OpenSSL opens it with the passphrase, and only with it.
    const opened = await run('openssl', ['pkey', '-in', join(dir, file), '-passin', `pass:${passphrase}`, '-noout']);
    t.is(opened.code, 0, `${file}: ${opened.stderr}`);
    const refused = await run('openssl', ['pkey', '-in', join(dir, file), '-passin', 'pass:wrong', '-noout']);
    t.not(refused.code, 0, `${file} opens with a wrong passphrase`);
  }
  for (const file of LEAF_KEY_FILES) {
    const pem = await readFile(join(dir, file), 'utf8');
    t.true(pem.startsWith('-----BEGIN PRIVATE KEY-----\n'), `${file} stays unencrypted (the listeners load it unattended)`);
  }
  const keyModes = await modes(dir, [...KEY_FILES, 'tls/ticket.secret']);
  for (const file of [...KEY_FILES, 'tls/ticket.secret']) t.is(keyModes[file], '600', `${file} mode`);
  t.regex(await readFile(join(dir, 'tls/ticket.secret'), 'utf8'), /^[0-9a-f]{64}\n$/, 'a 256-bit secret, hex');

  const out = await tempDir(t, 'fleetgate-out-');
  const issue = (name: string, env: Record<string, string>) =>
    fleetgate(['bootstrap', 'issue', '--data', dir, '--model', 'thermostat', '--count', '1', '--out', join(out, name)], { env });
  const [without, wrong, right] = await Promise.all([
    issue('without', {}),
    issue('wrong', { FLEETGATE_CA_PASSPHRASE: 'Correct horse battery staple' }),
    issue('right', { FLEETGATE_CA_PASSPHRASE: passphrase }),
  ]);
  for (const [what, result, name] of [['without a passphrase', without, 'without'], ['with a wrong passphrase', wrong, 'wrong']] as const) {
    t.is(result.code, 1, `${what}: exit code (stderr: ${result.stderr})`);
    t.true(result.stderr.includes('PKI_PASSPHRASE'), `${what}: ${result.stderr}`);
    t.false(/unexpected error|\n\s+at /.test(result.stderr), `${what}: no stack trace`);
    t.false(result.stderr.includes(passphrase), `${what}: the passphrase is not echoed`);
    t.deepEqual(await listFiles(join(out, name)), [], `${what}: nothing written`);
  }
  t.is(right.code, 0, right.stderr);
  const written = await listFiles(join(out, 'right'));
  t.is(written.filter((file) => /^thermostat-[0-9a-f]{12}\.(crt|key)$/.test(file)).length, 2, written.join(' '));

  // A second init without the passphrase may refuse, but must not change or re-create anything.
  const before = await snapshotFiles(dir);
  const again = await fleetgate(['init', '--data', dir]);
  if (again.code !== 0) t.true(again.stderr.includes('PKI_PASSPHRASE'), again.stderr);
  t.false(/unexpected error|\n\s+at /.test(again.stderr), again.stderr);
  t.deepEqual(changedFiles(before, await snapshotFiles(dir)), []);
});

test('FLEETGATE_DATA is used when --data is absent; --data wins over it; ./data is the default', async (t) => {
  const cwd = await tempDir(t, 'fleetgate-cwd-');
  const fromEnv = join(await tempDir(t), 'env-data');
  const result = await fleetgate(['init'], { cwd, env: { FLEETGATE_DATA: fromEnv } });
  t.is(result.code, 0, result.stderr);
  t.deepEqual(await listFiles(fromEnv), INIT_FILES);
  t.deepEqual(await listFiles(cwd), [], 'nothing in the working directory');
  for (const file of INIT_FILES) t.true(result.stdout.includes(`created  ${join(fromEnv, file)}`), `stdout lists ${file}`);

  // Other commands read it too.
  const out = join(cwd, 'out');
  const issued = await fleetgate(['bootstrap', 'issue', '--model', 'camera', '--count', '1', '--out', out], { cwd, env: { FLEETGATE_DATA: fromEnv } });
  t.is(issued.code, 0, issued.stderr);
  const rootPem = await readFile(join(fromEnv, 'ca', 'root.crt'));
  t.true((await readFile(join(out, 'root.crt'))).equals(rootPem), 'the batch pins the root of FLEETGATE_DATA');

  const explicit = join(await tempDir(t), 'flag-data');
  const before = await snapshotFiles(fromEnv);
  const flagged = await fleetgate(['init', '--data', explicit, '--json'], { cwd, env: { FLEETGATE_DATA: fromEnv } });
  t.is(flagged.code, 0, flagged.stderr);
  t.deepEqual(await listFiles(explicit), INIT_FILES);
  t.deepEqual(changedFiles(before, await snapshotFiles(fromEnv)), []);

  const bare = await tempDir(t, 'fleetgate-cwd-');
  const defaulted = await fleetgate(['init', '--json'], { cwd: bare });
  t.is(defaulted.code, 0, defaulted.stderr);
  t.deepEqual(await listFiles(join(bare, 'data')), INIT_FILES);
});
