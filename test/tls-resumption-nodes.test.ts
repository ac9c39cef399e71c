import test from 'ava';
import { readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { ticketWindowAt } from '../server/src/tls/ticket-keys.ts';
import { enrolledDevices } from './helpers/device.ts';
import { makeDataDir } from './helpers/fleet.ts';
import { sharedPostgres, stopSharedPostgres } from './helpers/postgres.ts';
import { rawConnect } from './helpers/raw-mqtt.ts';
import { startServeProcess } from './helpers/serve-process.ts';
import { startRedis } from './helpers/redis.ts';
import { waitFor } from './helpers/wait.ts';

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

test.serial('both nodes change keys at the same window boundary without talking: a ticket of the old window still resumes on both after it, renewed; two windows on, on neither', async (t) => {
  t.timeout(120_000);
  const windowSeconds = 4;
  const data = await makeDataDir(t);
  const config = JSON.parse(await readFile(data.layout.config, 'utf8')) as Record<string, unknown>;
  await writeFile(data.layout.config, JSON.stringify({ ...config, tls: { ticketKeyWindowSeconds: windowSeconds, sessionTimeoutSeconds: 60 } }));
  const registryUrl = await (await sharedPostgres()).createDatabase();
  const first = await startServeProcess(t, data.dir, data.rootPem, { args: ['--registry', registryUrl], mqttPort: true });
  const second = await startServeProcess(t, data.dir, data.rootPem, { args: ['--registry', registryUrl], mqttPort: true });
  const [device] = await enrolledDevices(t, { ...data, estUrl: first.estUrl });
  const on = (node: typeof first) => ({ port: Number(new URL(node.mqttUrl).port), rootPem: data.rootPem });
  const credential = device!.operational;
  const windowNow = (): number => ticketWindowAt(Date.now(), windowSeconds);
  // Past both nodes' rotation timers (a few ms after the boundary), with room for a late tick.
  const intoWindow = (window: number): Promise<unknown> =>
    waitFor(() => Date.now() >= window * windowSeconds * 1000 + 300, { what: `ticket-key window ${window}`, timeoutMs: windowSeconds * 3000, intervalMs: 50 });

  // Each step must fall in the window it is meant for; a slow machine that slips starts again.
  for (let attempt = 1; ; attempt++) {
    const window = windowNow();
    const issued = await rawConnect(on(first), credential);
    const elsewhere = await rawConnect(on(second), credential, issued.session);
    if (windowNow() !== window && attempt < 4) continue;
    await intoWindow(window + 1);
    const nextOnSecond = await rawConnect(on(second), credential, issued.session, { renewedTicket: true });
    const nextOnFirst = await rawConnect(on(first), credential, issued.session);
    if (windowNow() !== window + 1 && attempt < 4) continue;
    await intoWindow(window + 2);
    const staleOnSecond = await rawConnect(on(second), credential, issued.session);
    const staleOnFirst = await rawConnect(on(first), credential, issued.session);
    const renewedOnFirst = await rawConnect(on(first), credential, nextOnSecond.session);
    if (windowNow() !== window + 2 && attempt < 4) continue;

    t.true(elsewhere.resumed, 'same window: the ticket of node 1 resumed on node 2');
    t.true(nextOnSecond.resumed && nextOnFirst.resumed, 'the next window: it resumed on both nodes');
    t.truthy(nextOnSecond.session, 'renewed by node 2 with a ticket of the new window');
    t.false(staleOnSecond.resumed || staleOnFirst.resumed, 'two windows on: both nodes had rotated past it');
    t.deepEqual([staleOnSecond.returnCode, staleOnFirst.returnCode], [0, 0], 'a full handshake, not a refusal');
    t.true(renewedOnFirst.resumed, 'the ticket node 2 renewed resumes on node 1');
    return;
  }
});

/*
 * Workers of one node: node:cluster itself hands the first worker's ticket keys to the others
 * when they listen (`_getServerData`/`_setServerData` of node:tls), so before a rotation they
 * would agree even with keys of their own. After a rotation each worker sets the keys it derived:
 * this test crosses a window boundary first, so it shows that every worker derives the same ones.
 */
test.serial('--workers 2: after a key rotation, every reconnect with one ticket resumes, whichever worker the primary hands it to', async (t) => {
  t.timeout(180_000);
  const windowSeconds = 4;
  const data = await makeDataDir(t);
  const config = JSON.parse(await readFile(data.layout.config, 'utf8')) as Record<string, unknown>;
  await writeFile(data.layout.config, JSON.stringify({ ...config, tls: { ticketKeyWindowSeconds: windowSeconds, sessionTimeoutSeconds: 60 } }));
  const registryUrl = await (await sharedPostgres()).createDatabase();
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const serve = await startServeProcess(t, data.dir, data.rootPem, {
    args: ['--registry', registryUrl, '--cluster-redis', redis.url, '--workers', '2', '--node-id', 'node'],
    mqttPort: true,
    metricsPort: true,
  });
  await waitFor(async () => (await fetch(new URL('/readyz', serve.metricsUrl))).status === 200, { what: () => `both workers ready: ${serve.output()}`, timeoutMs: 60_000, intervalMs: 100 });
  const [device] = await enrolledDevices(t, { ...data, estUrl: serve.estUrl });
  const target = { port: Number(new URL(serve.mqttUrl).port), rootPem: data.rootPem };
  // Past the next boundary (and the workers' timers, a few ms after it): every worker has rotated.
  const started = ticketWindowAt(Date.now(), windowSeconds);
  await waitFor(() => Date.now() >= (started + 1) * windowSeconds * 1000 + 200, { what: 'the next window boundary', timeoutMs: windowSeconds * 3000, intervalMs: 50 });
  for (let attempt = 0; ; attempt++) {
    const window = ticketWindowAt(Date.now(), windowSeconds);
    const issued = await rawConnect(target, device!.operational);
    // The primary hands connections to the workers in turn (node:cluster round robin): of eight
    // reconnects, about half land on the worker that did not issue the ticket.
    const results = [];
    for (let index = 0; index < 8; index++) results.push(await rawConnect(target, device!.operational, issued.session));
    if (ticketWindowAt(Date.now(), windowSeconds) !== window && attempt < 4) continue;
    t.deepEqual(results.map((result) => [result.resumed, result.returnCode]), Array.from({ length: 8 }, () => [true, 0]));
    break;
  }
});
