import test, { type ExecutionContext } from 'ava';
import { connect as connectMqtt, connectAsync, type IConnackPacket, type MqttClient } from 'mqtt';
import type { DeviceDetail } from '../server/src/admin/wire.ts';
import { X509Certificate } from 'node:crypto';
import { serialKey } from '../server/src/pki/serial.ts';
import { storedOrEchoLost } from '../server/src/cluster/redis-backends.ts';
import { PostgresRegistry } from '../server/src/registry/postgres/postgres-registry.ts';
import { admin } from './helpers/admin-client.ts';
import { crlListsSerial } from './helpers/crl.ts';
import { estRequest } from './helpers/est-client.ts';
import { fleetgate, refused } from './helpers/cli.ts';
import { connackCode, enrolledDevices, mqttOptions } from './helpers/device.ts';
import type { ServerConfig } from '../server/src/config/config.ts';
import { factoryCredentials, makeDataDir, type DataDir, serviceCredential, startFleet, testConfig, type Fleet } from './helpers/fleet.ts';
import { sharedPostgres, stopSharedPostgres } from './helpers/postgres.ts';
import { LogWatcher } from './helpers/log-watch.ts';
import { startRedis, type RedisServer } from './helpers/redis.ts';
import { startServeProcess } from './helpers/serve-process.ts';
import { untilClockPasses, waitFor, withDeadline } from './helpers/wait.ts';

/*
 * Cluster mode: fleetgate nodes sharing the registry (PostgreSQL) and MQTT (Redis). Each node here
 * is a whole server in this process with its own listeners, as separate machines would run them.
 */

test.after.always(stopSharedPostgres);

/** What the nodes of one test share: a data directory, a database of its own, a Redis of its own. */
async function backends(t: ExecutionContext): Promise<{ data: DataDir; registryUrl: string; redis: RedisServer }> {
  const data = await makeDataDir(t);
  const registryUrl = await (await sharedPostgres()).createDatabase();
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  return { data, registryUrl, redis };
}

async function cluster(t: ExecutionContext, names: readonly string[], config?: ServerConfig): Promise<Fleet[]> {
  const { data, registryUrl, redis } = await backends(t);
  const nodes: Fleet[] = [];
  // One after the other: the first makes the schema (the advisory lock would serialise them anyway).
  for (const nodeId of names) nodes.push(await startFleet(t, { dataDir: data, registryUrl, clusterRedis: redis.url, nodeId, config }));
  return nodes;
}

/** The next event of an MQTT client that `accept` takes, within the deadline. */
function next<A extends unknown[]>(client: MqttClient, event: 'message' | 'close', what: string, accept: (...args: A) => boolean = () => true): Promise<A> {
  return withDeadline(
    new Promise<A>((resolve) => {
      const listener = (...args: unknown[]): void => {
        if (!accept(...(args as A))) return;
        client.off(event, listener);
        resolve(args as A);
      };
      client.on(event, listener);
    }),
    { what },
  );
}

async function connect(t: ExecutionContext, node: Fleet, credential: Parameters<typeof mqttOptions>[1], clientId = credential.id): Promise<MqttClient> {
  const client = await connectAsync(node.server.mqttUrl, mqttOptions(node, credential, { clientId }));
  t.teardown(() => client.endAsync(true));
  return client;
}

test('a device on node A and a service on node B exchange telemetry and commands through Redis', async (t) => {
  const [a, b] = await cluster(t, ['node-a', 'node-b']);
  if (!a || !b) throw new Error('no nodes');
  const [device] = await enrolledDevices(t, a, 'thermostat', 1);
  if (!device) throw new Error('no device');
  const service = await serviceCredential(t, a);
  const onA = await connect(t, a, device.operational);
  const onB = await connect(t, b, service, 'backend:ingest');
  await onB.subscribeAsync('devices/+/telemetry', { qos: 1 });
  await onA.subscribeAsync(`devices/${device.id}/commands`, { qos: 1 });

  const telemetry = next<[string, Buffer]>(onB, 'message', 'telemetry at the service on node B', (topic) => topic.endsWith('/telemetry'));
  await onA.publishAsync(`devices/${device.id}/telemetry`, '21.5', { qos: 1 });
  const [topic, payload] = await telemetry;
  t.is(topic, `devices/${device.id}/telemetry`);
  t.is(payload.toString(), '21.5');

  const command = next<[string, Buffer]>(onA, 'message', 'the command at the device on node A');
  await onB.publishAsync(`devices/${device.id}/commands`, 'setpoint=20', { qos: 1 });
  t.is((await command)[1].toString(), 'setpoint=20');
});

test('one session per client id across the cluster: connecting to node B closes the session on node A; device show says where it is', async (t) => {
  const [a, b] = await cluster(t, ['node-a', 'node-b']);
  if (!a || !b) throw new Error('no nodes');
  const [device] = await enrolledDevices(t, a, 'camera', 1);
  if (!device) throw new Error('no device');
  const first = await connect(t, a, device.operational);
  await waitFor(async () => (await admin(b, 'GET', `/v1/devices/${device.id}`)).json<DeviceDetail>().presence?.node === 'node-a', { what: 'presence on node-a' });

  const closed = next(first, 'close', 'the session on node A to close');
  const second = await connect(t, b, device.operational);
  await closed;
  first.options.reconnectPeriod = 0;
  t.true(second.connected);
  // The takeover stays: A's disconnect does not overwrite B's connection.
  const detail = await waitFor(
    async () => {
      const answer = (await admin(a, 'GET', `/v1/devices/${device.id}`)).json<DeviceDetail>();
      return answer.presence?.node === 'node-b' && answer.connected ? answer : undefined;
    },
    { what: 'presence on node-b, connected' },
  );
  t.like(detail.presence, { connected: true, node: 'node-b' });
  const history = await waitFor(
    async () => (await admin(a, 'GET', `/v1/devices/${device.id}`)).json<DeviceDetail>().brokerEvents?.find((event) => event.kind === 'dropped'),
    { what: 'the drop on node A in the device history' },
  );
  t.is(history.code, 'takeover');
  const show = await fleetgate(['device', 'show', device.id, '--server', a.server.adminUrl, '--data', a.dir]);
  t.regex(show.stdout, /on node node-b/);
});

test('revoked through node B, a device connected to node A is dropped within 1 s and refused everywhere after', async (t) => {
  const [a, b] = await cluster(t, ['node-a', 'node-b']);
  if (!a || !b) throw new Error('no nodes');
  const [device] = await enrolledDevices(t, a, 'car', 1);
  if (!device) throw new Error('no device');
  const client = await connect(t, a, device.operational);
  const closed = next(client, 'close', 'the session on node A to close').then(() => performance.now());
  // From the moment node B has the revocation committed (its registry tells its own listeners
  // then) to the moment the device's connection to node A closes.
  let committed = 0;
  b.server.registry.onDeviceChange((change) => {
    if (change.device.id === device.id && change.device.state === 'revoked') committed ||= performance.now();
  });
  const answer = await admin(b, 'POST', `/v1/devices/${device.id}/revoke`, { body: { reason: 'keyCompromise' } });
  t.is(answer.status, 200, answer.body.toString());
  const droppedAt = await withDeadline(closed, { what: 'the drop on node A', timeoutMs: 5_000 });
  const elapsed = droppedAt - committed;
  t.true(committed > 0 && elapsed < 1_000, `dropped ${elapsed.toFixed(0)} ms after the revocation was committed`);
  t.log(`revoked on node B, dropped on node A ${elapsed.toFixed(0)} ms after the commit`);
  client.options.reconnectPeriod = 0;
  t.is(await connackCode(a, device.operational), 5);
  t.is(await connackCode(b, device.operational), 5);
});

test('a node killed without writing its devices\' disconnections no longer counts them as connected once its heartbeat expires', async (t) => {
  const { data, registryUrl, redis } = await backends(t);
  const a = await startFleet(t, { dataDir: data, registryUrl, clusterRedis: redis.url, nodeId: 'node-a' });
  const b = await startServeProcess(t, data.dir, data.rootPem, { args: ['--registry', registryUrl, '--cluster-redis', redis.url, '--node-id', 'node-b'], mqttPort: true });
  const [device] = await enrolledDevices(t, a, 'thermostat', 1);
  if (!device) throw new Error('no device');
  const client = await connectAsync(b.mqttUrl, { ...mqttOptions(a, device.operational), reconnectPeriod: 0 });
  t.teardown(() => client.endAsync(true));
  const show = async (): Promise<DeviceDetail> => (await admin(a, 'GET', `/v1/devices/${device.id}`)).json<DeviceDetail>();
  await waitFor(async () => (await show()).presence?.node === 'node-b' && (await show()).connected, { what: 'the device connected on node B' });
  b.child.kill('SIGKILL');
  const started = performance.now();
  const detail = await waitFor(async () => {
    const answer = await show();
    return answer.connected ? undefined : answer;
  }, { what: 'node A to stop counting the device as connected', timeoutMs: 20_000 });
  t.like(detail.presence, { connected: false, node: 'node-b' });
  t.log(`node B killed; its device shown as not connected after ${Math.round(performance.now() - started)} ms`);
});

test('CRL numbers and content are the same from every node, and list a revocation made through either', async (t) => {
  const [a, b] = await cluster(t, ['node-a', 'node-b']);
  if (!a || !b) throw new Error('no nodes');
  const [device] = await enrolledDevices(t, b, 'thermostat', 1);
  if (!device) throw new Error('no device');
  const serial = serialKey(new X509Certificate(device.operational.certPem).serialNumber);
  const crlOf = async (node: Fleet): Promise<Buffer> => {
    const response = await estRequest({ url: node.estUrl, path: '/crl', ca: node.rootPem });
    t.is(response.status, 200);
    return response.body;
  };
  t.is((await admin(a, 'POST', `/v1/devices/${device.id}/revoke`, { body: {} })).status, 200);
  // Each node signs on the revocation it hears of; both serve the newest either signed.
  const [fromA, fromB] = await waitFor(
    async () => {
      const pair = await Promise.all([crlOf(a), crlOf(b)]);
      return pair[0].equals(pair[1]) && crlListsSerial(pair[0], serial) ? pair : undefined;
    },
    { what: 'the same CRL, listing the revocation, from both nodes' },
  );
  t.true(crlListsSerial(fromB, serial));
  t.true(fromA.equals(fromB));
});

test('the per-identity enrollment limit holds across nodes (kept in Redis)', async (t) => {
  const [a, b] = await cluster(t, ['node-a', 'node-b'], testConfig({ est: { perIdentityPerMinute: 3 } }));
  if (!a || !b) throw new Error('no nodes');
  const [bootstrap] = await factoryCredentials(t, a, 'thermostat', 1);
  if (!bootstrap) throw new Error('no bootstrap credential');
  const statuses: number[] = [];
  // Alternating nodes: each node alone has seen at most two, the cluster four.
  for (const node of [a, b, a, b]) {
    const response = await estRequest({ url: node.estUrl, path: '/.well-known/est/simpleenroll', body: 'not a CSR', ca: node.rootPem, cert: bootstrap.certPem, key: bootstrap.keyPem });
    statuses.push(response.status);
    if (response.status === 429) t.truthy(response.headers['retry-after']);
  }
  t.deepEqual(statuses, [400, 400, 400, 429]);
});

test('cluster settings that cannot work are refused before anything starts', async (t) => {
  const data = await makeDataDir(t);
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  refused(t, await fleetgate(['serve', '--data', data.dir, '--cluster-redis', redis.url, '--est-port', '0', '--mqtt-port', '0', '--admin-port', '0', '--metrics-port', '0']), 'Redis with LevelDB', 2, 'SERVE_CLUSTER_INVALID', /needs the registry on PostgreSQL/);
  refused(t, await fleetgate(['serve', '--data', data.dir, '--cluster-redis', 'http://x']), 'not a Redis URL', 2, 'CLI_USAGE', /--cluster-redis must be a Redis URL/);
  refused(t, await fleetgate(['serve', '--data', data.dir, '--node-id', 'a b']), 'a node id with a space', 2, 'CLI_USAGE', /--node-id must be/);
  const registryUrl = await (await sharedPostgres()).createDatabase();
  await redis.stop();
  refused(t, await fleetgate(['serve', '--data', data.dir, '--registry', registryUrl, '--cluster-redis', redis.url, '--est-port', '0', '--mqtt-port', '0', '--admin-port', '0', '--metrics-port', '0']), 'Redis down at start', 1, 'SERVE_CLUSTER_UNREACHABLE', /Redis does not answer/);
});

test('Redis killed under a running node: the node rides it out (readiness 503, then 200 when Redis is back), no crash', async (t) => {
  const { data, registryUrl, redis } = await backends(t);
  const log = new LogWatcher();
  const node = await startFleet(t, { dataDir: data, registryUrl, clusterRedis: redis.url, nodeId: 'node-a', logger: log.logger });
  const ready = async (): Promise<number> => (await fetch(new URL('/readyz', node.server.metricsUrl))).status;
  t.is(await ready(), 200);
  await redis.stop();
  // mqemitter-redis re-emits its connections' errors on an emitter of its own: without a
  // listener there, the first failed reconnection of the routing connections was an uncaught
  // exception that ended the node. Both have failed once when the node has logged it.
  for (const role of ['publish', 'subscribe']) {
    await log.line((line) => line.role === role && line.msg === 'cluster Redis connection failed; reconnecting', `the ${role} connection to fail`);
  }
  t.is(await ready(), 503);
  await redis.start();
  await waitFor(async () => (await ready()) === 200, { what: '/readyz to answer 200 once Redis is back' });
  await log.line((line) => line.role === 'subscribe' && line.msg === 'cluster Redis connection back', 'the subscribe connection to come back');
});

test('a persistent session subscribes to several filters in one SUBSCRIBE: SUBACK, and the session keeps them all', async (t) => {
  const [a, b] = await cluster(t, ['node-a', 'node-b']);
  if (!a || !b) throw new Error('no nodes');
  const [device] = await enrolledDevices(t, a, 'thermostat', 1);
  if (!device) throw new Error('no device');
  const service = await serviceCredential(t, a);
  const filters = ['devices/+/telemetry', 'devices/+/state', 'devices/+/events/#'];
  // aedes-persistence-redis waited for each store's broadcast by client id and first filter; aedes
  // stores once per filter: the SUBACK of a multi-filter SUBSCRIBE never came.
  const backend = await connectAsync(b.server.mqttUrl, mqttOptions(b, service, { clientId: 'backend:ingest', clean: false }));
  t.teardown(() => backend.endAsync(true));
  const granted = await withDeadline(backend.subscribeAsync(filters, { qos: 1 }), { what: 'the SUBACK of three filters' });
  t.deepEqual(granted.map((grant) => grant.qos), [1, 1, 1]);
  await backend.endAsync();

  // Stored in Redis: the session is present on the other node, and delivers on every filter.
  const again = connectMqtt(a.server.mqttUrl, mqttOptions(a, service, { clientId: 'backend:ingest', clean: false }));
  t.teardown(() => again.endAsync(true));
  const connack = await withDeadline(new Promise<IConnackPacket>((resolve) => again.once('connect', resolve)), { what: 'the CONNACK on node A' });
  t.true(connack.sessionPresent);
  const onDevice = await connect(t, a, device.operational);
  const topics = [`devices/${device.id}/telemetry`, `devices/${device.id}/state`, `devices/${device.id}/events/motion`];
  const received: string[] = [];
  const all = withDeadline(
    new Promise<void>((resolve) => {
      again.on('message', (topic) => {
        received.push(topic);
        if (topics.every((expected) => received.includes(expected))) resolve();
      });
    }),
    { what: () => `a message on every filter (${received.join(', ')})` },
  );
  for (const topic of topics) await onDevice.publishAsync(topic, 'x', { qos: 1 });
  await all;
  t.pass();
});

test('Redis restarted empty: a persistent session connected at the time is stored again and finds its session at its next connection; the retained charges start over', async (t) => {
  const { data, registryUrl, redis } = await backends(t);
  const log = new LogWatcher();
  const node = await startFleet(t, { dataDir: data, registryUrl, clusterRedis: redis.url, nodeId: 'node-a', logger: log.logger });
  const service = await serviceCredential(t, node);
  const backend = await connectAsync(node.server.mqttUrl, mqttOptions(node, service, { clientId: 'backend:ingest', clean: false }));
  t.teardown(() => backend.endAsync(true));
  await backend.subscribeAsync(['devices/+/telemetry', 'devices/+/state'], { qos: 1 });
  const [device] = await enrolledDevices(t, node, 'thermostat', 1);
  if (!device) throw new Error('no device');
  const onDevice = await connect(t, node, device.operational);
  await onDevice.publishAsync(`devices/${device.id}/state`, 'heating', { qos: 1, retain: true });
  const retainedHeld = async (): Promise<number> => (await node.server.metrics.mqttRetainedMessages.get()).values[0]?.value ?? 0;
  t.is(await retainedHeld(), 1);
  await redis.stop();
  await redis.start();
  // The node sees its marker gone when its general connection is back, and stores the sessions
  // connected to it again (Redis held them; the node still does).
  await log.line((line) => line.msg?.startsWith('cluster Redis came back without its data') === true, 'the node to see that Redis lost its data');
  const restored = await log.line((line) => line.msg === 'persistent sessions connected to this node stored again in Redis', 'the sessions to be stored again');
  t.is(restored.sessions, 1);
  t.is(await retainedHeld(), 0, 'the retained message is gone, and so is its charge against the device');
  await backend.endAsync();
  const again = connectMqtt(node.server.mqttUrl, mqttOptions(node, service, { clientId: 'backend:ingest', clean: false }));
  t.teardown(() => again.endAsync(true));
  const connack = await withDeadline(new Promise<IConnackPacket>((resolve) => again.once('connect', resolve)), { what: 'the CONNACK after the restart' });
  t.true(connack.sessionPresent, 'the session survived the restart');
  const received = next<[string, Buffer]>(again, 'message', 'a reading through the restored subscription');
  await onDevice.publishAsync(`devices/${device.id}/state`, 'idle', { qos: 1 });
  t.is((await received)[0], `devices/${device.id}/state`);
});

test('presence after a node died: a device that connects to another node and leaves again within one presence flush is shown disconnected there, not connected to the dead node', async (t) => {
  const data = await makeDataDir(t);
  const registryUrl = await (await sharedPostgres()).createDatabase();
  // One flush, at the end: the connection and the disconnection reach the registry together.
  const node = await startFleet(t, { dataDir: data, registryUrl, nodeId: 'node-a', config: testConfig({ brokerLimits: { presenceFlushMs: 600_000 } }) });
  const [device] = await enrolledDevices(t, node, 'thermostat', 1);
  if (!device) throw new Error('no device');
  // What a node killed while the device was connected to it leaves behind.
  const earlier = new Date(Date.now() - 60_000).toISOString();
  await node.server.registry.recordPresence([{ deviceId: device.id, connected: true, connectedAt: earlier, lastSeen: earlier, node: 'node-dead' }]);
  const client = await connect(t, node, device.operational);
  await client.endAsync();
  await node.server.close(); // flushes presence
  const registry = await PostgresRegistry.open(registryUrl);
  t.teardown(() => registry.close());
  const presence = await registry.getPresence(device.id);
  t.like(presence, { connected: false, node: 'node-a' });
  t.true((presence?.connectedAt ?? '') > earlier);
});

test('a subscription store whose broadcast never comes back settles once routing has been up long enough, never while it is down', async (t) => {
  const never = new Promise<void>(() => undefined);
  let upSince: number | undefined;
  let lost = 0;
  const upFor = (): number => (upSince === undefined ? 0 : performance.now() - upSince);
  const settled = storedOrEchoLost(never, upFor, () => lost++, 200);
  let done = false;
  void settled.then(() => (done = true));
  // Routing down: the store keeps waiting (its Redis commands are queued until Redis is back).
  await untilClockPasses(Date.now() + 400, { what: 'twice the patience, routing down' });
  t.false(done);
  upSince = performance.now();
  await withDeadline(settled, { what: 'the store to settle once routing was up for the patience' });
  t.true(upFor() >= 200);
  t.is(lost, 1);
  // A store that completes settles with it, at once.
  await withDeadline(storedOrEchoLost(Promise.resolve(), upFor, () => lost++, 60_000), { what: 'a completed store' });
  t.is(lost, 1);
});
