import test, { type ExecutionContext } from 'ava';
import { readFile } from 'node:fs/promises';
import { createServer as createTlsServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { EndpointChange } from '../device-sdk/src/device-state.ts';
import { EndpointSelector } from '../device-sdk/src/endpoints.ts';
import { SdkError } from '../device-sdk/src/errors.ts';
import { FleetDevice, type FleetDeviceOptions } from '../device-sdk/src/fleet-device.ts';
import { endpointUrlsProblem } from '../device-sdk/src/protocol.ts';
import { MemoryCredentialStore } from '../device-sdk/src/store.ts';
import { factoryCredentials, makeDataDir, type Credential, type Fleet } from './helpers/fleet.ts';
import { connectedTo, startTwoNodes, untilConnected } from './helpers/nodes.ts';
import { freePort } from './helpers/ports.ts';
import { stopSharedPostgres } from './helpers/postgres.ts';
import { nextEvent, withDeadline } from './helpers/wait.ts';

/*
 * Failover across the nodes of a cluster, with real parts: two fleetgate servers over one data
 * directory and one PostgreSQL registry, devices given both nodes' URLs. A device starts on one
 * node, moves to the next when that node is unavailable (connection refused, reset or lost, TLS
 * failure, CONNACK 3, EST 5xx), stays where it works, and never hops on a refusal of itself.
 */

test.after.always(stopSharedPostgres);

/** Fast retries: a failover waits one jittered backoff of at most a few hundred ms. */
const FAST_BACKOFF = { initialMs: 100, maxMs: 1000, multiplier: 2 };

function device(t: ExecutionContext, rootPem: string, bootstrap: Credential, endpoints: Pick<FleetDeviceOptions, 'estUrl' | 'mqttUrl'>, store = new MemoryCredentialStore(rootPem, { certPem: bootstrap.certPem, key: bootstrap.keyPem })): FleetDevice {
  const created = new FleetDevice({ deviceId: bootstrap.id, store, backoff: FAST_BACKOFF, ...endpoints });
  t.teardown(() => created.stop(true));
  return created;
}

/** Both nodes' URLs, in node order. */
const bothNodes = (nodes: readonly Fleet[]) => ({ estUrl: nodes.map((node) => node.estUrl), mqttUrl: nodes.map((node) => node.server.mqttUrl) });

/** Every `endpoint` event of a device. */
function moves(device: FleetDevice): EndpointChange[] {
  const seen: EndpointChange[] = [];
  device.on('endpoint', (change) => seen.push(change));
  return seen;
}

test('endpoint lists: one URL or several, https:// for EST and mqtts:// for MQTT, none twice; SDK_ENDPOINT_INVALID otherwise', (t) => {
  t.is(endpointUrlsProblem('est', ['https://127.0.0.1:8443', 'https://[::1]:8443', 'https://node-b.example']), undefined);
  t.is(endpointUrlsProblem('mqtt', ['mqtts://127.0.0.1:8883']), undefined);
  const bad: [Parameters<typeof endpointUrlsProblem>[0], string[], RegExp][] = [
    ['est', [], /no https:\/\/ URL given/],
    ['est', ['http://127.0.0.1:8443'], /is not an https:\/\/ URL/],
    ['mqtt', ['mqtts://127.0.0.1:8883', 'mqtt://127.0.0.1:1883'], /"mqtt:\/\/127.0.0.1:1883" is not an mqtts:\/\/ URL/],
    ['mqtt', ['127.0.0.1:8883'], /is not an mqtts:\/\/ URL|is not a URL/],
    ['est', ['not a url'], /"not a url" is not a URL/],
    ['mqtt', ['mqtts://'], /names no host/],
    ['mqtt', ['mqtts://a:1', 'mqtts://b:1', 'mqtts://a:1'], /"mqtts:\/\/a:1" is listed twice/],
  ];
  for (const [kind, urls, message] of bad) t.regex(endpointUrlsProblem(kind, urls) ?? 'accepted', message, `${kind} ${JSON.stringify(urls)}`);

  const base = { deviceId: 'thermostat-0123456789ab', store: new MemoryCredentialStore('') };
  const refused: Pick<FleetDeviceOptions, 'estUrl' | 'mqttUrl'>[] = [
    { estUrl: [], mqttUrl: 'mqtts://127.0.0.1:8883' },
    { estUrl: 'https://127.0.0.1:8443', mqttUrl: [] },
    { estUrl: 'http://127.0.0.1:8443', mqttUrl: 'mqtts://127.0.0.1:8883' },
    { estUrl: ['https://127.0.0.1:8443'], mqttUrl: ['mqtts://127.0.0.1:8883', 'ws://127.0.0.1:8080'] },
    { estUrl: ['https://a:1', 'https://a:1'], mqttUrl: 'mqtts://127.0.0.1:8883' },
  ];
  for (const endpoints of refused) {
    const error = t.throws(() => new FleetDevice({ ...base, ...endpoints }), { instanceOf: SdkError }, JSON.stringify(endpoints));
    t.is(error?.code, 'SDK_ENDPOINT_INVALID');
    t.regex(error?.message ?? '', /^(estUrl|mqttUrl): /);
  }
  // One string is one endpoint, exactly as before lists existed.
  const single = new FleetDevice({ ...base, estUrl: 'https://127.0.0.1:8443', mqttUrl: 'mqtts://127.0.0.1:8883' });
  t.deepEqual(single.endpoint, { est: 'https://127.0.0.1:8443', mqtt: 'mqtts://127.0.0.1:8883' });
});

test('the starting endpoint follows the device id: the same after a restart, and a fleet spreads evenly over the nodes', (t) => {
  const urls = ['mqtts://a:8883', 'mqtts://b:8883', 'mqtts://c:8883'];
  const perNode = new Map<string, number>();
  for (let index = 0; index < 3000; index++) {
    const id = `thermostat-${(index * 2_654_435_761).toString(16).padStart(12, '0').slice(-12)}`;
    const first = new EndpointSelector(urls, id).current;
    t.is(new EndpointSelector(urls, id).current, first, 'deterministic');
    perNode.set(first, (perNode.get(first) ?? 0) + 1);
  }
  t.deepEqual([...perNode.keys()].sort(), urls);
  for (const [url, count] of perNode) t.true(count > 850 && count < 1150, `${url}: ${count} of 3000`);

  const selector = new EndpointSelector(urls, 'car-000000000001');
  const start = urls.indexOf(selector.current);
  const visited = [selector.current];
  for (let step = 0; step < 3; step++) {
    t.true(selector.advance());
    visited.push(selector.current);
  }
  t.deepEqual(visited, [0, 1, 2, 3].map((offset) => urls[(start + offset) % 3]), 'in list order, round again');
  const alone = new EndpointSelector(['mqtts://a:8883'], 'car-000000000001');
  t.false(alone.advance(), 'a single endpoint has nowhere to go');
  t.is(alone.current, 'mqtts://a:8883');
});

test('a device given both nodes enrolls and connects to one; when that node stops it moves to the other, stays there, and renews there', async (t) => {
  const { data, nodes } = await startTwoNodes(t);
  const [bootstrap] = await factoryCredentials(t, data, 'thermostat');
  const subject = device(t, data.rootPem, bootstrap!, bothNodes(nodes));
  const seen = moves(subject);
  await subject.start();
  t.is(subject.state.type, 'connected');
  const home = nodes.find((node) => node.server.mqttUrl === subject.endpoint.mqtt);
  const other = nodes.find((node) => node !== home);
  if (!home || !other) throw new Error(`connected to ${subject.endpoint.mqtt}, none of the nodes`);
  t.is(subject.endpoint.est, home.estUrl, 'EST and MQTT start on the same node (same position in lists of the same length)');
  await untilConnected(home, 1);
  t.is(await connectedTo(other), 0);
  t.deepEqual(seen, [], 'no move while it works');

  const reconnected = nextEvent(subject, 'connected', { what: 'the device to connect to the other node', timeoutMs: 20_000 });
  await home.server.close();
  await reconnected;
  t.is(subject.endpoint.mqtt, other.server.mqttUrl);
  t.like(seen, [{ kind: 'mqtt', from: home.server.mqttUrl, to: other.server.mqttUrl }]);
  t.is(seen.length, 1);
  await untilConnected(other, 1);
  await subject.publish('telemetry', JSON.stringify({ temperature: 20 }), { qos: 1 });

  // Renewal: its EST endpoint is still the stopped node's, so it moves there too, renews on the
  // other node, and switches the live connection there (make before break): no MQTT move.
  const renewed = nextEvent(subject, 'renewed', { what: 'the renewal through the other node', timeoutMs: 20_000 });
  await subject.renewNow();
  await renewed;
  t.deepEqual(subject.endpoint, { est: other.estUrl, mqtt: other.server.mqttUrl });
  t.deepEqual(
    seen.map(({ kind, from, to }) => ({ kind, from, to })),
    [
      { kind: 'mqtt', from: home.server.mqttUrl, to: other.server.mqttUrl },
      { kind: 'est', from: home.estUrl, to: other.estUrl },
    ],
  );
  t.is((await other.server.registry.getDevice(bootstrap!.id))?.renewals, 1);
  t.is(subject.state.type, 'connected');
  await subject.publish('telemetry', JSON.stringify({ temperature: 21 }), { qos: 1 });
  await untilConnected(other, 1);
});

test('a device whose first endpoints are down starts on the next: a closed EST port, then a broker whose certificate is not of its fleet (TLS failure)', async (t) => {
  const { data, nodes } = await startTwoNodes(t);
  const [live] = nodes;
  const [bootstrap] = await factoryCredentials(t, data, 'camera');
  const closedEst = `https://127.0.0.1:${await freePort()}`;
  // A TLS server with another fleet's certificate: the handshake fails on the pinned root.
  const stranger = await makeDataDir(t);
  const foreign = createTlsServer({ key: await readFile(stranger.layout.serverKey), cert: await readFile(stranger.layout.serverCert) });
  await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => foreign.close(() => resolve())));
  const foreignMqtt = `mqtts://127.0.0.1:${(foreign.address() as AddressInfo).port}`;
  // Lists ordered so that the device's starting position is the dead endpoint.
  const deadFirst = (dead: string, alive: string): string[] => (new EndpointSelector([dead, alive], bootstrap!.id).current === dead ? [dead, alive] : [alive, dead]);

  const subject = device(t, data.rootPem, bootstrap!, { estUrl: deadFirst(closedEst, live!.estUrl), mqttUrl: deadFirst(foreignMqtt, live!.server.mqttUrl) });
  const seen = moves(subject);
  const backoffs: string[] = [];
  subject.on('state', (state) => state.type === 'backing-off' && backoffs.push(state.reason));
  await subject.start();
  t.is(subject.state.type, 'connected');
  t.deepEqual(subject.endpoint, { est: live!.estUrl, mqtt: live!.server.mqttUrl });
  t.deepEqual(
    seen.map(({ kind, from, to }) => ({ kind, from, to })),
    [
      { kind: 'est', from: closedEst, to: live!.estUrl },
      { kind: 'mqtt', from: foreignMqtt, to: live!.server.mqttUrl },
    ],
  );
  t.regex(seen[0]?.reason ?? '', /ECONNREFUSED/);
  t.regex(seen[1]?.reason ?? '', /closed before CONNACK: .*(certificate|self.signed|issuer)/i);
  t.is(backoffs.length, 2, `a jittered backoff before each next attempt: ${backoffs.join('; ')}`);
  await untilConnected(live!, 1);
});

test('a refusal of the device itself (CONNACK 5 of a revoked device, EST 403) makes it stop where it is, without trying the other node', async (t) => {
  const { data, nodes } = await startTwoNodes(t);
  const [bootstrap] = await factoryCredentials(t, data, 'car');
  const store = new MemoryCredentialStore(data.rootPem, { certPem: bootstrap!.certPem, key: bootstrap!.keyPem });
  const first = device(t, data.rootPem, bootstrap!, bothNodes(nodes), store);
  await first.start();
  const where = first.endpoint;
  const home = nodes.find((node) => node.server.mqttUrl === where.mqtt);
  const other = nodes.find((node) => node !== home);
  if (!home || !other) throw new Error('no home node');
  await first.stop();
  await home.server.registry.changeState({ deviceId: bootstrap!.id, to: 'revoked', actor: 'operator:test', reason: 'stolen' });

  // The device starts again with its operational certificate: CONNACK 5 from its node, EST says revoked.
  const again = device(t, data.rootPem, bootstrap!, bothNodes(nodes), store);
  const seen = moves(again);
  await again.start();
  t.like(again.state, { type: 'refused', code: 'ENROLL_DEVICE_REVOKED' });
  t.deepEqual(seen, [], 'no move');
  t.deepEqual(again.endpoint, where);
  await withDeadline((again as unknown as { lifecycle: Promise<void> }).lifecycle, { what: 'the refused device to end its connection loop' });
  const refusals = async (node: Fleet): Promise<number> => (await node.server.metrics.mqttRefusals.get()).values.filter((value) => value.labels.code === 'BROKER_DEVICE_REVOKED').reduce((sum, value) => sum + value.value, 0);
  t.is(await refusals(home), 1, 'refused once by its node');
  t.is(await refusals(other), 0, 'never tried the other node');
  t.is(await connectedTo(other), 0);
});
