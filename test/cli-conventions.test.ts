/**
 * Issue 13, CLI conventions: where an admin command finds the server (--server >
 * FLEETGATE_SERVER > the URL `fleetgate serve` records in the data directory > the default),
 * --version, usage errors (exit 2, `fleetgate: CLI_USAGE:`) and errors as JSON on stderr under
 * --json, `crl --out -`, shell completion generated from the command table, `device list
 * --expiring`, and the confirmation `device revoke` asks for on a terminal.
 */
import test from 'ava';
import { once } from 'node:events';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fleetgate } from './helpers/cli.ts';
import { enrolledDevices } from './helpers/device.ts';
import { makeDataDir, startFleet } from './helpers/fleet.ts';
import { freePort } from './helpers/ports.ts';
import { run } from './helpers/run.ts';
import { FLEETGATE_BIN, startServeProcess } from './helpers/serve-process.ts';
import { SOURCE_NODE_ARGS } from './helpers/source-node.ts';
import { waitFor } from './helpers/wait.ts';

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

test('the server URL: --server, then FLEETGATE_SERVER, then <data>/run/admin-url, then the default', async (t) => {
  const fleet = await startFleet(t);
  const dead = `https://127.0.0.1:${await freePort()}`;
  const good = fleet.server.adminUrl;
  const list = (args: readonly string[], env: Record<string, string> = {}) => fleetgate(['device', 'list', '--data', fleet.dir, ...args], { env });
  const [fromEnv, flagWins, badEnv] = await Promise.all([
    list([], { FLEETGATE_SERVER: good }),
    list(['--server', good], { FLEETGATE_SERVER: dead }),
    list([], { FLEETGATE_SERVER: 'http://127.0.0.1:1' }),
  ]);
  t.is(fromEnv.code, 0, fromEnv.stderr);
  t.is(fromEnv.stdout, 'no devices\n');
  t.is(flagWins.code, 0, flagWins.stderr);
  t.is(badEnv.code, 2);
  t.regex(badEnv.stderr, /^fleetgate: CLI_USAGE: FLEETGATE_SERVER must be an https:\/\/ URL/);

  // A recorded URL is used when neither is given; FLEETGATE_SERVER still wins over it.
  await mkdir(join(fleet.dir, 'run'), { recursive: true });
  await writeFile(join(fleet.dir, 'run', 'admin-url'), `${dead}\n`);
  const [recordedDead, envOverRecorded] = await Promise.all([list([]), list([], { FLEETGATE_SERVER: good })]);
  t.is(recordedDead.code, 1);
  t.regex(recordedDead.stderr, new RegExp(`^fleetgate: CLI_SERVER_UNREACHABLE: cannot reach the admin API at ${dead.replace(/\./g, '\\.')} \\(connection refused; URL from .*run/admin-url\\)`));
  t.is(envOverRecorded.code, 0, envOverRecorded.stderr);
});

test('fleetgate serve records its admin URL in the data directory (a port chosen at random is found) and removes it when it stops', async (t) => {
  const data = await makeDataDir(t);
  const serve = await startServeProcess(t, data.dir, data.rootPem);
  const recorded = join(data.dir, 'run', 'admin-url');
  // Recorded right after the listeners are up (EST may answer a moment before).
  const url = (await waitFor(() => readFile(recorded, 'utf8').catch(() => ''), { what: `${recorded} to be written` })).trim();
  t.regex(url, /^https:\/\/127\.0\.0\.1:\d+$/);
  t.not(url, 'https://127.0.0.1:9443', '--admin-port 0: a port the operator could not guess');
  const listed = await fleetgate(['device', 'list', '--data', data.dir]);
  t.is(listed.code, 0, listed.stderr);
  t.is(listed.stdout, 'no devices\n');
  const exited = once(serve.child, 'exit');
  serve.child.kill('SIGTERM');
  await exited;
  t.false(await exists(recorded), 'removed on a clean stop');
});

test('--version, usage errors with exit 2, errors as JSON on stderr under --json', async (t) => {
  const manifest = JSON.parse(await readFile(new URL('../server/package.json', import.meta.url), 'utf8')) as { version: string };
  const [version, bare, unknownJson, badFlagJson, apiJson] = await Promise.all([
    fleetgate(['--version']),
    fleetgate([]),
    fleetgate(['no-such-command', '--json']),
    fleetgate(['device', 'list', '--expiring', 'soon', '--json']),
    fleetgate(['device', 'list', '--json', '--data', '/nonexistent-fleetgate-data']),
  ]);
  t.is(version.code, 0);
  t.is(version.stdout, `fleetgate ${manifest.version}\n`);
  t.is(bare.code, 2);
  t.regex(bare.stderr, /^fleetgate: CLI_USAGE: a command is required/);
  t.is(unknownJson.code, 2);
  t.deepEqual(JSON.parse(unknownJson.stderr), { error: { code: 'CLI_USAGE', message: 'unknown command: no-such-command --json' } });
  t.is(badFlagJson.code, 2);
  t.like(JSON.parse(badFlagJson.stderr), { error: { code: 'CLI_USAGE', message: '--expiring takes a duration such as 7d, 12h or 30m (got "soon")' } });
  t.is(apiJson.code, 1);
  t.like(JSON.parse(apiJson.stderr), { error: { code: 'DATA_NOT_INITIALIZED' } });
  for (const result of [unknownJson, badFlagJson, apiJson]) t.is(result.stdout, '');
});

test('crl --out - writes the DER CRL to stdout and nothing else; device list --expiring filters by certificate expiry', async (t) => {
  const fleet = await startFleet(t);
  await enrolledDevices(t, fleet, 'thermostat', 2);
  const cli = (args: readonly string[]) => fleetgate([...args, '--data', fleet.dir, '--server', fleet.server.adminUrl]);
  const [crl, crlPem, soon, later, badApi] = await Promise.all([
    run(process.execPath, [...SOURCE_NODE_ARGS, FLEETGATE_BIN, 'crl', '--out', '-', '--data', fleet.dir, '--server', fleet.server.adminUrl], {}),
    cli(['crl', '--out', '-', '--pem']),
    cli(['device', 'list', '--expiring', '1h', '--json']),
    cli(['device', 'list', '--expiring', '3650d']),
    cli(['device', 'list', '--state', 'enrolled', '--expiring', '0d']),
  ]);
  t.is(crl.code, 0, crl.stderr);
  const der = await fleet.server.crl.crl();
  t.is(Buffer.from(crl.stdout, 'latin1').length > 0, true);
  t.true(crlPem.stdout.startsWith('-----BEGIN X509 CRL-----\n') && crlPem.stdout.trimEnd().endsWith('-----END X509 CRL-----'), crlPem.stdout);
  t.true(der.length > 0);
  t.false(await exists(join(process.cwd(), '-')), 'no file named -');
  t.deepEqual(JSON.parse(soon.stdout), { devices: [] });
  t.is(later.code, 0, later.stderr);
  t.regex(later.stdout, /^2 devices \(certificate expiring within 3650d\)$/m);
  t.is(badApi.code, 2, 'a zero duration is a usage error');
});

test('shell completion is generated from the command table: bash completes `fleetgate device re` and option values', async (t) => {
  const command = `fleetgate() { ${JSON.stringify(process.execPath)} ${SOURCE_NODE_ARGS.map((arg) => JSON.stringify(arg)).join(' ')} ${JSON.stringify(FLEETGATE_BIN)} "$@"; }
source <(fleetgate completion bash)
complete -p fleetgate
complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _fleetgate; echo "\${COMPREPLY[*]}"; }
complete_words fleetgate device re
complete_words fleetgate device list --state ''
complete_words fleetgate device revoke x --reason key
complete_words fleetgate comp
complete_words fleetgate completion ''
complete_words fleetgate crl --p`;
  const result = await run('bash', ['-c', command]);
  t.is(result.code, 0, result.stderr);
  t.deepEqual(result.stdout.trim().split('\n'), [
    'complete -o default -F _fleetgate fleetgate',
    'revoke reset',
    'provisioned enrolled disabled revoked',
    'keyCompromise',
    'completion',
    'bash zsh',
    '--pem',
  ]);
  const [zsh, bad] = await Promise.all([fleetgate(['completion', 'zsh']), fleetgate(['completion', 'fish'])]);
  t.is(zsh.code, 0, zsh.stderr);
  t.regex(zsh.stdout, /^#compdef fleetgate\n[\s\S]*bashcompinit[\s\S]*complete -o default -F _fleetgate fleetgate\n$/);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /^fleetgate: CLI_USAGE: completion takes one shell: bash or zsh/);
});

test('device revoke asks on a terminal; "n" revokes nothing (CLI_ABORTED), --yes does not ask', async (t) => {
  const script = await run('script', ['--version']).catch(() => undefined);
  if (!script || script.code !== 0) {
    t.pass('no script(1) to make a terminal');
    return;
  }
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet, 'camera', 1);
  if (!device) throw new Error('no device');
  const line = (extra: string) =>
    [process.execPath, ...SOURCE_NODE_ARGS, FLEETGATE_BIN, 'device', 'revoke', device.id, '--data', fleet.dir, '--server', fleet.server.adminUrl, extra]
      .filter(Boolean)
      .map((arg) => `'${arg.replace(/'/g, `'\\''`)}'`)
      .join(' ');
  // script(1) gives the command a terminal and feeds it what it reads from its own stdin.
  const no = await run('script', ['-qec', line(''), '/dev/null'], { input: 'n\n' });
  t.regex(no.stdout, /Revoke device camera-[0-9a-f]+\? This is final/);
  t.regex(no.stdout, /fleetgate: CLI_ABORTED: nothing revoked/);
  t.is(no.code, 1);
  t.is((await fleet.server.registry.getDevice(device.id))?.state, 'enrolled');
  const yes = await run('script', ['-qec', line('--yes'), '/dev/null'], { input: '' });
  t.is(yes.code, 0, yes.stdout);
  t.notRegex(yes.stdout, /Revoke device/);
  await waitFor(async () => (await fleet.server.registry.getDevice(device.id))?.state === 'revoked', { what: 'the device revoked' });
});
