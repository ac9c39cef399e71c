import test, { type ExecutionContext } from 'ava';
import type { IClientSubscribeOptions, MqttClient } from 'mqtt';
import { ConfigError, DEFAULT_CONFIG, mergeConfig } from '../server/src/config/config.ts';
import { connectMqtt, enrolledDevices, type EnrolledDevice } from './helpers/device.ts';
import { startFleet, testConfig, type Fleet } from './helpers/fleet.ts';
import { metric } from './helpers/sockets.ts';

/*
 * One device cannot grow the broker's memory without bound: retained messages are capped per
 * device (count and bytes) and in total, subscriptions per client. Over a retained cap the
 * PUBLISH is refused like any refused PUBLISH (connection closed, nothing stored or delivered);
 * over the subscription cap the filter gets SUBACK 0x80.
 */

const refusals = (fleet: Fleet, code: string): Promise<number> => metric(fleet.server.metricsUrl, `fleetgate_mqtt_refusals_total{code="${code}"}`);

/** Resolves when the broker has closed the connection (errors on the way are expected). */
const closedBy = (client: MqttClient): Promise<void> => new Promise((resolve) => client.once('close', () => resolve()));

/**
 * The retained messages the broker holds under a device's namespace, as a new subscriber gets
 * them: retained messages arrive right after the SUBACK, before a message published afterwards
 * on the same connection, so a sentinel ends the list (no sleep).
 */
async function retainedOf(t: ExecutionContext, fleet: Fleet, device: EnrolledDevice): Promise<Map<string, number>> {
  const client = await connectMqtt(t, fleet, device.operational);
  const held = new Map<string, number>();
  const done = new Promise<void>((resolve) => {
    client.on('message', (topic, payload, packet) => {
      if (topic.endsWith('/sentinel')) resolve();
      else if (packet.retain) held.set(topic.slice(`devices/${device.id}/`.length), payload.length);
    });
  });
  await client.subscribeAsync(`devices/${device.id}/#`, { qos: 1 });
  await client.publishAsync(`devices/${device.id}/sentinel`, 'end', { qos: 1 });
  await done;
  await client.endAsync();
  return held;
}

/** The SUBACK return codes of one SUBSCRIBE (MQTT.js rejects when one is 0x80; the codes are what we check). */
async function suback(client: MqttClient, filters: string | string[], options: Partial<IClientSubscribeOptions> = {}): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos: 0, ...options })).map((grant) => grant.qos);
  } catch (error) {
    const granted = (error as { packet?: { granted?: number[] } }).packet?.granted;
    if (!granted) throw error;
    return granted;
  }
}

test('retained messages per device: beyond the count the publish is refused and not stored; an empty payload frees the place', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ brokerLimits: { maxRetainedPerDevice: 2 } }) });
  const [device] = await enrolledDevices(t, fleet);
  const topic = (name: string): string => `devices/${device!.id}/${name}`;
  const client = await connectMqtt(t, fleet, device!.operational);
  client.on('error', () => undefined);
  await client.publishAsync(topic('a'), 'one', { qos: 1, retain: true });
  await client.publishAsync(topic('b'), 'two', { qos: 1, retain: true });
  // Replacing one of its own retained messages does not take a new place.
  await client.publishAsync(topic('a'), 'one again', { qos: 1, retain: true });
  const closed = closedBy(client);
  client.publish(topic('c'), 'three', { qos: 1, retain: true });
  await closed;
  t.is(await refusals(fleet, 'BROKER_RETAINED_LIMIT'), 1);
  t.deepEqual([...(await retainedOf(t, fleet, device!)).keys()].sort(), ['a', 'b']);

  // The quota belongs to the device, not the connection: a reconnect does not reset it.
  const again = await connectMqtt(t, fleet, device!.operational);
  again.on('error', () => undefined);
  const closedAgain = closedBy(again);
  again.publish(topic('c'), 'three', { qos: 1, retain: true });
  await closedAgain;
  t.is(await refusals(fleet, 'BROKER_RETAINED_LIMIT'), 2);

  // An empty retained payload deletes the message (MQTT-3.3.1-10/11) and frees its place.
  const third = await connectMqtt(t, fleet, device!.operational);
  await third.publishAsync(topic('a'), '', { qos: 1, retain: true });
  await third.publishAsync(topic('c'), 'three', { qos: 1, retain: true });
  t.true(third.connected);
  t.deepEqual([...(await retainedOf(t, fleet, device!)).keys()].sort(), ['b', 'c']);
  t.is(await metric(fleet.server.metricsUrl, 'fleetgate_mqtt_retained_messages'), 2);
});

test('retained bytes per device: a message that would pass the byte cap is refused; a smaller replacement fits', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ brokerLimits: { maxRetainedBytesPerDevice: 1000 } }) });
  const [device] = await enrolledDevices(t, fleet);
  const topic = (name: string): string => `devices/${device!.id}/${name}`;
  const client = await connectMqtt(t, fleet, device!.operational);
  client.on('error', () => undefined);
  await client.publishAsync(topic('big'), Buffer.alloc(600), { qos: 1, retain: true });
  // Replacing it with a larger one counts the new size only.
  await client.publishAsync(topic('big'), Buffer.alloc(900), { qos: 1, retain: true });
  const closed = closedBy(client);
  client.publish(topic('other'), Buffer.alloc(200), { qos: 1, retain: true });
  await closed;
  t.is(await refusals(fleet, 'BROKER_RETAINED_LIMIT'), 1);
  t.deepEqual([...(await retainedOf(t, fleet, device!)).entries()], [['big', 900]]);
  // A non-retained message of any size within maxPacketBytes is not affected.
  const plain = await connectMqtt(t, fleet, device!.operational);
  await plain.publishAsync(topic('plain'), Buffer.alloc(5000), { qos: 1 });
  t.true(plain.connected);
});

test('retained bytes in total: a device is refused once the broker holds the global cap, and a deletion frees it', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ brokerLimits: { maxRetainedBytesPerDevice: 1000, maxRetainedBytes: 1500 } }) });
  const [a, b] = await enrolledDevices(t, fleet, 'thermostat', 2);
  const clientA = await connectMqtt(t, fleet, a!.operational);
  await clientA.publishAsync(`devices/${a!.id}/state`, Buffer.alloc(900), { qos: 1, retain: true });
  const clientB = await connectMqtt(t, fleet, b!.operational);
  clientB.on('error', () => undefined);
  const closed = closedBy(clientB);
  clientB.publish(`devices/${b!.id}/state`, Buffer.alloc(900), { qos: 1, retain: true });
  await closed;
  t.is(await refusals(fleet, 'BROKER_RETAINED_FULL'), 1);
  t.is((await retainedOf(t, fleet, b!)).size, 0);
  // A deletes its message; B fits now.
  await clientA.publishAsync(`devices/${a!.id}/state`, '', { qos: 1, retain: true });
  const againB = await connectMqtt(t, fleet, b!.operational);
  await againB.publishAsync(`devices/${b!.id}/state`, Buffer.alloc(900), { qos: 1, retain: true });
  t.deepEqual([...(await retainedOf(t, fleet, b!)).entries()], [['state', 900]]);
  const bytes = await metric(fleet.server.metricsUrl, 'fleetgate_mqtt_retained_bytes');
  t.is(bytes, 900 + Buffer.byteLength(`devices/${b!.id}/state`));
});

test('subscriptions per client: filters beyond the cap get SUBACK 0x80, re-subscribing is free, unsubscribing frees a place', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ brokerLimits: { maxSubscriptionsPerClient: 3 } }) });
  const [device] = await enrolledDevices(t, fleet);
  const filter = (name: string): string => `devices/${device!.id}/${name}`;
  const client = await connectMqtt(t, fleet, device!.operational);
  t.deepEqual(await suback(client, [filter('a'), filter('b'), filter('c'), filter('d'), filter('e')]), [0, 0, 0, 128, 128]);
  t.is(await refusals(fleet, 'BROKER_SUBSCRIPTION_LIMIT'), 2);
  // A filter already held is replaced (MQTT-3.8.4-3), not counted twice.
  t.deepEqual(await suback(client, filter('a'), { qos: 1 }), [1]);
  t.deepEqual(await suback(client, filter('d')), [128]);
  await client.unsubscribeAsync(filter('b'));
  t.deepEqual(await suback(client, filter('d')), [0]);
  t.true(client.connected, 'a refused filter keeps the connection');
  // The granted filters work.
  const received = new Promise<string>((resolve) => client.on('message', (topic) => resolve(topic)));
  await client.publishAsync(filter('d'), 'x', { qos: 1 });
  t.is(await received, filter('d'));
});

test('config: the memory caps are positive numbers', (t) => {
  for (const key of ['maxRetainedPerDevice', 'maxRetainedBytesPerDevice', 'maxRetainedBytes', 'maxSubscriptionsPerClient']) {
    t.throws(() => mergeConfig({ broker: { limits: { [key]: 0 } } }), { instanceOf: ConfigError }, key);
    t.is(mergeConfig({ broker: { limits: { [key]: 7 } } }).broker.limits[key as keyof typeof DEFAULT_CONFIG.broker.limits], 7);
  }
});
