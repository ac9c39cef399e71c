import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { enrolledDevices, type EnrolledDevice } from './helpers/device.ts';
import { serviceCredential, startFleet, type Credential, type Fleet } from './helpers/fleet.ts';
import { run, type RunResult } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { withDeadline } from './helpers/wait.ts';

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

/** A running mosquitto_sub: resolves `subscribed` on its SUBACK, `done` when it exits. */
interface Subscriber {
  readonly subscribed: Promise<void>;
  /** Exit code, stderr, and the lines it printed for messages (its -d debug lines left out). */
  readonly done: Promise<{ code: number | null; messages: string[]; stderr: string }>;
}

/**
 * Starts mosquitto_sub with -d, whose debug output on stdout says when the broker granted the
 * subscription ("Subscribed (mid: 1): 0"): a publish sent after that is delivered, so the test
 * waits for that line instead of a fixed pause.
 */
function subscriber(t: ExecutionContext, args: string[]): Subscriber {
  // stdbuf -oL: into a pipe, mosquitto_sub would hold its debug lines in a block buffer.
  const child = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-d', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const subscribed = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (/^Subscribed \(mid: \d+\)/m.test(stdout)) resolve();
    });
    void exited.then(() => reject(new Error(`mosquitto_sub exited before subscribing: ${stdout}${stderr}`)));
  });
  const done = exited.then((code) => ({ code, stderr, messages: stdout.split('\n').filter((line) => line !== '' && !/^(Client \S+ (sending|received) |Subscribed \(mid: )/.test(line)) }));
  return { subscribed: withDeadline(subscribed, { what: `mosquitto_sub ${args.join(' ')} to subscribe` }), done: withDeadline(done, { what: 'mosquitto_sub to exit', timeoutMs: 15_000 }) };
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
  const consumer = subscriber(t, [...backend, '-i', 'backend:1', '-t', 'devices/#', '-C', '1', '-W', '10', '-v']);
  await consumer.subscribed;
  const published = await mosquitto('mosquitto_pub', [...device, '-i', a.id, '-t', `devices/${a.id}/telemetry`, '-m', '{"temp":21.5}', '-q', '1']);
  t.is(published.code, 0, published.stderr);
  const telemetry = await consumer.done;
  t.is(telemetry.code, 0, telemetry.stderr);
  t.deepEqual(telemetry.messages, [`devices/${a.id}/telemetry {"temp":21.5}`]);

  // Commands: the device subscribes to its own namespace, the backend publishes a command.
  const listener = subscriber(t, [...device, '-i', a.id, '-t', `devices/${a.id}/commands/#`, '-C', '1', '-W', '10', '-v']);
  await listener.subscribed;
  const command = await mosquitto('mosquitto_pub', [...backend, '-i', 'backend:2', '-t', `devices/${a.id}/commands/setpoint`, '-m', '19', '-q', '1']);
  t.is(command.code, 0, command.stderr);
  const received = await listener.done;
  t.is(received.code, 0, received.stderr);
  t.deepEqual(received.messages, [`devices/${a.id}/commands/setpoint 19`]);
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
  const backend = await credentialFiles(dir, fleet, await serviceCredential(t, fleet), 'backend');
  // -C 1: the watcher exits on the first message it gets.
  const watcher = subscriber(t, [...argsB, '-i', b.id, '-t', `devices/${b.id}/#`, '-C', '1', '-W', '10', '-v']);
  await watcher.subscribed;
  const spoof = await mosquitto('mosquitto_pub', [...argsA, '-i', a.id, '-t', `devices/${b.id}/commands`, '-m', 'unlock', '-q', '1']);
  t.not(spoof.code, 0, 'the QoS 1 publish was never acknowledged');
  // A marker sent after the spoof: had the spoof been delivered, it would have come first.
  const marker = await mosquitto('mosquitto_pub', [...backend, '-i', 'backend:marker', '-t', `devices/${b.id}/commands/marker`, '-m', 'marker', '-q', '1']);
  t.is(marker.code, 0, marker.stderr);
  const watched = await watcher.done;
  t.deepEqual(watched.messages, [`devices/${b.id}/commands/marker marker`], 'nothing but the marker reached the other device');
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
  const live = subscriber(t, [...args, '-i', a.id, '-t', `devices/${a.id}/#`]);
  await live.subscribed; // connected, subscribed and running
  await fleet.server.registry.changeState({ deviceId: a.id, to: 'revoked', actor: 'operator:test' });
  const { stderr } = await withDeadline(live.done, { what: 'the broker to drop the live mosquitto_sub session', timeoutMs: 8000 });
  t.regex(stderr, /connection was lost|not authori[sz]ed/i, stderr);
  const again = await mosquitto('mosquitto_pub', [...args, '-i', a.id, '-t', `devices/${a.id}/telemetry`, '-m', 'x']);
  t.not(again.code, 0);
  t.regex(again.stderr, /not authori[sz]ed/i);
});
