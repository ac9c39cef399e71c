import test from 'ava';
import { readFile, stat, unlink } from 'node:fs/promises';
import { enrolledDevices } from './helpers/device.ts';
import { makeDataDir } from './helpers/fleet.ts';
import { sharedPostgres, stopSharedPostgres } from './helpers/postgres.ts';
import { rawConnect } from './helpers/raw-mqtt.ts';
import { startServeProcess } from './helpers/serve-process.ts';

/*
 * Resumption across processes: two `fleetgate serve` processes (two nodes) on one data directory
 * and one PostgreSQL registry, each with its own ports (so their command lines, which Node hashes
 * into its default session id context, differ). A ticket one node issued resumes on the other.
 */

test.after.always(stopSharedPostgres);

test.serial('a TLS session made on one node resumes on another node of the same data directory; an older data directory gets its ticket secret on the first serve', async (t) => {
  t.timeout(120_000);
  const data = await makeDataDir(t);
  // A data directory from before the ticket secret: the first serve makes it, the second reads it.
  await unlink(data.layout.ticketSecret);
  const registryUrl = await (await sharedPostgres()).createDatabase();
  // One after the other: the first makes the registry schema and the secret.
  const first = await startServeProcess(t, data.dir, data.rootPem, { args: ['--registry', registryUrl], mqttPort: true });
  const secret = await readFile(data.layout.ticketSecret, 'utf8');
  t.regex(secret, /^[0-9a-f]{64}\n$/);
  t.is((await stat(data.layout.ticketSecret)).mode & 0o777, 0o600, 'the secret is readable by its owner only');
  const second = await startServeProcess(t, data.dir, data.rootPem, { args: ['--registry', registryUrl], mqttPort: true });
  t.is(await readFile(data.layout.ticketSecret, 'utf8'), secret, 'the second node used the same secret');

  const [device] = await enrolledDevices(t, { ...data, estUrl: first.estUrl });
  const port = (url: string) => Number(new URL(url).port);
  const onFirst = await rawConnect({ port: port(first.mqttUrl), rootPem: data.rootPem }, device!.operational);
  t.is(onFirst.returnCode, 0);
  t.false(onFirst.resumed);
  t.truthy(onFirst.session);
  const onSecond = await rawConnect({ port: port(second.mqttUrl), rootPem: data.rootPem }, device!.operational, onFirst.session);
  t.true(onSecond.resumed, 'the ticket of node 1 resumed on node 2');
  t.is(onSecond.returnCode, 0, 'and node 2 checked and admitted the device');
  // And back: the tickets are the same on both sides.
  const back = await rawConnect({ port: port(first.mqttUrl), rootPem: data.rootPem }, device!.operational, onFirst.session);
  t.true(back.resumed);
});
