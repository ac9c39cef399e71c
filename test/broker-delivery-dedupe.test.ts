import test from 'ava';
import type { Packet } from 'mqtt-packet';
import { dedupeExactly } from '../server/src/broker/delivery-dedupe.ts';
import { bareBroker } from './helpers/bare-aedes.ts';
import { connectMqtt, enrolledDevices } from './helpers/device.ts';
import { serviceCredential, startFleet } from './helpers/fleet.ts';
import { waitFor } from './helpers/wait.ts';

/*
 * aedes drops, for each client, a message numbered below the last one it got from the same
 * broker: a QoS 1 message that a QoS 0 message overtook (it is queued for persistent sessions
 * first) never reached a backend subscribed to both. Only real duplicates may be dropped.
 */

const publish = (topic: string, qos: 0 | 1, messageId?: number) => ({ cmd: 'publish' as const, topic, payload: Buffer.from(topic), qos, retain: false, dup: false, ...(messageId ? { messageId } : {}) });

async function broker(t: Parameters<typeof bareBroker>[0], exact: boolean) {
  const bare = await bareBroker(t, { hold: (topic) => topic.endsWith('/telemetry'), onClient: exact ? dedupeExactly : undefined });
  const backend = await bare.connect('backend', false);
  const subscribed = backend.next('suback', 'the SUBACK');
  backend.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'devices/#', qos: 1 }, { topic: 'devices/+/telemetry', qos: 1 }] });
  await subscribed;
  return { ...bare, backend, publisher: await bare.connect('publisher') };
}

/** Topics of the PUBLISH packets a client received. */
const topics = (packets: readonly Packet[]): string[] => packets.flatMap((packet) => (packet.cmd === 'publish' ? [packet.topic] : []));

test('a QoS 1 message overtaken by a QoS 0 message of the same broker is still delivered', async (t) => {
  const { backend, publisher, nextHeld } = await broker(t, true);
  const held = nextHeld('the QoS 1 telemetry on its way');
  publisher.send(publish('devices/a/telemetry', 1, 5));
  const release = await held;
  // Numbered after the telemetry, routed before it.
  const position = backend.next('publish', 'the QoS 0 position at the backend');
  publisher.send(publish('devices/b/position', 0));
  t.is(((await position) as Packet & { topic: string }).topic, 'devices/b/position');
  const telemetry = backend.next('publish', 'the QoS 1 telemetry at the backend');
  release();
  t.is(((await telemetry) as Packet & { topic: string }).topic, 'devices/a/telemetry');
  // Overlapping subscriptions still deliver a message once.
  const again = nextHeld('the second telemetry');
  publisher.send(publish('devices/c/telemetry', 1, 6));
  const arrived = backend.next('publish', 'the second telemetry at the backend');
  (await again)();
  await arrived;
  const fromPublisher = backend.next('publish', 'the last position');
  publisher.send(publish('devices/d/position', 0));
  await fromPublisher;
  t.deepEqual(topics(backend.packets), ['devices/b/position', 'devices/a/telemetry', 'devices/c/telemetry', 'devices/d/position'], 'each message once');
});

test("aedes' own check drops the overtaken message (why dedupeExactly exists)", async (t) => {
  const { backend, publisher, nextHeld } = await broker(t, false);
  const held = nextHeld('the QoS 1 telemetry on its way');
  publisher.send(publish('devices/a/telemetry', 1, 5));
  const release = await held;
  const position = backend.next('publish', 'the QoS 0 position at the backend');
  publisher.send(publish('devices/b/position', 0));
  await position;
  release();
  // What comes next at the backend is the next position: the telemetry was dropped.
  const next = backend.next('publish', 'the next message at the backend');
  publisher.send(publish('devices/c/position', 0));
  t.is(((await next) as Packet & { topic: string }).topic, 'devices/c/position');
  t.deepEqual(topics(backend.packets), ['devices/b/position', 'devices/c/position']);
});

test('end to end: a persistent backend on devices/# gets every QoS 1 message its devices were acknowledged, among their QoS 0 ones', async (t) => {
  const fleet = await startFleet(t);
  const devices = await enrolledDevices(t, fleet, 'thermostat', 4);
  const backend = await connectMqtt(t, fleet, await serviceCredential(t, fleet), { clientId: 'backend:ingest', clean: false });
  const received = new Set<string>();
  backend.on('message', (topic, payload) => {
    if (topic.endsWith('/telemetry')) received.add(payload.toString());
  });
  await backend.subscribeAsync('devices/#', { qos: 1 });
  const acknowledged: string[] = [];
  await Promise.all(
    devices.map(async (device) => {
      const client = await connectMqtt(t, fleet, device.operational);
      const sent: Promise<void>[] = [];
      for (let index = 0; index < 50; index++) {
        sent.push(client.publishAsync(`devices/${device.id}/telemetry`, `${device.id}#${index}`, { qos: 1 }).then(() => void acknowledged.push(`${device.id}#${index}`)));
        void client.publishAsync(`devices/${device.id}/position`, String(index), { qos: 0 });
      }
      await Promise.all(sent);
    }),
  );
  t.is(acknowledged.length, 200);
  let missing: string[] = [];
  await waitFor(() => (missing = acknowledged.filter((message) => !received.has(message))).length === 0, { what: () => `every acknowledged telemetry message at the backend (${missing.length} missing)` });
});
