import test from 'ava';
import { once, type EventEmitter } from 'node:events';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { connectAsync } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { connectMqtt, enrolledDevices } from './helpers/device.ts';
import { startFleet, type Credential, type Fleet } from './helpers/fleet.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** One raw MQTT CONNECT over TLS, optionally resuming a TLS session; returns the CONNACK code and the session. */
async function rawConnect(fleet: Fleet, credential: Credential, session?: Buffer): Promise<{ returnCode: number; resumed: boolean; session: Buffer | undefined }> {
  const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port: fleet.server.mqttPort, ca: fleet.rootPem, cert: credential.certPem, key: credential.keyPem, servername: 'localhost', session });
  let ticket: Buffer | undefined;
  socket.on('session', (data: Buffer) => (ticket = data));
  await once(socket, 'secureConnect');
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const connack = new Promise<number>((resolve) => parser.on('packet', (packet: { cmd: string; returnCode?: number }) => packet.cmd === 'connack' && resolve(packet.returnCode ?? -1)));
  socket.on('data', (chunk: Buffer) => parser.parse(chunk));
  socket.on('error', () => undefined);
  socket.write(mqttPacket.generate({ cmd: 'connect', clientId: credential.id, keepalive: 30, protocolVersion: 4, protocolId: 'MQTT', clean: true }));
  const returnCode = await connack;
  const resumed = socket.isSessionReused();
  await sleep(50); // TLS 1.3 tickets arrive after the handshake
  socket.destroy();
  return { returnCode, resumed, session: ticket };
}

test('a resumed TLS session is checked against the registry like a full handshake', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  const first = await rawConnect(fleet, device!.operational);
  t.is(first.returnCode, 0);
  t.truthy(first.session, 'the server issued a session ticket');
  const resumedBefore = await rawConnect(fleet, device!.operational, first.session);
  t.true(resumedBefore.resumed, 'the TLS session was resumed');
  t.is(resumedBefore.returnCode, 0);
  await fleet.server.registry.changeState({ deviceId: device!.id, to: 'revoked', actor: 'operator:test' });
  const resumedAfter = await rawConnect(fleet, device!.operational, resumedBefore.session ?? first.session);
  t.true(resumedAfter.resumed, 'still a resumption');
  t.is(resumedAfter.returnCode, 5, 'refused although the handshake was skipped');
});

test('presence: connected, last seen and disconnected are recorded in the registry', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  const client = await connectMqtt(t, fleet, device!.operational);
  const flushMs = fleet.server.config.broker.limits.presenceFlushMs;
  await sleep(flushMs * 3);
  const connected = await fleet.server.registry.getPresence(device!.id);
  t.like(connected, { connected: true, peer: '127.0.0.1' });
  await sleep(20);
  await client.publishAsync(`devices/${device!.id}/telemetry`, '21.5', { qos: 1 });
  await sleep(flushMs * 3);
  const seen = await fleet.server.registry.getPresence(device!.id);
  t.true((seen?.lastSeen ?? '') > (connected?.lastSeen ?? ''), 'last seen moved with the message');
  t.is(seen?.connectedAt, connected?.connectedAt);
  await client.endAsync();
  await sleep(flushMs * 3);
  t.like(await fleet.server.registry.getPresence(device!.id), { connected: false });
});

test('a second connection with the same identity takes over the first (MQTT-3.1.4-2), presence stays connected', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  const first = await connectMqtt(t, fleet, device!.operational);
  const firstClosed = once(first as unknown as EventEmitter, 'close');
  const second = await connectAsync(fleet.server.mqttUrl, { clientId: device!.id, ca: fleet.rootPem, cert: device!.operational.certPem, key: device!.operational.keyPem, reconnectPeriod: 0 });
  t.teardown(() => second.endAsync(true));
  await firstClosed;
  await sleep(fleet.server.config.broker.limits.presenceFlushMs * 3);
  t.like(await fleet.server.registry.getPresence(device!.id), { connected: true });
  // Revocation still reaches the session that took over.
  const secondClosed = once(second as unknown as EventEmitter, 'close');
  await fleet.server.registry.changeState({ deviceId: device!.id, to: 'disabled', actor: 'operator:test' });
  await secondClosed;
  t.pass();
});
