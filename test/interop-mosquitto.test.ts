import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { enrolledDevices, type EnrolledDevice } from './helpers/device.ts';
import { serviceCredential, startFleet, type Credential, type Fleet } from './helpers/fleet.ts';
import { run, type RunResult } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';

/** Files mosquitto clients read: root, certificate chain and key of a credential. */
async function credentialFiles(dir: string, fleet: Fleet, credential: Credential, name: string): Promise<string[]> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await writeFile(cert, credential.certPem);
  await writeFile(key, credential.keyPem, { mode: 0o600 });
  return ['-h', '127.0.0.1', '-p', String(fleet.server.mqttPort), '--cafile', fleet.layout.rootCert, '--cert', cert, '--key', key, '-V', 'mqttv311'];
}

function mosquitto(tool: 'mosquitto_pub' | 'mosquitto_sub', args: string[]): Promise<RunResult> {
  return run(tool, args, { timeoutMs: 15_000 });
}

async function setup(t: ExecutionContext): Promise<{ fleet: Fleet; dir: string; a: EnrolledDevice; b: EnrolledDevice }> {
  const fleet = await startFleet(t);
  const dir = await tempDir(t);
  const [a, b] = await enrolledDevices(t, fleet, 'thermostat', 2);
  if (!a || !b) throw new Error('no devices');
  return { fleet, dir, a, b };
}

test('mosquitto_pub and mosquitto_sub: telemetry from a device reaches the backend, a command from the backend reaches the device', async (t) => {
  const { fleet, dir, a } = await setup(t);
  const device = await credentialFiles(dir, fleet, a.operational, 'a');
  const backend = await credentialFiles(dir, fleet, await serviceCredential(t, fleet), 'backend');

  // Telemetry: the device publishes in its namespace, a backend service subscribed to devices/#.
  const consumer = mosquitto('mosquitto_sub', [...backend, '-i', 'backend:1', '-t', 'devices/#', '-C', '1', '-W', '10', '-v']);
  await new Promise((resolve) => setTimeout(resolve, 700));
  const published = await mosquitto('mosquitto_pub', [...device, '-i', a.id, '-t', `devices/${a.id}/telemetry`, '-m', '{"temp":21.5}', '-q', '1']);
  t.is(published.code, 0, published.stderr);
  const telemetry = await consumer;
  t.is(telemetry.code, 0, telemetry.stderr);
  t.is(telemetry.stdout.trim(), `devices/${a.id}/telemetry {"temp":21.5}`);

  // Commands: the device subscribes to its own namespace, the backend publishes a command.
  const listener = mosquitto('mosquitto_sub', [...device, '-i', a.id, '-t', `devices/${a.id}/commands/#`, '-C', '1', '-W', '10', '-v']);
  await new Promise((resolve) => setTimeout(resolve, 700));
  const command = await mosquitto('mosquitto_pub', [...backend, '-i', 'backend:2', '-t', `devices/${a.id}/commands/setpoint`, '-m', '19', '-q', '1']);
  t.is(command.code, 0, command.stderr);
  const received = await listener;
  t.is(received.code, 0, received.stderr);
  t.is(received.stdout.trim(), `devices/${a.id}/commands/setpoint 19`);
});

test('mosquitto_pub: a service not listed in broker.services is refused', async (t) => {
  const { fleet, dir } = await setup(t);
  const rogue = await credentialFiles(dir, fleet, await serviceCredential(t, fleet, 'rogue'), 'rogue');
  const result = await mosquitto('mosquitto_pub', [...rogue, '-i', 'rogue', '-t', 'devices/x/commands', '-m', 'x']);
  t.not(result.code, 0);
  t.regex(result.stderr, /not authori[sz]ed/i);
});

test('mosquitto_sub: another device topic is refused (SUBACK 0x80)', async (t) => {
  const { fleet, dir, a, b } = await setup(t);
  const args = await credentialFiles(dir, fleet, a.operational, 'a');
  const result = await mosquitto('mosquitto_sub', [...args, '-d', '-i', a.id, '-t', `devices/${b.id}/#`, '-C', '1', '-W', '3']);
  // mosquitto_sub 2.0 reports the SUBACK code with -d, and says so on stderr; it exits 0.
  t.regex(result.stdout, /Subscribed \(mid: \d+\): 128/);
  t.regex(result.stderr, /All subscription requests were denied/);
  t.notRegex(result.stdout, /CONNACK \([1-5]\)/, 'the connection itself was accepted');
});

test('mosquitto_pub: publishing to another device topic is cut off and never delivered', async (t) => {
  const { fleet, dir, a, b } = await setup(t);
  const argsA = await credentialFiles(dir, fleet, a.operational, 'a');
  const argsB = await credentialFiles(dir, fleet, b.operational, 'b');
  const watcher = mosquitto('mosquitto_sub', [...argsB, '-i', b.id, '-t', `devices/${b.id}/#`, '-C', '1', '-W', '3']);
  await new Promise((resolve) => setTimeout(resolve, 700));
  const spoof = await mosquitto('mosquitto_pub', [...argsA, '-i', a.id, '-t', `devices/${b.id}/commands`, '-m', 'unlock', '-q', '1']);
  t.not(spoof.code, 0, 'the QoS 1 publish was never acknowledged');
  const watched = await watcher;
  t.is(watched.stdout, '', 'nothing reached the other device');
});

test('mosquitto_pub with a bootstrap certificate is refused: not authorised', async (t) => {
  const { fleet, dir, a } = await setup(t);
  const args = await credentialFiles(dir, fleet, a.bootstrap, 'bootstrap');
  const result = await mosquitto('mosquitto_pub', [...args, '-i', a.id, '-t', `devices/${a.id}/telemetry`, '-m', 'x']);
  t.not(result.code, 0);
  t.regex(result.stderr, /not authori[sz]ed/i);
});

test('a revoked device is dropped from a live mosquitto_sub and cannot come back', async (t) => {
  const { fleet, dir, a } = await setup(t);
  const args = await credentialFiles(dir, fleet, a.operational, 'a');
  // No -C and no -W: mosquitto_sub would run for ever; only the broker dropping it ends it.
  const child = spawn('mosquitto_sub', [...args, '-i', a.id, '-t', `devices/${a.id}/#`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await new Promise((resolve) => setTimeout(resolve, 700));
  t.is(child.exitCode, null, 'connected and running');
  await fleet.server.registry.changeState({ deviceId: a.id, to: 'revoked', actor: 'operator:test' });
  const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 8000));
  const code = await Promise.race([exited, timeout]);
  t.not(code, 'timeout', 'the broker dropped the live session');
  t.regex(stderr, /connection was lost|not authori[sz]ed/i, stderr);
  const again = await mosquitto('mosquitto_pub', [...args, '-i', a.id, '-t', `devices/${a.id}/telemetry`, '-m', 'x']);
  t.not(again.code, 0);
  t.regex(again.stderr, /not authori[sz]ed/i);
});
