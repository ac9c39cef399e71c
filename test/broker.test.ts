import test from 'ava';
import { once as onceEmitter, type EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { MqttClient } from 'mqtt';
import { startFleet } from './helpers/fleet.ts';
import { connackCode, connectMqtt, enrolledDevices } from './helpers/device.ts';
import { nextEvent } from './helpers/wait.ts';

/** MQTT.js' emitter types do not satisfy node's `once`; it is an EventEmitter underneath. */
const once = (client: MqttClient, event: string): Promise<unknown[]> => onceEmitter(client as unknown as EventEmitter, event);

/** SUBACK return codes, also when MQTT.js rejects because one of them is 0x80. */
async function subackCodes(client: MqttClient, filters: Record<string, { qos: 0 | 1 }>): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters)).map((grant) => grant.qos);
  } catch (error) {
    const granted = (error as { packet?: { granted?: number[] } }).packet?.granted;
    if (!granted) throw error;
    return granted;
  }
}

test('an enrolled device connects, publishes and subscribes in its own namespace', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  if (!device) throw new Error('no device');
  const client = await connectMqtt(t, fleet, device.operational);
  const granted = await client.subscribeAsync(`devices/${device.id}/commands/#`, { qos: 1 });
  t.is(granted[0]?.qos, 1);
  const received = once(client, 'message');
  await client.publishAsync(`devices/${device.id}/commands/reboot`, 'now', { qos: 1 });
  const [topic, payload] = (await received) as [string, Buffer];
  t.is(topic, `devices/${device.id}/commands/reboot`);
  t.is(payload.toString(), 'now');
});

test('foreign topics, wildcards outside the namespace and $SYS are refused with SUBACK 0x80', async (t) => {
  const fleet = await startFleet(t);
  const [device, other] = await enrolledDevices(t, fleet, 'camera', 2);
  if (!device || !other) throw new Error('no devices');
  const client = await connectMqtt(t, fleet, device.operational);
  const granted = await subackCodes(client, { [`devices/${other.id}/#`]: { qos: 0 }, '#': { qos: 0 }, '$SYS/#': { qos: 0 }, 'devices/+/telemetry': { qos: 0 }, [`devices/${device.id}/+`]: { qos: 0 } });
  t.deepEqual(granted, [128, 128, 128, 128, 0]);
  t.true(client.connected, 'a refused subscription keeps the connection');
});

test('publishing to another device topic closes the connection', async (t) => {
  const fleet = await startFleet(t);
  const [device, other] = await enrolledDevices(t, fleet, 'thermostat', 2);
  if (!device || !other) throw new Error('no devices');
  const watcher = await connectMqtt(t, fleet, other.operational);
  await watcher.subscribeAsync(`devices/${other.id}/#`);
  const seen: string[] = [];
  watcher.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
  const client = await connectMqtt(t, fleet, device.operational);
  const closed = once(client, 'close');
  client.publish(`devices/${other.id}/commands`, 'spoofed', { qos: 0 });
  await closed;
  // A marker published after the spoof was handled: had the spoof been delivered, it would be first.
  const marker = nextEvent<[string, Buffer]>(watcher as unknown as EventEmitter, 'message', { what: 'the marker message', accept: (topic) => topic.endsWith('/marker') });
  await watcher.publishAsync(`devices/${other.id}/marker`, 'marker', { qos: 1 });
  await marker;
  t.deepEqual(seen, [`devices/${other.id}/marker marker`], 'the spoofed message reached nobody');
});

test('client id must equal the certificate identity (CONNACK 5); bootstrap and operator certificates are refused (CONNACK 5)', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  if (!device) throw new Error('no device');
  t.is(await connackCode(fleet, device.operational, { clientId: 'someone-else' }), 5);
  t.is(await connackCode(fleet, device.bootstrap), 5);
  // The operator certificate comes from the same issuing CA but names no device: refused too.
  const operator = { id: 'operator', certPem: await readFile(fleet.layout.operatorCert, 'utf8'), keyPem: await readFile(fleet.layout.operatorKey, 'utf8') };
  t.is(await connackCode(fleet, operator), 5);
  t.is(await connackCode(fleet, device.operational), 0);
});

test('revoking a device closes its live session within a second and refuses reconnects; disable and enable', async (t) => {
  const fleet = await startFleet(t);
  const [device, second] = await enrolledDevices(t, fleet, 'car', 2);
  if (!device || !second) throw new Error('no devices');
  const client = await connectMqtt(t, fleet, device.operational);
  const closed = once(client, 'close');
  const started = Date.now();
  await fleet.server.registry.changeState({ deviceId: device.id, to: 'revoked', actor: 'operator:test' });
  await closed;
  t.true(Date.now() - started < 1000, `closed after ${Date.now() - started} ms`);
  t.is(await connackCode(fleet, device.operational), 5);

  const other = await connectMqtt(t, fleet, second.operational);
  const otherClosed = once(other, 'close');
  await fleet.server.registry.changeState({ deviceId: second.id, to: 'disabled', actor: 'operator:test' });
  await otherClosed;
  t.is(await connackCode(fleet, second.operational), 5);
  await fleet.server.registry.changeState({ deviceId: second.id, to: 'enrolled', actor: 'operator:test' });
  t.is(await connackCode(fleet, second.operational), 0);
});
