/**
 * The packages as users get them: `npm pack` of the SDK, the server and the simulator, installed
 * from the tarballs into a scratch project in a temp directory outside this repository, then used
 * there with nothing of this checkout: plain `.mjs` and `.cjs` programs enroll a device against
 * the installed `fleetgate serve` and publish telemetry, a TypeScript consumer compiles against the
 * SDK's declarations, and the installed commands run.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EST_PATHS } from '../device-sdk/src/protocol.ts';
import { estRequest } from './helpers/est-client.ts';
import { packWorkspaces } from './helpers/packs.ts';
import { freePort } from './helpers/ports.ts';
import { run, type RunResult } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { waitFor } from './helpers/wait.ts';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const WORKSPACES = ['device-sdk', 'server', 'simulator'] as const;
/** Each command in the scratch project: a cold tsc or npx on a loaded machine takes a while. */
const SCRATCH_TIMEOUT_MS = 300_000;
const versionOf = (name: string): string => (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

/** The environment of every command in the scratch project: nothing that points back here. */
function scratchEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, FLEETGATE_LOG_LEVEL: 'warn' };
  for (const name of ['NODE_OPTIONS', 'NODE_PATH', 'FLEETGATE_DATA', 'FLEETGATE_CA_PASSPHRASE', 'npm_config_prefix']) delete env[name];
  return env;
}

function npm(args: readonly string[], cwd: string, timeoutMs = 300_000): Promise<RunResult> {
  return run('npm', args, { cwd, env: scratchEnv(), timeoutMs });
}

function ok(result: RunResult, what: string): string {
  if (result.code !== 0) throw new Error(`${what} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** A device program: enroll with the factory credential, connect, publish, receive it back. */
const DEVICE_BODY = (load: string): string => `${load}
const [id, factory, estUrl, mqttUrl] = process.argv.slice(2);
const root = readFileSync(factory + '/root.crt', 'utf8');
const store = new MemoryCredentialStore(root, { certPem: readFileSync(factory + '/' + id + '.crt', 'utf8'), key: readFileSync(factory + '/' + id + '.key', 'utf8') });
const device = new FleetDevice({ deviceId: id, estUrl, mqttUrl, store });
const received = new Promise((resolve) => device.on('message', (topic, payload) => resolve({ topic, payload: payload.toString() })));
device.start().then(async () => {
  if (device.state.type !== 'connected') throw new Error('state ' + device.state.type);
  await device.subscribe('telemetry');
  await device.publish('telemetry', JSON.stringify({ temperature: 21.5 }), { qos: 1 });
  const message = await received;
  await device.stop();
  console.log(JSON.stringify({ state: 'done', ...message }));
}).catch((error) => { console.error(error); process.exit(1); });
`;

const ESM_DEVICE = DEVICE_BODY(`import { readFileSync } from 'node:fs';
import { FleetDevice, MemoryCredentialStore } from '@fleetgate/device-sdk';`);
const CJS_DEVICE = DEVICE_BODY(`const { readFileSync } = require('node:fs');
const { FleetDevice, MemoryCredentialStore } = require('@fleetgate/device-sdk');`);

/** A TypeScript consumer, once as an ES module and once as CommonJS; it must compile strictly. */
const TS_CONSUMER = `import { FleetDevice, MemoryCredentialStore, SdkError, EST_PATHS, type DeviceState, type EndpointChange, type FleetDeviceOptions } from '@fleetgate/device-sdk';
import { MEDIA_TYPES } from '@fleetgate/device-sdk/protocol';

const options: FleetDeviceOptions = { deviceId: 'thermostat-0123456789ab', estUrl: 'https://127.0.0.1:8443', mqttUrl: 'mqtts://127.0.0.1:8883', store: new MemoryCredentialStore('') };
const device = new FleetDevice(options);
const nodes: readonly string[] = ['mqtts://10.0.0.1:8883', 'mqtts://10.0.0.2:8883'];
const cluster = new FleetDevice({ ...options, estUrl: ['https://10.0.0.1:8443', 'https://10.0.0.2:8443'], mqttUrl: nodes });
cluster.on('endpoint', (change: EndpointChange) => console.log(change.kind, change.from, change.to, change.reason, cluster.endpoint.mqtt));
function describe(state: DeviceState): string {
  switch (state.type) {
    case 'connected': return 'until ' + state.certExpires.toISOString();
    default: return state.type;
  }
}
device.on('state', (state) => console.log(describe(state)));
device.on('refused', ({ code, reason }) => console.log(code.toUpperCase(), reason));
const error: unknown = undefined;
if (error instanceof SdkError) console.log(error.code);
export const paths: string = EST_PATHS.simpleenroll + MEDIA_TYPES.pkcs10;
`;

test('the packed SDK, server and simulator install outside the repository and work from there', async (t) => {
  t.timeout(900_000);
  const packs = await tempDir(t, 'fleetgate-packs-');
  const scratch = await tempDir(t, 'fleetgate-consumer-');
  t.false(scratch.startsWith(REPO_ROOT), 'the scratch project is outside the repository');

  const packed = await packWorkspaces(WORKSPACES, packs, scratchEnv());
  t.deepEqual(packed.map((entry) => entry.name).sort(), ['@fleetgate/device-sdk', '@fleetgate/server', '@fleetgate/simulator']);
  for (const entry of packed) {
    const paths = entry.files.map((file) => file.path);
    t.false(paths.some((path) => path.startsWith('src/') || path.endsWith('.test.ts') || path.endsWith('.key')), `${entry.name} ships no sources, tests or keys`);
    t.true(paths.some((path) => path.endsWith('.d.ts')), `${entry.name} ships declarations`);
  }
  // `fleetgate dashboard` serves its page from the package: built, never fetched from a CDN.
  const serverPaths = packed.find((entry) => entry.name === '@fleetgate/server')?.files.map((file) => file.path) ?? [];
  for (const asset of ['dist/ui/index.html', 'dist/ui/app.js', 'dist/ui/app.css']) t.true(serverPaths.includes(asset), `the server package ships ${asset}`);

  await writeFile(join(scratch, 'package.json'), `${JSON.stringify({ name: 'firmware', private: true, version: '1.0.0' }, null, 2)}\n`);
  const tarballs = packed.map((entry) => join(packs, entry.filename));
  ok(
    await npm(['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs, `typescript@${versionOf('typescript')}`, `@types/node@${versionOf('@types/node')}`], scratch),
    'npm install of the tarballs',
  );

  // The installed commands.
  const help = ok(await run('npx', ['--no-install', 'fleetgate', '--help'], { cwd: scratch, env: scratchEnv(), timeoutMs: SCRATCH_TIMEOUT_MS }), 'npx fleetgate --help');
  t.true(help.startsWith('Usage: fleetgate <command>'), help);
  const simHelp = ok(await run('npx', ['--no-install', 'fleetgate-sim', '--help'], { cwd: scratch, env: scratchEnv(), timeoutMs: SCRATCH_TIMEOUT_MS }), 'npx fleetgate-sim --help');
  t.regex(simHelp, /fleetgate-sim/);
  ok(await run('npx', ['--no-install', 'fleetgate', 'init', '--data', 'data'], { cwd: scratch, env: scratchEnv(), timeoutMs: SCRATCH_TIMEOUT_MS }), 'npx fleetgate init');
  t.truthy(await readFile(join(scratch, 'data', 'ca', 'root.crt'), 'utf8'));
  const batch = JSON.parse(
    ok(await run('npx', ['--no-install', 'fleetgate', 'bootstrap', 'issue', '--data', 'data', '--model', 'thermostat', '--count', '2', '--out', 'factory', '--json'], { cwd: scratch, env: scratchEnv(), timeoutMs: SCRATCH_TIMEOUT_MS }), 'bootstrap issue'),
  ) as { devices: Array<{ id: string }> };
  const [esmId, cjsId] = batch.devices.map((device) => device.id);
  if (!esmId || !cjsId) throw new Error('bootstrap issue made fewer than two devices');

  // The installed server, started the way an operator would.
  const ports = { est: await freePort(), mqtt: await freePort(), admin: await freePort(), metrics: await freePort() };
  const serverBin = join(scratch, 'node_modules', '@fleetgate', 'server', 'bin', 'fleetgate.js');
  const server = spawn(
    process.execPath,
    [serverBin, 'serve', '--data', 'data', '--host', '127.0.0.1', '--est-port', String(ports.est), '--mqtt-port', String(ports.mqtt), '--admin-port', String(ports.admin), '--metrics-port', String(ports.metrics)],
    { cwd: scratch, env: scratchEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let serverOutput = '';
  server.stdout.on('data', (chunk: Buffer) => (serverOutput += chunk.toString()));
  server.stderr.on('data', (chunk: Buffer) => (serverOutput += chunk.toString()));
  t.teardown(() => {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  });
  const estUrl = `https://127.0.0.1:${ports.est}`;
  const rootPem = await readFile(join(scratch, 'data', 'ca', 'root.crt'), 'utf8');
  await waitFor(
    async () => {
      if (server.exitCode !== null) throw new Error(`fleetgate serve exited ${server.exitCode}: ${serverOutput}`);
      return estRequest({ url: estUrl, path: EST_PATHS.cacerts, ca: rootPem }).then((response) => response.status === 200, () => false);
    },
    { timeoutMs: 60_000, what: 'the installed fleetgate serve to answer cacerts' },
  );

  // Plain JavaScript firmware, ESM and CommonJS, each enrolls and publishes.
  await writeFile(join(scratch, 'device.mjs'), ESM_DEVICE);
  await writeFile(join(scratch, 'device.cjs'), CJS_DEVICE);
  const mqttUrl = `mqtts://127.0.0.1:${ports.mqtt}`;
  const [esm, cjs] = await Promise.all([
    run(process.execPath, ['device.mjs', esmId, 'factory', estUrl, mqttUrl], { cwd: scratch, env: scratchEnv(), timeoutMs: 120_000 }),
    run(process.execPath, ['device.cjs', cjsId, 'factory', estUrl, mqttUrl], { cwd: scratch, env: scratchEnv(), timeoutMs: 120_000 }),
  ]);
  for (const [result, id, kind] of [[esm, esmId, 'ESM'], [cjs, cjsId, 'CommonJS']] as const) {
    const outcome = JSON.parse(ok(result, `${kind} device`).trim()) as { state: string; topic: string; payload: string };
    t.deepEqual(outcome, { state: 'done', topic: `devices/${id}/telemetry`, payload: '{"temperature":21.5}' }, `${kind} device`);
  }
  const listed = JSON.parse(
    ok(await run('npx', ['--no-install', 'fleetgate', 'device', 'list', '--data', 'data', '--server', `https://127.0.0.1:${ports.admin}`, '--json'], { cwd: scratch, env: scratchEnv(), timeoutMs: SCRATCH_TIMEOUT_MS }), 'device list'),
  ) as { devices: Array<{ id: string; state: string }> };
  t.deepEqual(listed.devices.map((device) => device.id).sort(), [esmId, cjsId].sort(), 'both devices are in the registry of the installed server');

  // A TypeScript consumer against the SDK's declarations, as ESM (.mts) and CommonJS (.cts).
  await writeFile(join(scratch, 'consumer.mts'), TS_CONSUMER);
  await writeFile(join(scratch, 'consumer.cts'), TS_CONSUMER);
  await writeFile(join(scratch, 'tsconfig.json'), `${JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', types: ['node'] }, files: ['consumer.mts', 'consumer.cts'] }, null, 2)}\n`);
  ok(await run('npx', ['--no-install', 'tsc', '-p', '.'], { cwd: scratch, env: scratchEnv(), timeoutMs: SCRATCH_TIMEOUT_MS }), 'tsc --strict on the consumer');
  // ... and the compiler does check against those types: a wrong use is an error.
  await writeFile(join(scratch, 'wrong.mts'), `import { FleetDevice } from '@fleetgate/device-sdk';\nnew FleetDevice({ deviceId: 42 });\n`);
  const wrong = await run('npx', ['--no-install', 'tsc', '--strict', '--noEmit', '--module', 'nodenext', '--types', 'node', 'wrong.mts'], { cwd: scratch, env: scratchEnv(), timeoutMs: SCRATCH_TIMEOUT_MS });
  t.not(wrong.code, 0);
  t.regex(wrong.stdout, /TS2\d{3}/);

  server.kill('SIGTERM');
  await waitFor(() => server.exitCode !== null, { timeoutMs: 30_000, what: 'fleetgate serve to stop on SIGTERM' });
  t.is(server.exitCode, 0, serverOutput);
});
