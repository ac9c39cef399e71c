import test, { type ExecutionContext } from 'ava';
import { connectAsync, type MqttClient } from 'mqtt';
import type { DeviceDetail } from '../server/src/admin/wire.ts';
import { X509Certificate } from 'node:crypto';
import { serialKey } from '../server/src/pki/serial.ts';
import { admin } from './helpers/admin-client.ts';
import { crlListsSerial } from './helpers/crl.ts';
import { estRequest } from './helpers/est-client.ts';
import { fleetgate, refused } from './helpers/cli.ts';
import { connackCode, enrolledDevices, mqttOptions } from './helpers/device.ts';
import type { ServerConfig } from '../server/src/config/config.ts';
import { factoryCredentials, makeDataDir, serviceCredential, startFleet, testConfig, type Fleet } from './helpers/fleet.ts';
import { sharedPostgres, stopSharedPostgres } from './helpers/postgres.ts';
import { startRedis } from './helpers/redis.ts';
import { startServeProcess } from './helpers/serve-process.ts';
import { waitFor, withDeadline } from './helpers/wait.ts';

/*
 * Cluster mode: fleetgate nodes sharing the registry (PostgreSQL) and MQTT (Redis). Each node here
 * is a whole server in this process with its own listeners, as separate machines would run them.
 */

test.after.always(stopSharedPostgres);

async function cluster(t: ExecutionContext, names: readonly string[], config?: ServerConfig): Promise<Fleet[]> {
  const data = await makeDataDir(t);
  const registryUrl = await (await sharedPostgres()).createDatabase();
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
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
  const data = await makeDataDir(t);
  const registryUrl = await (await sharedPostgres()).createDatabase();
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
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
