import test from 'ava';
import { once as onceEmitter, type EventEmitter } from 'node:events';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { connectAsync, type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { connackCode, connectMqtt, enrolledDevices, mqttOptions } from './helpers/device.ts';
import { startFleet, testConfig } from './helpers/fleet.ts';
import { metric } from './helpers/sockets.ts';
import { nextEvent, waitFor } from './helpers/wait.ts';

const once = (client: MqttClient, event: string): Promise<unknown[]> => onceEmitter(client as unknown as EventEmitter, event);
/** Resolves when the broker has closed the connection (errors on the way are expected). */
const closedBy = (client: MqttClient): Promise<void> => new Promise((resolve) => client.once('close', () => resolve()));

const refusals = (metricsUrl: string, code: string): Promise<number> => metric(metricsUrl, `fleetgate_mqtt_refusals_total{code="${code}"}`);

test('maximum connections: beyond the limit CONNACK 3 (server unavailable), counted', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ brokerLimits: { maxConnections: 2 } }) });
  const devices = await enrolledDevices(t, fleet, 'thermostat', 3);
  await connectMqtt(t, fleet, (devices[0] ?? devices[0])!.operational);
  await connectMqtt(t, fleet, devices[1]!.operational);
  t.is(await connackCode(fleet, devices[2]!.operational), 3);
  t.is(await refusals(fleet.server.metricsUrl, 'BROKER_TOO_MANY_CONNECTIONS'), 1);
});

test('connection rate: attempts beyond the burst are closed before the TLS handshake', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ brokerLimits: { connectionsPerSecond: 1, connectionBurst: 2 } }) });
  const port = fleet.server.mqttPort;
  const outcomes = await Promise.all(
    Array.from({ length: 6 }, () =>
      new Promise<string>((resolve) => {
        const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port, ca: fleet.rootPem, servername: 'localhost' });
        socket.once('secureConnect', () => {
          socket.destroy();
          resolve('handshake');
        });
        socket.once('error', () => resolve('closed'));
        socket.once('close', () => resolve('closed'));
      }),
    ),
  );
  t.is(outcomes.filter((outcome) => outcome === 'handshake').length, 2, outcomes.join(','));
  t.is(await refusals(fleet.server.metricsUrl, 'BROKER_RATE_SHED'), 4);
});

test('maximum packet size: a larger packet closes the connection and is not delivered', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ brokerLimits: { maxPacketBytes: 1024 } }) });
  const [device] = await enrolledDevices(t, fleet);
  const client = await connectMqtt(t, fleet, device!.operational);
  client.on('error', () => undefined); // the broker cuts the connection: expected
  await client.subscribeAsync(`devices/${device!.id}/#`);
  let received = 0;
  client.on('message', () => received++);
  const small = nextEvent(client as unknown as EventEmitter, 'message', { what: 'the small message' });
  await client.publishAsync(`devices/${device!.id}/small`, Buffer.alloc(512));
  await small;
  t.is(received, 1);
  const closed = closedBy(client);
  client.publish(`devices/${device!.id}/big`, Buffer.alloc(64 * 1024));
  await closed;
  t.is(received, 1);
  t.true((await refusals(fleet.server.metricsUrl, 'BROKER_PACKET_TOO_LARGE')) >= 1);
});

test('keepalive bounds: 0 and values above the maximum are refused with CONNACK 2', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ brokerLimits: { keepaliveMinSeconds: 5, keepaliveMaxSeconds: 120 } }) });
  const [device] = await enrolledDevices(t, fleet);
  t.is(await connackCode(fleet, device!.operational, { keepalive: 0 }), 2);
  t.is(await connackCode(fleet, device!.operational, { keepalive: 600 }), 2);
  t.is(await connackCode(fleet, device!.operational, { keepalive: 60 }), 0);
});

test('maximum topic depth: deeper publishes close the connection, deeper subscriptions get 0x80', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ brokerLimits: { maxTopicLevels: 4 } }) });
  const [device] = await enrolledDevices(t, fleet);
  const client = await connectMqtt(t, fleet, device!.operational);
  client.on('error', () => undefined);
  const deep = `devices/${device!.id}/a/b/c/d`;
  let granted: number[] = [];
  try {
    granted = (await client.subscribeAsync(deep)).map((grant) => grant.qos);
  } catch (error) {
    granted = (error as { packet: { granted: number[] } }).packet.granted;
  }
  t.deepEqual(granted, [128]);
  const closed = closedBy(client);
  client.publish(deep, 'x');
  await closed;
  t.true((await refusals(fleet.server.metricsUrl, 'BROKER_TOPIC_INVALID')) >= 2);
});

test('maximum inflight: a client that leaves more QoS 2 messages unreleased than allowed is disconnected', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ brokerLimits: { maxInflight: 5 } }) });
  const [device] = await enrolledDevices(t, fleet);
  // Within the window QoS 2 works end to end.
  const client = await connectMqtt(t, fleet, device!.operational);
  await Promise.all(Array.from({ length: 5 }, (_, index) => client.publishAsync(`devices/${device!.id}/q2/${index}`, 'x', { qos: 2 })));
  t.true(client.connected);
  await client.endAsync();

  // A raw client sends QoS 2 PUBLISHes and never the PUBRELs.
  const socket = tlsConnect({ host: '127.0.0.1', port: fleet.server.mqttPort, ca: fleet.rootPem, cert: device!.operational.certPem, key: device!.operational.keyPem, servername: 'localhost' });
  t.teardown(() => socket.destroy());
  await onceEmitter(socket, 'secureConnect');
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const packets: string[] = [];
  parser.on('packet', (packet: { cmd: string }) => packets.push(packet.cmd));
  socket.on('data', (chunk: Buffer) => parser.parse(chunk));
  socket.write(mqttPacket.generate({ cmd: 'connect', clientId: device!.id, keepalive: 30, protocolVersion: 4, protocolId: 'MQTT', clean: true }));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const publish = (id: number): boolean =>
    socket.write(mqttPacket.generate({ cmd: 'publish', topic: `devices/${device!.id}/q2`, payload: Buffer.from('x'), qos: 2, messageId: id, retain: false, dup: false }));
  const until = (count: number, cmd: string): Promise<true> =>
    waitFor(
      () => {
        if (socket.destroyed) throw new Error(`the broker closed the connection; packets: ${packets.join(', ')}`);
        return packets.filter((seen) => seen === cmd).length >= count;
      },
      { what: () => `${count} ${cmd} (packets so far: ${packets.join(', ')})` },
    );
  // PUBLISHes after the CONNACK, so that the count of PUBRECs is this test's only subject
  // (packets sent before the CONNACK are tested in broker-pipelining.test.ts).
  await until(1, 'connack');
  for (let id = 1; id <= 5; id++) publish(id);
  await until(5, 'pubrec');
  t.is(packets[0], 'connack');
  t.is(packets.filter((cmd) => cmd === 'pubrec').length, 5, 'five in flight are accepted');
  t.false(socket.destroyed);
  publish(6);
  await closed;
  t.pass('the sixth unreleased QoS 2 message closed the connection');
});

test('message rate: a flooding client is slowed by backpressure, not disconnected, and the broker stays up', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ brokerLimits: { messagesPerSecond: 200, messageBurst: 50 } }) });
  const [flooder, watcher] = await enrolledDevices(t, fleet, 'camera', 2);
  const client = await connectMqtt(t, fleet, flooder!.operational);
  const started = Date.now();
  await Promise.all(Array.from({ length: 250 }, (_, index) => client.publishAsync(`devices/${flooder!.id}/flood`, String(index), { qos: 1 })));
  const elapsed = Date.now() - started;
  t.true(elapsed >= 800, `250 messages at 200/s after a burst of 50 take about 1 s, took ${elapsed} ms`);
  t.true(client.connected);
  t.is(await connackCode(fleet, watcher!.operational), 0, 'the broker still accepts others');
});

test('wills and retained messages obey the same rules', async (t) => {
  const fleet = await startFleet(t);
  const [device, other] = await enrolledDevices(t, fleet, 'thermostat', 2);
  t.is(await connackCode(fleet, device!.operational, { will: { topic: `devices/${other!.id}/status`, payload: Buffer.from('offline'), qos: 0, retain: false } }), 5);
  // A will inside the namespace is accepted and delivered when the device drops.
  const watcher = await connectMqtt(t, fleet, device!.operational, { clientId: device!.id });
  void watcher;
  const observer = await connectMqtt(t, fleet, other!.operational);
  await observer.subscribeAsync(`devices/${other!.id}/#`);
  const retainedClient = await connectAsync(fleet.server.mqttUrl, mqttOptions(fleet, other!.operational, { clientId: other!.id }));
  t.teardown(() => retainedClient.endAsync(true));
  await retainedClient.publishAsync(`devices/${other!.id}/state`, 'on', { retain: true, qos: 1 });
  retainedClient.on('error', () => undefined);
  const closed = closedBy(retainedClient);
  retainedClient.publish(`devices/${device!.id}/state`, 'spoof', { retain: true, qos: 0 });
  await closed;
  // The foreign retained message was not stored: a fresh subscriber of that topic gets nothing.
  const fresh = await connectMqtt(t, fleet, device!.operational);
  const seen: string[] = [];
  fresh.on('message', (_topic, payload, packet) => seen.push(`${payload.toString()}${packet.retain ? ' (retained)' : ''}`));
  await fresh.subscribeAsync(`devices/${device!.id}/state`, { qos: 1 });
  // A stored retained message is sent right after the SUBACK; a marker published after the
  // SUBACK came back arrives after it. So the marker first means nothing was stored.
  const marker = nextEvent(fresh as unknown as EventEmitter, 'message', { what: 'the marker message', accept: (_topic, payload) => String(payload) === 'marker' });
  await fresh.publishAsync(`devices/${device!.id}/state`, 'marker', { qos: 1 });
  await marker;
  t.deepEqual(seen, ['marker'], 'no retained spoof before the marker');
});
