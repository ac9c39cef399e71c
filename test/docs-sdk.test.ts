/**
 * docs/sdk.md run as a firmware team runs it: in a scratch project in a temp directory outside
 * this repository, with the SDK installed from the tarball `npm pack -w device-sdk` makes (the
 * guide's first block installs "$SDK_TARBALL"), the thermostat run by a plain `node` that resolves
 * `@fleetgate/device-sdk` to that installed copy, and the same file then compiled as TypeScript
 * against the installed declarations. Only the `fleetgate` server side comes from this checkout.
 */
import test from 'ava';
import { chmod, copyFile, mkdir, readFile, realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT, docEnvironment, freeListenerPorts, isListening, runDocScript } from './helpers/doc-script.ts';
import { run, type RunResult } from './helpers/run.ts';
import { SOURCE_NODE_ARGS } from './helpers/source-node.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { packWorkspaces } from './helpers/packs.ts';

const GUIDE = join(REPO_ROOT, 'docs', 'sdk.md');

/** The caller's PATH without this repository's directories (`npx ava` puts node_modules/.bin first). */
function pathOutsideRepo(): string {
  return (process.env.PATH ?? '')
    .split(':')
    .filter((entry) => entry !== '' && !entry.startsWith(REPO_ROOT))
    .join(':');
}

/** Environment for npm and node in the scratch project: nothing that points back here. */
function outsideEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: pathOutsideRepo() };
  for (const name of ['NODE_OPTIONS', 'NODE_PATH', 'npm_config_prefix']) delete env[name];
  return env;
}

function ok(result: RunResult, what: string): string {
  if (result.code !== 0) throw new Error(`${what} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/**
 * A `fleetgate` command for the guide's PATH that runs this checkout's server from its sources
 * (like every other test), with the options on its own command line rather than in NODE_OPTIONS,
 * which the thermostat's `node` would inherit and resolve the SDK to the repository's sources.
 */
async function fleetgateFromSources(dir: string): Promise<void> {
  const quote = (text: string): string => `'${text.replaceAll("'", `'\\''`)}'`;
  const command = [process.execPath, ...SOURCE_NODE_ARGS, join(REPO_ROOT, 'server', 'bin', 'fleetgate.js')].map(quote).join(' ');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'fleetgate'), `#!/bin/sh\nexec ${command} "$@"\n`);
  await chmod(join(dir, 'fleetgate'), 0o755);
}

test('the thermostat of docs/sdk.md, with the SDK installed from its tarball outside the repository, enrolls, reports telemetry, obeys a command and restarts without re-enrolling', async (t) => {
  // npm pack builds the SDK (prepack) on a machine shared with other test files; npm install
  // copies ~50 packages from the npm cache.
  t.timeout(600_000);
  const packs = await tempDir(t, 'fleetgate-sdk-pack-');
  const cwd = await realpath(await tempDir(t, 'fleetgate-firmware-'));
  t.false(cwd.startsWith(REPO_ROOT), 'the firmware project is outside the repository');

  const packed = await packWorkspaces(['device-sdk'], packs, outsideEnv());
  const tarball = join(packs, packed[0]?.filename ?? 'missing.tgz');

  const bin = join(packs, 'bin');
  await fleetgateFromSources(bin);
  const ports = await freeListenerPorts();
  const env: NodeJS.ProcessEnv = {
    ...docEnvironment(ports),
    PATH: `${bin}:${pathOutsideRepo()}`,
    SDK_TARBALL: tarball,
    // What a reader's npm would fetch, it finds in the cache the repository's install filled.
    npm_config_prefer_offline: 'true',
    npm_config_update_notifier: 'false',
  };
  delete env.NODE_OPTIONS;
  delete env.NODE_PATH;

  const guide = await runDocScript(t, GUIDE, { cwd, env, timeoutMs: 300_000 });
  t.is(guide.code, 0, guide.report);

  // The SDK the thermostat ran is the installed tarball, not this checkout.
  const installed = JSON.parse(await readFile(join(cwd, 'node_modules', '@fleetgate', 'device-sdk', 'package.json'), 'utf8')) as { name: string };
  t.is(installed.name, '@fleetgate/device-sdk');
  const resolved = ok(await run(process.execPath, ['--input-type=module', '-e', "console.log(import.meta.resolve('@fleetgate/device-sdk'))"], { cwd, env: outsideEnv() }), 'resolve the SDK');
  t.is(resolved.trim(), `file://${join(cwd, 'node_modules', '@fleetgate', 'device-sdk', 'dist', 'esm', 'index.js')}`);

  const log = await readFile(join(cwd, 'thermostat.log'), 'utf8');
  t.regex(log, /^state enrolling\nstate connecting\nstate connected\n/, log);
  t.regex(log, /setpoint 23/);
  t.regex(log, /state stopped/);
  const telemetry = (await readFile(join(cwd, 'telemetry.out'), 'utf8')).trim().split('\n');
  t.is(telemetry.length, 2, telemetry.join('\n'));
  for (const line of telemetry) t.regex(line, /^devices\/thermostat-[0-9a-f]{12}\/telemetry \{"temperature":[\d.]+,"setpoint":\d+\}$/);
  t.regex(guide.stdout, /state connecting\nstate connected\n/, 'second start: no enrollment');
  t.regex(guide.stdout, /bootstrap\.json\s+operational\.json\s+root\.crt/);
  t.false(await isListening(ports.est), 'the guide stopped the server');

  // "The file above is also valid TypeScript, checked with --strict": as thermostat.mts, against
  // the installed package's declarations (the compiler is this checkout's; the types are not).
  await copyFile(join(cwd, 'thermostat.mjs'), join(cwd, 'thermostat.mts'));
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const compiled = await run(process.execPath, [tsc, '--strict', '--module', 'nodenext', '--target', 'es2022', '--outDir', 'build', 'thermostat.mts'], { cwd, env: outsideEnv() });
  t.is(compiled.code, 0, `${compiled.stdout}\n${compiled.stderr}`);
  t.true((await readFile(join(cwd, 'build', 'thermostat.mjs'), 'utf8')).includes("from '@fleetgate/device-sdk'"));
});
