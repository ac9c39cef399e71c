import test from 'ava';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import mqttPacket from 'mqtt-packet';
import { ConnectError, MqttConnector } from '../device-sdk/src/connector.ts';
import { FleetDevice } from '../device-sdk/src/fleet-device.ts';
import { MemoryCredentialStore } from '../device-sdk/src/store.ts';
import type { DeviceState } from '../device-sdk/src/device-state.ts';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { Metrics } from '../server/src/metrics/metrics.ts';
import { listenerReporting } from '../server/src/metrics/listener-reporting.ts';
import { loadShedder } from '../server/src/tls/load-shed.ts';
import { enrolledDevices } from './helpers/device.ts';
import { factoryCredentials, makeDataDir, startFleet, testConfig, type DataDir } from './helpers/fleet.ts';
import { startServeProcess, type ServeProcess } from './helpers/serve-process.ts';
import { metric } from './helpers/sockets.ts';
import { waitFor, withDeadline } from './helpers/wait.ts';

/*
 * Load shedding (docs/broker.md, "Load shedding"): when handshakes arrive faster than the node
 * serves them, the excess is closed before the TLS handshake, the admitted ones get their CONNACK
 * without queueing behind the rest, and SDK devices back off with jitter and come back.
 * The server runs in its own process, so the load generator's TLS work is not on its event loop.
 */

/** Sets config.json values of a data directory, section by section. */
async function configure(data: DataDir, overrides: Record<string, Record<string, unknown>>): Promise<void> {
  const config = JSON.parse(await readFile(data.layout.config, 'utf8')) as Record<string, Record<string, unknown>>;
  for (const [section, values] of Object.entries(overrides)) config[section] = { ...config[section], ...values };
  await writeFile(data.layout.config, `${JSON.stringify(config, null, 2)}\n`);
}

/** What became of one connection attempt of the storm. */
type Outcome = { kind: 'connack'; code: number; ms: number } | { kind: 'shed' } | { kind: 'lost' };

/** One raw TLS + MQTT CONNECT; `shed` when the server closed it before the TLS handshake completed. */
function attempt(port: number, credential: { id: string; context: SecureContext }): Promise<Outcome> {
  const started = performance.now();
  return new Promise<Outcome>((resolve) => {
    const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port, secureContext: credential.context, servername: 'localhost' });
    let handshake = false;
    const finish = (outcome: Outcome): void => {
      resolve(outcome);
      socket.destroy();
    };
    socket.on('error', () => undefined);
    socket.once('close', () => finish(handshake ? { kind: 'lost' } : { kind: 'shed' }));
    socket.once('secureConnect', () => {
      handshake = true;
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      parser.on('packet', (packet: { cmd: string; returnCode?: number }) => {
        if (packet.cmd === 'connack') finish({ kind: 'connack', code: packet.returnCode ?? -1, ms: performance.now() - started });
      });
      socket.on('data', (chunk: Buffer) => parser.parse(chunk));
      socket.write(mqttPacket.generate({ cmd: 'connect', clientId: credential.id, keepalive: 30, protocolVersion: 4, protocolId: 'MQTT', clean: true }));
    });
  });
}

const percentile = (values: readonly number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
};

async function serve(t: import('ava').ExecutionContext, listeners: Record<string, number>): Promise<{ data: DataDir; server: ServeProcess }> {
  const data = await makeDataDir(t);
  await configure(data, { listeners, est: { perIdentityPerMinute: 1000 } });
  const server = await startServeProcess(t, data.dir, data.rootPem, { mqttPort: true, metricsPort: true });
  return { data, server };
}

test.serial('a storm of raw TLS connects: the excess is shed before the handshake (BROKER_LOAD_SHED), the admitted get CONNACK without queueing', async (t) => {
  t.timeout(180_000);
  const { data, server } = await serve(t, { shedPendingConnections: 16, shedEventLoopDelayMs: 0 });
  const devices = await enrolledDevices(t, { ...data, estUrl: server.estUrl }, 'thermostat', 10);
  const port = Number(new URL(server.mqttUrl).port);
  // Contexts made beforehand: 300 key parses in the storm's first tick would delay every attempt.
  const credentials = devices.map(({ operational }) => ({ id: operational.id, context: createSecureContext({ ca: data.rootPem, cert: operational.certPem, key: operational.keyPem }) }));
  const STORM = 300;
  const outcomes = await withDeadline(
    Promise.all(Array.from({ length: STORM }, (_, index) => attempt(port, credentials[index % credentials.length]!))),
    { what: 'every connection of the storm to end', timeoutMs: 120_000 },
  );
  const admitted = outcomes.flatMap((outcome) => (outcome.kind === 'connack' ? [outcome] : []));
  const shed = outcomes.filter((outcome) => outcome.kind === 'shed').length;
  const latencies = admitted.map((outcome) => outcome.ms);
  t.log(`storm of ${STORM}: ${admitted.length} admitted (CONNACK p50 ${percentile(latencies, 50).toFixed(0)} ms, p99 ${percentile(latencies, 99).toFixed(0)} ms, max ${Math.max(...latencies).toFixed(0)} ms), ${shed} shed`);
  t.true(shed > 0, 'some connections were shed');
  t.true(admitted.length > 0, 'some were admitted');
  t.true(admitted.every((outcome) => outcome.code === 0), 'every admitted device got CONNACK 0');
  const counted = await metric(server.metricsUrl, 'fleetgate_mqtt_refusals_total{code="BROKER_LOAD_SHED"}');
  // A few may be shed for another reason the client cannot tell apart (none expected at these rates).
  t.true(counted >= 1 && counted <= shed, `BROKER_LOAD_SHED counted ${counted}, clients saw ${shed} closed before the handshake`);
  t.is(await metric(server.metricsUrl, 'fleetgate_listener_sockets_closed_total{listener="mqtt",code="TLS_LOAD_SHED"}'), counted);
  // Admitted connections wait behind at most 16 unfinished others: far below the queue of 300 a
  // node without shedding builds. Generous for a loaded, shared machine.
  t.true(percentile(latencies, 99) < 5_000, `admitted CONNACK p99 ${percentile(latencies, 99).toFixed(0)} ms`);
});

test.serial('connections whose TLS handshake is done and that wait for their client do not count toward shedding: a slow link is no load', async (t) => {
  const { data, server } = await serve(t, { shedPendingConnections: 3, shedEventLoopDelayMs: 0 });
  // One at a time: the EST listener sheds at three handshakes in progress too.
  const devices = [];
  for (let index = 0; index < 7; index++) devices.push(...(await enrolledDevices(t, { ...data, estUrl: server.estUrl }, 'thermostat', 1)));
  const port = Number(new URL(server.mqttUrl).port);
  const credentials = devices.map(({ operational }) => ({ id: operational.id, context: createSecureContext({ ca: data.rootPem, cert: operational.certPem, key: operational.keyPem }) }));
  // Six clients finish their handshake, one after the other, and then say nothing (no CONNECT
  // yet): twice the threshold.
  const silent: TLSSocket[] = [];
  for (const { context } of credentials.slice(0, 6)) {
    const socket = tlsConnect({ host: '127.0.0.1', port, secureContext: context, servername: 'localhost' });
    t.teardown(() => socket.destroy());
    socket.on('error', () => undefined);
    await withDeadline(once(socket, 'secureConnect'), { what: 'a silent client\'s handshake' });
    silent.push(socket);
  }
  t.true(silent.every((socket) => !socket.destroyed), 'the silent clients are still connected');
  const outcome = await attempt(port, credentials[6]!);
  t.like(outcome, { kind: 'connack', code: 0 }, 'admitted: six connections wait for their clients, none is handshaking');
  t.is(await metric(server.metricsUrl, 'fleetgate_mqtt_refusals_total{code="BROKER_LOAD_SHED"}'), 0);
});

test.serial('SDK devices arriving at once against a node that sheds: every device connects in the end, none counts the shedding as a credential problem', async (t) => {
  t.timeout(180_000);
  const { data, server } = await serve(t, { shedPendingConnections: 2, shedEventLoopDelayMs: 0 });
  const bootstraps = await factoryCredentials(t, data, 'thermostat', 24);
  const states = new Map<string, DeviceState[]>();
  const devices = bootstraps.map((bootstrap) => {
    const device = new FleetDevice({
      deviceId: bootstrap.id,
      estUrl: server.estUrl,
      mqttUrl: server.mqttUrl,
      store: new MemoryCredentialStore(data.rootPem, { certPem: bootstrap.certPem, key: bootstrap.keyPem }),
      backoff: { initialMs: 100, maxMs: 2_000, multiplier: 2 },
    });
    const seen: DeviceState[] = [];
    states.set(bootstrap.id, seen);
    device.on('state', (state) => seen.push(state));
    device.on('warning', () => undefined);
    t.teardown(() => device.stop(true));
    return device;
  });
  await Promise.all(devices.map((device) => device.start()));
  await waitFor(() => devices.every((device) => device.state.type === 'connected'), {
    what: () => `every device connected (${devices.filter((device) => device.state.type === 'connected').length}/${devices.length})`,
    timeoutMs: 120_000,
  });
  const shedMqtt = await metric(server.metricsUrl, 'fleetgate_mqtt_refusals_total{code="BROKER_LOAD_SHED"}');
  const shedEst = await metric(server.metricsUrl, 'fleetgate_listener_sockets_closed_total{listener="est",code="TLS_LOAD_SHED"}');
  t.log(`shed: ${shedMqtt} MQTT, ${shedEst} EST connections`);
  t.true(shedMqtt + shedEst > 0, 'the node shed some of the arrivals');
  const all = [...states.values()].flat();
  t.false(all.some((state) => state.type === 'refused'), 'no device gave up');
  // A refusal (CONNACK 5) would have made the device ask EST about its credential (a renewal).
  const metricsText = await (await fetch(server.metricsUrl)).text();
  t.false(/^fleetgate_enrollments_total\{operation="simplereenroll"[^}]*\} [1-9]/m.test(metricsText), 'no device renewed: shedding never looked like a credential problem');
  if (shedMqtt > 0) {
    t.true(
      all.some((state) => state.type === 'backing-off' && /before the TLS handshake completed/.test(state.reason)),
      'a shed MQTT connection was reported as "closed before the TLS handshake" and backed off',
    );
  }
});

test('SDK: a connection closed before the TLS handshake is a network failure with handshake false (retry later), not a refusal', async (t) => {
  // A listener that closes every socket at once, as a shedding node does.
  const sockets = new Set<Socket>();
  const shedding = createTcpServer((socket) => {
    sockets.add(socket);
    socket.destroy();
  });
  shedding.listen(0, '127.0.0.1');
  await once(shedding, 'listening');
  t.teardown(() => shedding.close());
  const address = shedding.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const connector = new MqttConnector('thermostat-000000000001', '', {});
  t.teardown(() => connector.end(true));
  const error = await t.throwsAsync(connector.connect({ secureContext: createSecureContext({}), fingerprint: 'ab' }, `mqtts://127.0.0.1:${port}`), { instanceOf: ConnectError });
  t.is(error?.code, 'SDK_NETWORK');
  t.like(error?.failure, { kind: 'network', handshake: false });
  t.regex(error?.message ?? '', /before the TLS handshake completed/);
  t.true(sockets.size >= 1, 'the client did reach the listener');
});

test('the shed decision: handshakes in progress at the threshold, or a sustained event-loop delay above its limit (0: off)', (t) => {
  const loop = { delayMs: 0 };
  const shed = loadShedder({ shedPendingConnections: 3, shedEventLoopDelayMs: 200 }, loop);
  t.false(shed(2));
  t.true(shed(3));
  loop.delayMs = 201;
  t.true(shed(0), 'a late event loop sheds with no handshake pending');
  loop.delayMs = 200;
  t.false(shed(0));
  const withoutLoop = loadShedder({ shedPendingConnections: 3, shedEventLoopDelayMs: 0 }, { delayMs: 10_000 });
  t.false(withoutLoop(0), '0 turns the event-loop gate off');
});

test('a storm of shed sockets is counted one by one but logged once per listener, at warn level, with the count', async (t) => {
  const lines: { level: number; listener?: string; code?: string; shed?: number }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number]);
      done();
    },
  });
  const metrics = new Metrics({ processMetrics: false });
  const report = listenerReporting(metrics, pino({ level: 'debug' }, sink));
  for (let index = 0; index < 500; index++) {
    report.closed('mqtt', 'TLS_LOAD_SHED');
    report.log({ listener: 'mqtt', code: 'TLS_LOAD_SHED', peer: '127.0.0.1' });
  }
  report.closed('est', 'TLS_LOAD_SHED');
  report.log({ listener: 'est', code: 'TLS_LOAD_SHED', peer: '127.0.0.1' });
  report.log({ listener: 'mqtt', code: 'TLS_HANDSHAKE_FAILED', peer: '127.0.0.1' });
  await new Promise((resolve) => setImmediate(resolve));
  const warnings = lines.filter((line) => line.level === 40);
  t.deepEqual(
    warnings.map(({ listener, code, shed }) => ({ listener, code, shed })),
    [
      { listener: 'mqtt', code: 'TLS_LOAD_SHED', shed: 1 },
      { listener: 'est', code: 'TLS_LOAD_SHED', shed: 1 },
    ],
    'one warning per listener within the 10 s; the next one will carry the count since',
  );
  t.is(lines.filter((line) => line.level === 20).length, 1, 'other closes stay at debug, one line each');
  const counted = (await metrics.listenerSocketsClosed.get()).values.find((value) => value.labels.listener === 'mqtt' && value.labels.code === 'TLS_LOAD_SHED')?.value;
  t.is(counted, 500, 'every shed socket is counted');
});

/** Whether the server closed a raw TLS connection before its handshake completed. */
function closedBeforeHandshake(port: number, rootPem: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port, ca: rootPem, servername: 'localhost' });
    socket.on('error', () => undefined);
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('close', () => resolve(true));
  });
}

test.serial('a process whose event loop stays late sheds new connections before the handshake, and stops once it recovers', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ listeners: { shedEventLoopDelayMs: 100, shedPendingConnections: 10_000 } }) });
  const shedCount = () => metric(fleet.server.metricsUrl, 'fleetgate_mqtt_refusals_total{code="BROKER_LOAD_SHED"}');
  t.false(await closedBeforeHandshake(fleet.server.mqttPort, fleet.rootPem), 'an idle process admits');
  // Something else keeps the process busy: 200 ms blocks with short breaks, for as long as needed.
  let busy = true;
  const block = (): void => {
    if (!busy) return;
    const until = performance.now() + 200;
    while (performance.now() < until) {
      // busy
    }
    setTimeout(block, 5);
  };
  block();
  try {
    await waitFor(async () => (await closedBeforeHandshake(fleet.server.mqttPort, fleet.rootPem)) && (await shedCount()) > 0, { what: 'a connection shed while the loop is late', timeoutMs: 30_000 });
  } finally {
    busy = false;
  }
  t.true((await shedCount()) >= 1, 'counted as BROKER_LOAD_SHED');
  await waitFor(async () => !(await closedBeforeHandshake(fleet.server.mqttPort, fleet.rootPem)), { what: 'connections admitted again once the loop recovered', timeoutMs: 30_000 });
});
