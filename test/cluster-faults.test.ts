import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { connect, connectAsync, type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import type { AckExport, SimulationReport } from '../simulator/src/index.ts';
import { createCsr, generateDeviceKeyPair } from '../device-sdk/src/csr.ts';
import { EST_PATHS } from '../device-sdk/src/protocol.ts';
import type { PostgresRegistry } from '../server/src/registry/postgres/postgres-registry.ts';
import { admin } from './helpers/admin-client.ts';
import { connackCode, enrolledDevices, mqttOptions } from './helpers/device.ts';
import { csrBody, estRequest } from './helpers/est-client.ts';
import { factoryCredentials, makeDataDir, mintDeviceCredential, serviceCredential, startFleet, type DataDir, type Fleet } from './helpers/fleet.ts';
import { LogWatcher } from './helpers/log-watch.ts';
import { Ingest } from './helpers/ingest.ts';
import { sharedPostgres, startPostgres, stopSharedPostgres } from './helpers/postgres.ts';
import { startRedis } from './helpers/redis.ts';
import { startServeProcess, type ServeProcess } from './helpers/serve-process.ts';
import { SOURCE_NODE_ARGS } from './helpers/source-node.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { untilClockPasses, waitFor, withDeadline } from './helpers/wait.ts';

/*
 * The faults a cluster is designed for (issue 12), on loopback: a node killed under a running
 * fleet, Redis restarted, PostgreSQL restarted. Nodes are `fleetgate serve` processes where the
 * fault is a process dying (SIGKILL must be real), in-process servers elsewhere. One at a time:
 * the first loads both cores, and the others measure how fast things come back.
 */

test.after.always(stopSharedPostgres);

const SIM_BIN = new URL('../simulator/bin/fleetgate-sim.js', import.meta.url).pathname;

/** Sets limits in a data directory's config.json (over what `fleetgate init` wrote). */
async function configure(data: DataDir, overrides: Record<string, Record<string, unknown>>): Promise<void> {
  const config = JSON.parse(await readFile(data.layout.config, 'utf8')) as Record<string, Record<string, unknown>>;
  for (const [section, values] of Object.entries(overrides)) {
    const merged: Record<string, unknown> = { ...config[section] };
    for (const [key, value] of Object.entries(values)) {
      const current = merged[key];
      merged[key] = typeof value === 'object' && value !== null && typeof current === 'object' && current !== null ? { ...current, ...value } : value;
    }
    config[section] = merged;
  }
  await writeFile(data.layout.config, `${JSON.stringify(config, null, 2)}\n`);
}

/** CPU seconds (user + system) and resident memory of a process, from /proc. */
async function processFigures(pid: number): Promise<{ cpuSeconds: number; rssMiB: number }> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  // Fields 14 and 15 (utime, stime) in clock ticks, counted from field 3 (state) here.
  const ticks = Number(stat[11]) + Number(stat[12]);
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuSeconds: ticks / 100, rssMiB: Math.round(rssKiB / 1024) };
}

/** A backend service (`fleetgate service issue`) on one node: persistent session, QoS 1 on every device topic. */
async function backend(t: ExecutionContext, data: DataDir, mqttUrl: string): Promise<{ client: MqttClient; ingest: Ingest }> {
  const service = await serviceCredential(t, data);
  const client = await connectAsync(mqttUrl, mqttOptions(data, service, { clientId: 'backend:ingest', clean: false, keepalive: 30 }));
  t.teardown(() => client.endAsync(true));
  const ingest = new Ingest(client);
  await client.subscribeAsync('devices/#', { qos: 1 });
  return { client, ingest };
}

const DEVICES = 1000;
/**
 * Devices started per second. A device's lifecycle (key, CSR, enrollment, TLS connect) costs
 * about 18 ms of simulator CPU and 8 ms of the nodes' here, and the two cores are shared with
 * PostgreSQL, Redis and the traffic: at 40 a second the fleet is up in about 25 s. At 100 a second
 * the machine saturated: all connected only after 45 s, and devices that waited more than 10 s
 * for a CONNACK gave up and moved node about 900 times.
 */
const RATE = 40;

/*
 * Three `fleetgate serve` processes on one PostgreSQL and one Redis; `fleetgate-sim` runs the
 * whole fleet through the real lifecycle (factory credentials from the data directory, EST,
 * MQTT) over the three nodes' URL lists and, once every device is connected, SIGKILLs node-3 (its
 * reconnect-storm scenario runs `kill -KILL`) and measures how its devices come back. QoS 1 end
 * to end with the simulator itself: devices on persistent sessions (--persistent-sessions), the
 * numbers of the messages they got a PUBACK for written at the end (--export-acks), and a backend
 * service on node-1 (persistent, QoS 1 on devices/#) that must have received every one of them.
 */
test.serial(`a node SIGKILLed under ${DEVICES} simulated devices: every device reconnects to a surviving node, and every QoS 1 message acknowledged reaches the backend`, async (t) => {
  t.timeout(300_000);
  const data = await makeDataDir(t);
  // One source address (127.0.0.1) for the whole simulated fleet: the per-address bounds would
  // hold a node's 330 devices arriving at once on another node to 128 at a time, shed the rest
  // and stretch the test over their backoff; the node defends itself either way.
  await configure(data, {
    // No shedding on event-loop delay either: beside the rest of the suite, the loop of a node is
    // late because the machine is busy, and devices shed and retrying count as errors
    // (test/broker-load-shed.test.ts tests shedding).
    listeners: { maxPendingPerAddress: 4096, maxPendingConnections: 8192, shedPendingConnections: 8192, shedEventLoopDelayMs: 0, handshakeTimeoutMs: 60_000 },
    est: { maxInProgressPerSource: 1024, maxConcurrent: 1024, perIdentityPerMinute: 100 },
    broker: { limits: { connectionsPerSecond: 10_000, connectionBurst: 10_000 } },
  });
  const registryUrl = await (await sharedPostgres()).createDatabase();
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const nodes: ServeProcess[] = [];
  // One after the other: the first makes the schema.
  for (const nodeId of ['node-1', 'node-2', 'node-3']) {
    nodes.push(await startServeProcess(t, data.dir, data.rootPem, { args: ['--registry', registryUrl, '--cluster-redis', redis.url, '--node-id', nodeId], adminPort: true, mqttPort: true, metricsPort: true }));
  }
  const [first, second, killed] = nodes as [ServeProcess, ServeProcess, ServeProcess];
  const { ingest } = await backend(t, data, first.mqttUrl);

  const dir = await tempDir(t, 'fleetgate-faults-');
  const acksPath = join(dir, 'acks.json');
  const killedExit = once(killed.child, 'exit');
  const args = [
    ...['--devices', String(DEVICES), '--rate', `${RATE}/s`, '--duration', '40s', '--settle', '60s'],
    ...['--est', nodes.map((node) => node.estUrl).join(','), '--mqtt', nodes.map((node) => node.mqttUrl).join(',')],
    ...['--data', data.dir, '--report', join(dir, 'report'), '--persistent-sessions', '--export-acks', acksPath, '--json'],
    // The surviving nodes' metrics (refusals by code, for the errors the devices saw).
    ...['--metrics', [first.metricsUrl, second.metricsUrl].join(',')],
    // Devices of the killed node count a warning for every failed attempt: the run's own error
    // rate says nothing here; what is asserted is below.
    ...['--max-error-rate', '1'],
    // Once every device is connected the simulator kills the node, and measures their return.
    ...['--scenario', 'reconnect-storm', '--restart-cmd', `kill -KILL ${killed.child.pid}`],
  ];
  const simStarted = performance.now();
  const sim = spawn(process.execPath, [...SOURCE_NODE_ARGS, SIM_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (sim.exitCode === null && sim.signalCode === null) sim.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  sim.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  sim.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await withDeadline(once(sim, 'exit'), { what: () => `the simulator to finish: ${stderr.slice(-2000)}`, timeoutMs: 240_000 })) as [number | null];
  const simSeconds = (performance.now() - simStarted) / 1000;
  t.log(stderr.split('\n').filter((line) => !line.startsWith('[')).join('\n'));
  const [, signal] = (await withDeadline(killedExit, { what: 'node-3 to have been killed' })) as [number | null, string | null];
  t.is(signal, 'SIGKILL', 'node-3 died of SIGKILL');
  const report = JSON.parse(stdout) as SimulationReport;
  t.is(code, 0, `simulator exit code; errors ${JSON.stringify(report.errorsByCode)}; refusals by the surviving nodes ${JSON.stringify(report.serverMetrics.refusals)} (${report.serverMetrics.problem ?? 'read'})`);

  // Every device was connected once, and at the end each is on a surviving node.
  t.is(report.totals.connected, DEVICES);
  const perNode = report.nodes.devicesPerNode;
  t.is(perNode[killed.mqttUrl], 0, 'none left on the killed node');
  t.is(Object.values(perNode).reduce((sum, count) => sum + count, 0), DEVICES, `devices per node at the end: ${JSON.stringify(perNode)}`);
  const storm = report.scenarios[0];
  t.like(storm, { name: 'reconnect-storm', allBack: true });
  const moved = Number(storm?.disconnected);
  t.true(moved > 0 && moved < DEVICES, `${moved} devices were on the killed node`);
  t.is(storm?.reconnected, moved);
  t.true(report.nodes.failovers >= moved, `${report.nodes.failovers} failovers`);

  // QoS 1 end to end: every message a device got a PUBACK for reached the backend.
  const acks = JSON.parse(await readFile(acksPath, 'utf8')) as AckExport;
  let missing: string[] = [];
  await waitFor(() => (missing = ingest.missing(acks)).length === 0, { what: () => `the backend to receive every acknowledged message: ${missing.length} of ${acks.count} missing (${missing.slice(0, 10).join(', ')})`, timeoutMs: 30_000 });
  t.true(acks.count > 0);

  // The registry: every device enrolled once, and presence shows none connected to the dead node
  // (every device connected to another node since).
  const db = new pg.Client({ connectionString: registryUrl });
  await db.connect();
  t.teardown(() => db.end());
  const states = (await db.query<{ state: string; count: string }>('SELECT state, count(*) FROM devices GROUP BY state')).rows;
  t.deepEqual(states.map((row) => [row.state, Number(row.count)]), [['enrolled', DEVICES]]);
  let stale: { device_id: string; record: unknown }[] = [];
  const presence = await waitFor(
    async () => {
      const rows = (await db.query<{ device_id: string; record: { node?: string; connected?: boolean } }>('SELECT device_id, record FROM presence')).rows;
      stale = rows.filter((row) => row.record.node === 'node-3' && row.record.connected);
      return stale.length === 0 ? { rows: rows.length } : undefined;
    },
    { what: () => `presence to show no device connected to the killed node: ${stale.length} do, ${JSON.stringify(stale.slice(0, 3))}; ${nodes.map((node) => node.output().split('\n').filter((line) => /presence/.test(line)).slice(0, 3).join(' | ')).join(' || ')}` },
  );
  t.is(presence.rows, DEVICES);

  // Errors the simulator counted, before and after the kill (the series' connected count of the
  // killed node drops from its peak).
  const onKilled = report.series.map((point) => point.connectedPerNode[killed.mqttUrl] ?? 0);
  const peak = onKilled.indexOf(Math.max(...onKilled));
  const killedAt = onKilled.findIndex((count, index) => index > peak && count < (onKilled[peak] ?? 0));
  const errorsBefore = report.series.slice(0, killedAt).reduce((sum, point) => sum + point.errorsPerSecond, 0);

  const figures = await Promise.all(nodes.filter((node) => node !== killed).map(async (node) => ({ node: node.mqttUrl, ...(await processFigures(node.child.pid as number)) })));
  t.log(
    [
      `${DEVICES} devices over 3 nodes, node-3 SIGKILLed once all were connected; simulator run ${simSeconds.toFixed(1)} s, all connected after ${report.totals.allConnectedAfterSeconds} s`,
      `devices per node at the end: ${JSON.stringify(perNode)}`,
      `on the killed node: ${moved}; all back after ${String(storm?.allBackAfterMs)} ms (p50 ${String(storm?.reconnectP50Ms)} ms, p99 ${String(storm?.reconnectP99Ms)} ms from the first drop); failovers ${report.nodes.failovers}, MQTT endpoint moves ${report.nodes.endpointMoves.mqtt}`,
      `QoS 1 acknowledged ${acks.count}, received by the backend ${acks.count - missing.length} (+ ${ingest.duplicates} duplicates; ${ingest.messages} messages in all with QoS 0); messages sent ${report.totals.messagesSent}, failed ${report.totals.messagesFailed}`,
      `errors ${report.totals.errors}: ${JSON.stringify(report.errorsByCode)}, about ${errorsBefore} of them before the kill (${killedAt} s into the run); refusals by the surviving nodes ${JSON.stringify(report.serverMetrics.refusals)}`,
      `simulator CPU ${report.cpu.msPerDevice} ms per device to first connection, ${((report.cpu.userMs + report.cpu.systemMs) / 1000).toFixed(1)} s in all, peak RSS ${report.cpu.peakRssMiB} MiB`,
      `surviving nodes: ${figures.map((figure) => `${figure.node} CPU ${figure.cpuSeconds.toFixed(1)} s, RSS ${figure.rssMiB} MiB`).join('; ')}`,
    ].join('\n'),
  );
});

/** Connects with MQTT.js and returns the CONNACK too (session present or not). */
async function connectClient(t: ExecutionContext, url: string, options: IClientOptions, what: string, timeoutMs = 10_000): Promise<{ client: MqttClient; connack: IConnackPacket }> {
  const client = connect(url, options);
  t.teardown(() => client.endAsync(true));
  const connack = await withDeadline(
    new Promise<IConnackPacket>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    }),
    { what, timeoutMs },
  );
  return { client, connack };
}

/** The next message on a topic a client receives, within the deadline (attach before the action). */
function nextMessage(client: MqttClient, accept: (topic: string, payload: string) => boolean, what: string, timeoutMs?: number): Promise<{ topic: string; payload: string }> {
  let listener: ((topic: string, payload: Buffer) => void) | undefined;
  const found = new Promise<{ topic: string; payload: string }>((resolve) => {
    listener = (topic, payload) => {
      if (accept(topic, payload.toString())) resolve({ topic, payload: payload.toString() });
    };
    client.on('message', listener);
  });
  return withDeadline(found, { what, timeoutMs }).finally(() => {
    if (listener) client.off('message', listener);
  });
}

/** Resolves when an MQTT.js client's connection closes, within the deadline. */
function closed(client: MqttClient, what: string, timeoutMs?: number): Promise<void> {
  return withDeadline(new Promise<void>((resolve) => client.once('close', () => resolve())), { what, timeoutMs });
}

/** `/readyz` of an in-process node. */
async function readiness(node: Fleet): Promise<number> {
  return (await fetch(new URL('/readyz', node.server.metricsUrl))).status;
}

/*
 * What a Redis restart loses. The Redis of a cluster runs without persistence (as test/helpers/
 * redis.ts starts it), so a restart comes back empty, and with it go:
 *  - retained messages;
 *  - the QoS 1 messages queued for persistent sessions (clean session 0) that were offline, and
 *    the stored subscriptions of those sessions: their next connection finds no session (CONNACK
 *    session present 0) and must subscribe again (MQTT.js, and so the SDK, does it by itself);
 *  - messages in flight through pub/sub when Redis dies, and those published after it is back but
 *    before the receiving node's subscriber connection has subscribed again: QoS 0 gone; QoS 1 to
 *    a persistent session still in its new queue, delivered at its next connection.
 * Not lost: connections (devices stay connected; a QoS 1 PUBLISH waits for its PUBACK until Redis
 * is back, a CONNECT for its CONNACK), the sessions of clients connected at the time (their node
 * stores them again as soon as it sees that Redis lost its data), routing between nodes once
 * every node has reconnected (by itself, backoff capped at 2 s), and everything in the registry
 * (PostgreSQL).
 */
test.serial('Redis restarted under two nodes: nodes reconnect by themselves, routing resumes across nodes, connections, connected sessions and the registry stay; retained messages and offline sessions with their queues are lost', async (t) => {
  t.timeout(180_000);
  const data = await makeDataDir(t);
  const registryUrl = await (await sharedPostgres()).createDatabase();
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const logs = { a: new LogWatcher(), b: new LogWatcher() };
  const a = await startFleet(t, { dataDir: data, registryUrl, clusterRedis: redis.url, nodeId: 'node-a', logger: logs.a.logger });
  const b = await startFleet(t, { dataDir: data, registryUrl, clusterRedis: redis.url, nodeId: 'node-b', logger: logs.b.logger });
  const [live, offline, late] = await enrolledDevices(t, a, 'thermostat', 3);
  if (!live || !offline || !late) throw new Error('no devices');
  const service = await serviceCredential(t, data);
  const persistent = (credential: Parameters<typeof mqttOptions>[1], extra: IClientOptions = {}): IClientOptions => mqttOptions(data, credential, { clean: false, keepalive: 60, ...extra });

  // Before: a device on A, the backend on B (persistent, QoS 1), a retained state, a command
  // queued for a device that is offline.
  const backend = (await connectClient(t, b.server.mqttUrl, persistent(service, { clientId: 'backend:ingest', reconnectPeriod: 200 }), 'the backend')).client;
  const atBackend: string[] = [];
  backend.on('message', (topic, payload) => atBackend.push(`${topic}=${payload.toString()}`));
  await backend.subscribeAsync(['devices/+/telemetry', 'devices/+/state'], { qos: 1 });
  const device = (await connectClient(t, a.server.mqttUrl, persistent(live.operational), 'the live device')).client;
  await device.subscribeAsync(`devices/${live.id}/commands/#`, { qos: 1 });
  const telemetry = (payload: string) => nextMessage(backend, (topic, text) => topic === `devices/${live.id}/telemetry` && text === payload, `"${payload}" at the backend on node B`);
  const arrived = telemetry('before');
  await device.publishAsync(`devices/${live.id}/telemetry`, 'before', { qos: 1 });
  await arrived;
  await device.publishAsync(`devices/${live.id}/state`, 'heating', { qos: 1, retain: true });
  const away = (await connectClient(t, a.server.mqttUrl, persistent(offline.operational), 'the device that goes offline')).client;
  await away.subscribeAsync(`devices/${offline.id}/commands/#`, { qos: 1 });
  await away.endAsync();
  await backend.publishAsync(`devices/${offline.id}/commands/setpoint`, 'queued', { qos: 1 });
  const registryBefore = (await a.server.registry.listDevices()).map((record) => `${record.id}:${record.state}:${record.certSerial}`).sort();

  // Redis dies. Both nodes notice (their routing connections fail) and stay up.
  const down = performance.now();
  const downAt = Date.now();
  await redis.stop();
  for (const [name, log] of Object.entries(logs)) {
    await log.line((line) => line.role === 'subscribe' && line.msg === 'cluster Redis connection failed; reconnecting', `node ${name} to lose its subscribe connection`);
  }
  t.is(await readiness(a), 503);
  t.is(await readiness(b), 503);
  let duringAckedAt: number | undefined;
  const during = device.publishAsync(`devices/${live.id}/telemetry`, 'during', { qos: 1 }).then(() => {
    duringAckedAt = performance.now();
  });
  const connecting = connectClient(t, a.server.mqttUrl, mqttOptions(data, late.operational, { connectTimeout: 60_000 }), 'a device connecting during the outage', 60_000);
  // An outage of 3 s: long enough for the nodes' reconnection backoff to reach its 2 s cap.
  await untilClockPasses(downAt + 3_000, { what: 'three seconds of outage' });
  t.true(device.connected && backend.connected, 'the connections stay up');
  t.is(duringAckedAt, undefined, 'no PUBACK while Redis is away');

  const up = performance.now();
  await redis.start();
  const outage = up - down;
  await waitFor(async () => (await readiness(a)) === 200 && (await readiness(b)) === 200, { what: 'both nodes ready again' });
  const readyAfter = performance.now() - up;
  await withDeadline(during, { what: 'the PUBACK of the message published during the outage' });
  const pubackAfter = (duringAckedAt as number) - up;
  const { connack: lateConnack } = await connecting;
  const lateAfter = performance.now() - up;
  t.false(lateConnack.sessionPresent);

  // Routing resumes across nodes, both ways, by itself.
  let probes = 0;
  const firstLive = await waitFor(
    async () => {
      const payload = `probe-${++probes}`;
      const seen = telemetry(payload);
      seen.catch(() => undefined);
      await device.publishAsync(`devices/${live.id}/telemetry`, payload, { qos: 1 });
      return withDeadline(seen, { what: payload, timeoutMs: 300 }).then(
        () => performance.now(),
        () => undefined,
      );
    },
    { what: 'a message from node A to reach the backend on node B live again', timeoutMs: 20_000 },
  );
  const routedAfter = firstLive - up;
  const command = nextMessage(device, (topic, text) => topic === `devices/${live.id}/commands/fan` && text === 'on', 'a command from node B at the device on node A');
  await backend.publishAsync(`devices/${live.id}/commands/fan`, 'on', { qos: 1 });
  await command;
  t.true(device.connected && backend.connected, 'the connections stayed up');
  // Nothing in the registry changed: it is PostgreSQL's.
  t.deepEqual((await b.server.registry.listDevices()).map((record) => `${record.id}:${record.state}:${record.certSerial}`).sort(), registryBefore);
  t.true((await b.server.registry.verifyAudit()).ok);

  // Lost: the retained state. A new subscription gets no retained message before a fresh one.
  const watcher = (await connectClient(t, b.server.mqttUrl, mqttOptions(data, service, { clientId: 'backend:watcher' }), 'a second backend')).client;
  const firstState = nextMessage(watcher, (topic) => topic === `devices/${live.id}/state`, 'the first state message at the new subscriber');
  await watcher.subscribeAsync(`devices/${live.id}/state`, { qos: 1 });
  await device.publishAsync(`devices/${live.id}/state`, 'idle', { qos: 1 });
  t.is((await firstState).payload, 'idle', 'the retained "heating" is gone');

  // Lost: the offline device's session and its queued command. It finds no session, subscribes
  // again, and the first command it gets is a new one.
  const { client: back, connack: backConnack } = await connectClient(t, a.server.mqttUrl, persistent(offline.operational), 'the offline device, back');
  t.false(backConnack.sessionPresent, 'its session is gone');
  const firstCommand = nextMessage(back, () => true, 'the first command at the device that was offline');
  await back.subscribeAsync(`devices/${offline.id}/commands/#`, { qos: 1 });
  await backend.publishAsync(`devices/${offline.id}/commands/setpoint`, 'new', { qos: 1 });
  t.is((await firstCommand).payload, 'new', 'the command queued before the restart is gone');

  // The backend was connected throughout: node B stored its session again, so when it
  // reconnects it finds its subscriptions (MQTT.js, seeing a session, does not subscribe again).
  const restored = await logs.b.line((line) => line.msg === 'persistent sessions connected to this node stored again in Redis', 'node B to store its sessions again');
  t.is(restored.sessions, 1, 'the backend (the offline device was not connected)');
  const reconnected = withDeadline(new Promise<IConnackPacket>((resolve) => backend.once('connect', resolve)), { what: 'the backend to reconnect' });
  backend.stream.destroy();
  const backendConnack = await reconnected;
  t.true(backendConnack.sessionPresent, 'the backend finds its session after the restart');
  // Its queue is delivered at the connection, before anything new: after this message, the
  // backend has all it will ever get.
  await waitFor(
    async () => {
      const again = telemetry('after the backend reconnected');
      again.catch(() => undefined);
      await device.publishAsync(`devices/${live.id}/telemetry`, 'after the backend reconnected', { qos: 1 });
      return withDeadline(again, { what: 'the message', timeoutMs: 500 }).then(
        () => true,
        () => false,
      );
    },
    { what: 'the backend to receive again after its reconnection' },
  );
  const duringArrived = atBackend.includes(`devices/${live.id}/telemetry=during`);
  t.log(
    [
      `Redis down ${outage.toFixed(0)} ms; after its restart: both nodes ready after ${readyAfter.toFixed(0)} ms, the PUBACK held during the outage after ${pubackAfter.toFixed(0)} ms, the CONNACK of a device that connected during the outage after ${lateAfter.toFixed(0)} ms`,
      `routing from node A to node B live again after ${routedAfter.toFixed(0)} ms (${probes} probes)`,
      `the message published during the outage reached the backend: ${duringArrived} (live, or from its queue at its reconnection)`,
    ].join('\n'),
  );
});

test.serial('PostgreSQL restarted under two nodes: during the outage EST answers 503 with Retry-After on every node, known devices connect, unknown ones get CONNACK 3; after it a revocation through one node drops the device on the other within 1 s', async (t) => {
  t.timeout(180_000);
  const postgres = await startPostgres();
  t.teardown(() => postgres.destroy());
  const registryUrl = await postgres.createDatabase();
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const data = await makeDataDir(t);
  const a = await startFleet(t, { dataDir: data, registryUrl, clusterRedis: redis.url, nodeId: 'node-a' });
  const b = await startFleet(t, { dataDir: data, registryUrl, clusterRedis: redis.url, nodeId: 'node-b' });
  const nodes = { a, b };
  const [known, early, late] = await enrolledDevices(t, a, 'thermostat', 3);
  if (!known || !early || !late) throw new Error('no devices');
  const waiting = await factoryCredentials(t, data, 'thermostat', 2);
  const bodies = await Promise.all(waiting.map(async (bootstrap) => csrBody(await createCsr(bootstrap.id, await generateDeviceKeyPair()))));
  const enroll = (node: Fleet, index: number) => estRequest({ url: node.estUrl, path: EST_PATHS.simpleenroll, body: bodies[index], ca: data.rootPem, cert: waiting[index]?.certPem, key: waiting[index]?.keyPem });
  // A valid operational certificate of an id this registry never enrolled.
  const stranger = await mintDeviceCredential(data, { id: 'thermostat-stranger', ca: 'issuing' });
  // Two devices on node B, to be revoked through node A once the database is back.
  const onB = await Promise.all([early, late].map(async (device) => (await connectClient(t, b.server.mqttUrl, mqttOptions(data, device.operational), `${device.id} on node B`)).client));
  const following = (node: Fleet): boolean => (node.server.registry as PostgresRegistry).following;
  await waitFor(() => following(a) && following(b), { what: 'both change feeds listening' });

  const down = performance.now();
  const downAt = Date.now();
  await postgres.stop();
  for (const [name, node] of Object.entries(nodes)) {
    const started = performance.now();
    const refused = await enroll(node, 0);
    t.is(refused.status, 503, `node ${name}: ${refused.text}`);
    t.regex(refused.text, /ENROLL_UNAVAILABLE/);
    t.truthy(refused.headers['retry-after'], `node ${name}: Retry-After`);
    t.true(performance.now() - started < 5_000, `node ${name} answered, not hung`);
    t.is(await connackCode(node, known.operational), 0, `node ${name}: a known device connects`);
    t.is(await connackCode(node, stranger), 3, `node ${name}: an unknown device gets CONNACK 3 (server unavailable), not 5`);
  }
  t.true(onB.every((client) => client.connected), 'connected devices stay connected');
  await waitFor(() => !following(a) && !following(b), { what: 'both change feeds to notice the outage' });
  // An outage of 3 s at least: the feeds' reconnection backoff reaches its 2 s cap.
  await untilClockPasses(downAt + 3_000, { what: 'three seconds of outage' });

  await postgres.start();
  const up = performance.now();
  const outage = up - down;
  // The operator revokes as soon as node A takes it.
  const [first, second] = [early, late];
  const firstClosed = closed(onB[0] as MqttClient, `${first.id} dropped on node B`, 20_000);
  let attempts = 0;
  const firstRevokedAt = await waitFor(
    async () => {
      attempts++;
      const started = performance.now();
      const answer = await admin(a, 'POST', `/v1/devices/${first.id}/revoke`, { body: { reason: 'keyCompromise' } });
      return answer.status === 200 ? started : undefined;
    },
    { what: 'node A to take a revocation again', timeoutMs: 30_000, intervalMs: 100 },
  );
  await firstClosed;
  const firstDrop = performance.now() - firstRevokedAt;
  const adminBackAfter = firstRevokedAt - up;
  // Node B's feed may still be reconnecting (every 0.5 s at most): it catches up when it is back.
  t.true(firstDrop < 1_000, `dropped ${firstDrop.toFixed(0)} ms after its revocation`);
  // Once node B follows again, a revocation through A reaches it within 1 s.
  await waitFor(() => following(a) && following(b), { what: 'both change feeds listening again', timeoutMs: 20_000 });
  const followingAfter = performance.now() - up;
  const secondClosed = closed(onB[1] as MqttClient, `${second.id} dropped on node B`, 5_000);
  const secondRevokedAt = performance.now();
  t.is((await admin(a, 'POST', `/v1/devices/${second.id}/revoke`, { body: { reason: 'keyCompromise' } })).status, 200);
  await secondClosed;
  const secondDrop = performance.now() - secondRevokedAt;
  t.true(secondDrop < 1_000, `dropped ${secondDrop.toFixed(0)} ms after its revocation`);
  for (const client of onB) client.options.reconnectPeriod = 0;
  for (const node of [a, b]) {
    t.is(await connackCode(node, first.operational), 5, 'refused everywhere after');
    t.is(await connackCode(node, stranger), 5, 'unknown again, and the registry answers: not authorized');
  }
  // Enrollment works again on every node.
  for (const [index, node] of [a, b].entries()) {
    const answer = await waitFor(async () => {
      const response = await enroll(node, index);
      return response.status === 200 ? response : undefined;
    }, { what: 'EST to enroll again', timeoutMs: 20_000, intervalMs: 200 });
    t.is(answer.status, 200);
  }
  t.true((await a.server.registry.verifyAudit()).ok);
  t.log(
    [
      `PostgreSQL down ${outage.toFixed(0)} ms (until it accepted connections again); then node A took a revocation after ${adminBackAfter.toFixed(0)} ms (${attempts} attempts), both change feeds listened again after ${followingAfter.toFixed(0)} ms`,
      `revoked through node A: dropped on node B after ${firstDrop.toFixed(0)} ms (the first, as soon as A took it), ${secondDrop.toFixed(0)} ms (once B followed again)`,
    ].join('\n'),
  );
});
