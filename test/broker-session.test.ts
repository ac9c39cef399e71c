import test from 'ava';
import { once, type EventEmitter } from 'node:events';
import { connectAsync } from 'mqtt';
import { connectMqtt, enrolledDevices } from './helpers/device.ts';
import { startFleet, type Credential, type Fleet } from './helpers/fleet.ts';
import { rawConnect as rawConnectTo } from './helpers/raw-mqtt.ts';
import { untilClockPasses, waitFor } from './helpers/wait.ts';

/** One raw MQTT CONNECT over TLS to the fleet's broker, optionally resuming a TLS session. */
const rawConnect = (fleet: Fleet, credential: Credential, session?: Buffer) => rawConnectTo({ port: fleet.server.mqttPort, rootPem: fleet.rootPem }, credential, session);

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
  // Presence is written by a periodic flush: poll the registry for each change.
  const presence = () => fleet.server.registry.getPresence(device!.id);
  const connected = await waitFor(async () => (await presence())?.connected === true && presence(), { what: 'presence "connected" in the registry' });
  t.like(connected, { connected: true, peer: '127.0.0.1' });
  // lastSeen has millisecond resolution: let the clock pass it, so the message's time is later.
  await untilClockPasses(Date.parse(connected?.lastSeen ?? ''), { what: 'the clock to pass the connection time' });
  await client.publishAsync(`devices/${device!.id}/telemetry`, '21.5', { qos: 1 });
  const seen = await waitFor(async () => {
    const record = await presence();
    return (record?.lastSeen ?? '') > (connected?.lastSeen ?? '') && record;
  }, { what: 'last seen to move with the message' });
  t.true((seen?.lastSeen ?? '') > (connected?.lastSeen ?? ''), 'last seen moved with the message');
  t.is(seen?.connectedAt, connected?.connectedAt);
  await client.endAsync();
  t.like(await waitFor(async () => (await presence())?.connected === false && presence(), { what: 'presence "disconnected" in the registry' }), { connected: false });
});

test('a second connection with the same identity takes over the first (MQTT-3.1.4-2), presence stays connected', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet);
  const first = await connectMqtt(t, fleet, device!.operational);
  const firstClosed = once(first as unknown as EventEmitter, 'close');
  const second = await connectAsync(fleet.server.mqttUrl, { clientId: device!.id, ca: fleet.rootPem, cert: device!.operational.certPem, key: device!.operational.keyPem, reconnectPeriod: 0 });
  t.teardown(() => second.endAsync(true));
  await firstClosed;
  // The broker handled the first session's end before the client saw its socket close. A message
  // from the second session is noted after that; once a flush has written it, the state written
  // with it is the final one (a wrong "disconnected" from the takeover would be in it).
  const markerAt = new Date().toISOString();
  await second.publishAsync(`devices/${device!.id}/telemetry`, 'marker', { qos: 1 });
  const settled = await waitFor(async () => {
    const record = await fleet.server.registry.getPresence(device!.id);
    return (record?.lastSeen ?? '') >= markerAt && record;
  }, { what: 'presence with the marker message written' });
  t.like(settled, { connected: true });
  // Revocation still reaches the session that took over.
  const secondClosed = once(second as unknown as EventEmitter, 'close');
  await fleet.server.registry.changeState({ deviceId: device!.id, to: 'disabled', actor: 'operator:test' });
  await secondClosed;
  t.pass();
});
