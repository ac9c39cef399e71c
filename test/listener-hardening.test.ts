import test from 'ava';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { ConfigError, DEFAULT_CONFIG, mergeConfig } from '../server/src/config/config.ts';
import { LISTENER_CLOSE_CODES } from '../server/src/tls/listener-guard.ts';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { connectMqtt, enrolledDevices } from './helpers/device.ts';
import { makeDataDir, startFleet, testConfig, type Fleet } from './helpers/fleet.ts';
import { startServeProcess } from './helpers/serve-process.ts';
import { metric, silentSocket, until, within } from './helpers/sockets.ts';

/*
 * The TLS listeners (MQTT, EST, admin) close connections that do not finish their handshake
 * (MQTT: their CONNECT), bound how many may be unfinished per source address and in total, refuse
 * TLS 1.2 renegotiation, and let a shutdown end promptly whatever is still open.
 */

const LISTENERS = ['mqtt', 'est', 'admin'] as const;
type Listener = (typeof LISTENERS)[number];

const portOf = (fleet: Fleet, listener: Listener): number =>
  listener === 'mqtt' ? fleet.server.mqttPort : listener === 'est' ? fleet.server.estPort : fleet.server.adminPort;

const closedCount = (fleet: Fleet, listener: Listener, code: string): Promise<number> =>
  metric(fleet.server.metricsUrl, `fleetgate_listener_sockets_closed_total{listener="${listener}",code="${code}"}`);

for (const listener of LISTENERS) {
  test(`${listener}: a silent TCP socket is closed within listeners.handshakeTimeoutMs, and counted`, async (t) => {
    const fleet = await startFleet(t, { config: testConfig({ listeners: { handshakeTimeoutMs: 300 } }) });
    const silent = await silentSocket(t, portOf(fleet, listener));
    // Before the fix these stayed open 120 s (EST), 70 s (admin), minutes (MQTT).
    const elapsed = await within(silent.closed, 5000, 'still open');
    t.true(typeof elapsed === 'number' && elapsed >= 250 && elapsed < 3000, `closed after ${String(elapsed)}`);
    t.is(await closedCount(fleet, listener, 'TLS_HANDSHAKE_TIMEOUT'), 1);
  });

  test(`${listener}: a TLS 1.2 client-initiated renegotiation closes the connection`, async (t) => {
    const fleet = await startFleet(t);
    const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port: portOf(fleet, listener), ca: fleet.rootPem, servername: 'localhost', maxVersion: 'TLSv1.2' });
    t.teardown(() => socket.destroy());
    socket.on('error', () => undefined);
    await once(socket, 'secureConnect');
    t.is(socket.getProtocol(), 'TLSv1.2');
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.renegotiate({ rejectUnauthorized: false }, () => undefined);
    // Before the fix the renegotiation succeeded and the connection stayed up.
    t.is(await within(closed.then(() => 'closed'), 15_000, 'still open'), 'closed');
    t.is(await closedCount(fleet, listener, 'TLS_RENEGOTIATION'), 1);
  });
}

for (const listener of LISTENERS) {
  test(`${listener}: a TLS client that then sends nothing (no CONNECT, no request) is closed within the same timeout`, async (t) => {
    // Long enough for the handshake itself on a busy machine; aedes' own CONNECT timeout is 10 s,
    // the admin API's HTTP headers timeout 60 s.
    const fleet = await startFleet(t, { config: testConfig({ listeners: { handshakeTimeoutMs: 1500 } }) });
    const started = Date.now();
    const socket = tlsConnect({ host: '127.0.0.1', port: portOf(fleet, listener), ca: fleet.rootPem, servername: 'localhost' });
    t.teardown(() => socket.destroy());
    socket.on('error', () => undefined);
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)));
    await once(socket, 'secureConnect');
    const elapsed = await within(closed, 6000, 'still open');
    t.true(typeof elapsed === 'number' && elapsed >= 1400 && elapsed < 5000, `closed after ${String(elapsed)}`);
    t.is(await closedCount(fleet, listener, 'TLS_HANDSHAKE_TIMEOUT'), 1);
  });
}

test('a failed handshake (bytes that are not TLS) is closed at once and counted', async (t) => {
  const fleet = await startFleet(t);
  for (const listener of LISTENERS) {
    const silent = await silentSocket(t, portOf(fleet, listener));
    silent.socket.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    t.not(await within(silent.closed, 3000, 'still open'), 'still open', listener);
    t.is(await closedCount(fleet, listener, 'TLS_HANDSHAKE_FAILED'), 1, listener);
  }
});

test('many silent sockets from one address cannot lock a device out of MQTT', async (t) => {
  // Before the fix: 120 silent sockets filled the listener's hard ceiling (5 + 100) and the
  // device's connection was dropped by the kernel-side accept limit.
  const fleet = await startFleet(t, { config: testConfig({ brokerLimits: { maxConnections: 5 }, listeners: { maxPendingPerAddress: 8 } }) });
  const [device] = await enrolledDevices(t, fleet);
  const silent = await Promise.all(Array.from({ length: 120 }, () => silentSocket(t, fleet.server.mqttPort, { localAddress: '127.0.0.2' })));
  // Beyond the bound they are closed as soon as they are accepted.
  const outcomes = await Promise.all(silent.map((socket) => within(socket.closed, 3000, 'open')));
  t.is(outcomes.filter((outcome) => outcome === 'open').length, 8);
  t.is(await closedCount(fleet, 'mqtt', 'TLS_PENDING_PER_ADDRESS'), 112);
  t.is(await metric(fleet.server.metricsUrl, 'fleetgate_listener_pending_connections{listener="mqtt"}'), 8);
  const client = await connectMqtt(t, fleet, device!.operational);
  t.true(client.connected);
  await client.publishAsync(`devices/${device!.id}/telemetry`, 'still here', { qos: 1 });
});

test('unfinished connections are bounded in total across addresses; a device still connects', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ listeners: { maxPendingConnections: 10 } }) });
  const [device] = await enrolledDevices(t, fleet);
  const silent = [];
  for (const address of ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']) {
    for (let index = 0; index < 5; index++) silent.push(await silentSocket(t, fleet.server.mqttPort, { localAddress: address }));
  }
  const outcomes = await Promise.all(silent.map((socket) => within(socket.closed, 3000, 'open')));
  t.is(outcomes.filter((outcome) => outcome === 'open').length, 10);
  t.is(await closedCount(fleet, 'mqtt', 'TLS_PENDING_TOTAL'), 10);
  // The device's own handshake needs a place: free one, as a timed-out socket would.
  silent.find((_socket, index) => outcomes[index] === 'open')?.socket.destroy();
  t.true(await until(async () => (await metric(fleet.server.metricsUrl, 'fleetgate_listener_pending_connections{listener="mqtt"}')) === 9, 3000));
  const client = await connectMqtt(t, fleet, device!.operational);
  t.true(client.connected);
});

test('fleetgate serve with a silent socket open exits promptly on SIGTERM', async (t) => {
  const data = await makeDataDir(t);
  const serve = await startServeProcess(t, data.dir, data.rootPem);
  const silent = await silentSocket(t, serve.port);
  const exited = new Promise<number | null>((resolve) => serve.child.once('exit', (code) => resolve(code)));
  const started = Date.now();
  serve.child.kill('SIGTERM');
  // Before the fix the silent socket held the process until its handshake timed out.
  const code = await within(exited, 4000, 'still running');
  t.is(code, 0, serve.output());
  t.true(Date.now() - started < 4000);
  t.not(await within(silent.closed, 1000, 'still open'), 'still open');
});

test('config: listeners.* are positive numbers, unknown keys are refused, defaults apply', (t) => {
  t.deepEqual(mergeConfig({}).listeners, DEFAULT_CONFIG.listeners);
  t.is(mergeConfig({ listeners: { handshakeTimeoutMs: 2500 } }).listeners.handshakeTimeoutMs, 2500);
  t.is(mergeConfig({ listeners: { handshakeTimeoutMs: 2500 } }).listeners.maxPendingPerAddress, DEFAULT_CONFIG.listeners.maxPendingPerAddress);
  for (const bad of [{ handshakeTimeoutMs: 0 }, { maxPendingConnections: -1 }, { maxPendingPerAddress: 'many' }, { handshakeTimeout: 1000 }]) {
    t.throws(() => mergeConfig({ listeners: bad }), { instanceOf: ConfigError }, JSON.stringify(bad));
  }
  t.throws(() => mergeConfig({ listeners: 5 }), { instanceOf: ConfigError });
});

/** The rows (cells) of the markdown table whose header starts with `| header |`. */
function tableRows(markdown: string, header: string): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => line.startsWith(`| ${header} |`));
  const rows: string[][] = [];
  if (start === -1) return rows;
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.split('|').slice(1, -1).map((cell) => cell.trim()));
  }
  return rows;
}

test('docs: errors.md lists exactly the TLS_* codes, broker.md the listeners settings with their defaults', async (t) => {
  const docs = fileURLToPath(new URL('../docs/', import.meta.url));
  const errors = await readFile(`${docs}errors.md`, 'utf8');
  const section = errors.slice(errors.indexOf('## TLS listeners'));
  const codes = tableRows(section, 'code').map(([code = '']) => code.replaceAll('`', ''));
  t.deepEqual(codes.sort(), Object.keys(LISTENER_CLOSE_CODES).sort());
  const broker = await readFile(`${docs}broker.md`, 'utf8');
  const settings = Object.fromEntries(tableRows(broker, 'listeners setting').map(([name = '', value = '']) => [name.replaceAll('`', ''), Number(value.split(' ')[0])]));
  t.deepEqual(settings, { ...DEFAULT_CONFIG.listeners });
});

test('an established connection stops counting as unfinished: MQTT after CONNACK, HTTPS after its first request', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ listeners: { handshakeTimeoutMs: 1500 } }) });
  const [device] = await enrolledDevices(t, fleet);
  const pending = (listener: Listener): Promise<number> => metric(fleet.server.metricsUrl, `fleetgate_listener_pending_connections{listener="${listener}"}`);
  const client = await connectMqtt(t, fleet, device!.operational);
  t.is(await pending('mqtt'), 0);
  // A kept-alive HTTPS connection after one request.
  const socket = tlsConnect({ host: '127.0.0.1', port: fleet.server.estPort, ca: fleet.rootPem, servername: 'localhost' });
  t.teardown(() => socket.destroy());
  await once(socket, 'secureConnect');
  const answered = new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1'))));
  socket.write('GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n');
  t.regex(await answered, /^HTTP\/1\.1 200/);
  t.is(await pending('est'), 0);
  // Past the handshake timeout both are still up.
  t.false(await until(() => socket.destroyed || !client.connected, 2000));
  t.is(await closedCount(fleet, 'mqtt', 'TLS_HANDSHAKE_TIMEOUT'), 0);
  t.is(await closedCount(fleet, 'est', 'TLS_HANDSHAKE_TIMEOUT'), 0);
});
