import test, { type ExecutionContext } from 'ava';
import { connectAsync } from 'mqtt';
import { join } from 'node:path';
import { FleetDevice, type FleetDeviceOptions } from '../device-sdk/src/fleet-device.ts';
import { FileCredentialStore } from '../device-sdk/src/file-store.ts';
import type { DeviceState } from '../device-sdk/src/device-state.ts';
import { admin } from './helpers/admin-client.ts';
import { mqttOptions } from './helpers/device.ts';
import { factoryCredentials, serviceCredential, startFleet, testConfig, type Credential, type Fleet } from './helpers/fleet.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { untilClockPasses, waitFor, withDeadline } from './helpers/wait.ts';

/** A device provisioned as a factory would: root and bootstrap credential in a file store. */
async function provisionedDevice(t: ExecutionContext, fleet: Fleet, bootstrap: Credential, options: Partial<FleetDeviceOptions> = {}): Promise<FleetDevice> {
  const store = await FileCredentialStore.provision(join(await tempDir(t, 'fleetgate-device-'), 'credentials'), {
    root: fleet.rootPem,
    bootstrap: { certPem: bootstrap.certPem, key: bootstrap.keyPem },
  });
  const device = new FleetDevice({ deviceId: bootstrap.id, estUrl: fleet.estUrl, mqttUrl: fleet.server.mqttUrl, store, ...options });
  t.teardown(() => device.stop(true));
  return device;
}

/** A backend service subscribed to every device's topics. */
async function backend(t: ExecutionContext, fleet: Fleet) {
  const credential = await serviceCredential(t, fleet);
  const client = await connectAsync(fleet.server.mqttUrl, mqttOptions(fleet, credential, { clientId: `backend:${Math.random().toString(16).slice(2, 8)}` }));
  t.teardown(() => client.endAsync(true));
  await client.subscribeAsync('devices/#', { qos: 1 });
  return client;
}

function waitForState(device: FleetDevice, predicate: (state: DeviceState) => boolean, timeoutMs: number): Promise<DeviceState> {
  return new Promise((resolve, reject) => {
    if (predicate(device.state)) {
      resolve(device.state);
      return;
    }
    const timer = setTimeout(() => {
      device.off('state', check);
      reject(new Error(`timed out in state ${JSON.stringify(device.state)}`));
    }, timeoutMs);
    const check = (state: DeviceState): void => {
      if (!predicate(state)) return;
      clearTimeout(timer);
      device.off('state', check);
      resolve(state);
    };
    device.on('state', check);
  });
}

test('full lifecycle: bootstrap credential → enrollment → mTLS connection → telemetry and commands', async (t) => {
  const fleet = await startFleet(t);
  const [bootstrap] = await factoryCredentials(t, fleet, 'thermostat');
  const consumer = await backend(t, fleet);
  const device = await provisionedDevice(t, fleet, bootstrap!);
  const states: string[] = [];
  device.on('state', (state) => states.push(state.type));
  await device.start();
  t.is(device.state.type, 'connected');
  t.deepEqual(states, ['enrolling', 'connecting', 'connected']);
  t.is((await fleet.server.registry.getDevice(bootstrap!.id))?.state, 'enrolled');

  const telemetry = new Promise<string>((resolve) => consumer.on('message', (topic, payload) => topic.endsWith('/telemetry') && resolve(`${topic} ${payload.toString()}`)));
  await device.publish('telemetry', JSON.stringify({ temperature: 21.5 }));
  t.is(await telemetry, `devices/${bootstrap!.id}/telemetry {"temperature":21.5}`);

  await device.subscribe('commands/#');
  const command = new Promise<string>((resolve) => device.on('message', (topic, payload) => resolve(`${topic} ${payload.toString()}`)));
  await consumer.publishAsync(`devices/${bootstrap!.id}/commands/setpoint`, '19', { qos: 1 });
  t.is(await command, `devices/${bootstrap!.id}/commands/setpoint 19`);
  await t.throwsAsync(device.publish('/devices/other/x', 'x'), { message: /not a topic under/ });
  await t.throwsAsync(device.publish('+', 'x'), { message: /not a topic under/ });

  // A restart of the device uses the stored operational credential: no second enrollment.
  await device.stop();
  const again = new FleetDevice({ deviceId: bootstrap!.id, estUrl: fleet.estUrl, mqttUrl: fleet.server.mqttUrl, store: new FileCredentialStore((device as unknown as { options: { store: FileCredentialStore } }).options.store.dir) });
  t.teardown(() => again.stop(true));
  const againStates: string[] = [];
  again.on('state', (state) => againStates.push(state.type));
  await again.start();
  t.deepEqual(againStates, ['connecting', 'connected']);
  t.is((await fleet.server.registry.getDevice(bootstrap!.id))?.enrollments, 1);
});

test('renewal with certificates that live seconds, while publishing QoS 1 continuously: no message lost', async (t) => {
  const fleet = await startFleet(t, {
    config: testConfig({ enrollment: { clockSkewSeconds: 0, defaultModel: { certificateLifetimeSeconds: 4 }, models: {} } }),
  });
  const [bootstrap] = await factoryCredentials(t, fleet, 'camera');
  const consumer = await backend(t, fleet);
  const received = new Set<number>();
  consumer.on('message', (_topic, payload) => received.add(Number(payload.toString())));
  const device = await provisionedDevice(t, fleet, bootstrap!, { backoff: { initialMs: 100, maxMs: 1000, multiplier: 2 } });
  const renewals: string[] = [];
  device.on('renewed', (info) => renewals.push(info.serial));
  await device.start();

  // Publish a frame every 20 ms (a pace, not a wait) until the second renewal is done and a
  // second more has been sent on the renewed connection; bounded by a deadline.
  let sent = 0;
  const publishing: Promise<void>[] = [];
  const pace = setInterval(() => publishing.push(device.publish('events/frame', String(sent++), { qos: 1 })), 20);
  try {
    await waitFor(() => renewals.length >= 2, { what: () => `two renewals (${renewals.length} so far)`, timeoutMs: 20_000 });
    const target = sent + 50;
    await waitFor(() => sent >= target, { what: 'frames after the second renewal' });
  } finally {
    clearInterval(pace);
  }
  await Promise.all(publishing);
  // Every PUBACK is in; the backend's copies may still be on their way.
  await waitFor(() => received.size >= sent, { what: () => `${sent} frames at the backend (${received.size} so far)` });
  t.true(renewals.length >= 2, `renewed ${renewals.length} times`);
  t.is(new Set(renewals).size, renewals.length, 'a new certificate each time');
  const missing = Array.from({ length: sent }, (_, index) => index).filter((index) => !received.has(index));
  t.deepEqual(missing, [], `${sent} sent, ${received.size} received`);
  t.is((await fleet.server.registry.getDevice(bootstrap!.id))?.renewals, renewals.length);
});

test('a revoked device ends in state refused and stops connecting', async (t) => {
  const fleet = await startFleet(t);
  const [bootstrap] = await factoryCredentials(t, fleet, 'car');
  const device = await provisionedDevice(t, fleet, bootstrap!, { backoff: { initialMs: 50, maxMs: 200, multiplier: 2 } });
  await device.start();
  const refused = waitForState(device, (state) => state.type === 'refused', 10_000);
  await fleet.server.registry.changeState({ deviceId: bootstrap!.id, to: 'revoked', actor: 'operator:test', reason: 'stolen' });
  const state = await refused;
  t.like(state, { type: 'refused', code: 'ENROLL_DEVICE_REVOKED' });
  const connects = async (): Promise<string> => (await (await fetch(fleet.server.metricsUrl)).text()).split('\n').find((line) => line.startsWith('fleetgate_mqtt_refusals_total{code="BROKER_DEVICE_REVOKED"}')) ?? '';
  const before = await connects();
  // No retry can follow once the lifecycle loop has returned and no timer is left (MQTT.js does
  // not reconnect by itself: reconnectPeriod 0): wait for that instead of watching for a while.
  const internals = device as unknown as { lifecycle: Promise<void>; timers: Set<unknown> };
  await withDeadline(internals.lifecycle, { what: 'the refused device to end its connection loop' });
  t.is(internals.timers.size, 0, 'no retry scheduled');
  t.is(await connects(), before, 'no more connection attempts');
  t.is(device.state.type, 'refused');
});

test('an expired certificate: the broker refuses, the EST server says it is spent, the device enrolls again with its bootstrap credential', async (t) => {
  const fleet = await startFleet(t, {
    config: testConfig({ enrollment: { clockSkewSeconds: 0, renewalGraceSeconds: 0, defaultModel: { certificateLifetimeSeconds: 2 }, models: {} } }),
  });
  const [bootstrap] = await factoryCredentials(t, fleet, 'thermostat');
  // First life: enroll, then go offline before the renewal.
  const first = await provisionedDevice(t, fleet, bootstrap!, { renewal: { at: 10, jitter: 0 } });
  await first.start();
  const firstSerial = (first.state as { certificate: { serial: string } }).certificate.serial;
  const firstExpires = (first.state as { certificate: { notAfter: Date } }).certificate.notAfter;
  const storeDir = (first as unknown as { options: { store: FileCredentialStore } }).options.store.dir;
  await first.stop();
  // The broker and EST server judge expiry by the real clock (TLS): wait until it has passed.
  await untilClockPasses(firstExpires, { what: `the first certificate to expire (${firstExpires.toISOString()})` });
  // Second life: the device believes its certificate is still in grace (renewalGraceMs large).
  const second = new FleetDevice({ deviceId: bootstrap!.id, estUrl: fleet.estUrl, mqttUrl: fleet.server.mqttUrl, store: new FileCredentialStore(storeDir), renewalGraceMs: 86_400_000, renewal: { at: 10, jitter: 0 }, backoff: { initialMs: 50, maxMs: 200, multiplier: 2 } });
  t.teardown(() => second.stop(true));
  const states: string[] = [];
  second.on('state', (state) => { states.push(state.type); if (process.env.DEBUG_SDK) console.error(JSON.stringify(state)); });
  second.on('warning', (error) => { if (process.env.DEBUG_SDK) console.error('warning', error.message); });
  await second.start();
  t.is(second.state.type, 'connected', states.join(' → '));
  t.true(states.includes('enrolling'), states.join(' → '));
  const device = await fleet.server.registry.getDevice(bootstrap!.id);
  t.is(device?.enrollments, 2);
  t.not(device?.certSerial, firstSerial);
});

test('EST 429: the device honours Retry-After before enrolling', async (t) => {
  // One token, the next one 8 s later: long enough that it is still missing when the device asks,
  // even when the spender's start takes seconds on a loaded machine.
  const fleet = await startFleet(t, { config: testConfig({ est: { ratePerSecond: 0.125, rateBurst: 1 } }) });
  const [bootstrap, other] = await factoryCredentials(t, fleet, 'thermostat', 2);
  // Someone else takes the only token.
  const spender = await provisionedDevice(t, fleet, other!);
  await spender.start();
  const device = await provisionedDevice(t, fleet, bootstrap!, { backoff: { initialMs: 10, maxMs: 20, multiplier: 2 } });
  const waits: number[] = [];
  device.on('state', (state) => state.type === 'backing-off' && waits.push(state.delayMs));
  const started = Date.now();
  await device.start();
  t.is(device.state.type, 'connected');
  t.true(waits.length >= 1 && (waits[0] ?? 0) >= 1000, `waited ${waits.join(',')} ms`);
  t.true(Date.now() - started >= 1000);
});

test('stop() while the device is still enrolling: it stays stopped, and no connection is left open behind it', async (t) => {
  const fleet = await startFleet(t);
  const [bootstrap] = await factoryCredentials(t, fleet);
  const device = await provisionedDevice(t, fleet, bootstrap!);
  const enrolling = new Promise<void>((resolve) => device.on('state', (state: DeviceState) => state.type === 'enrolling' && resolve()));
  void device.start();
  await withDeadline(enrolling, { what: 'the device to start enrolling' });
  const states: string[] = [];
  device.on('state', (state: DeviceState) => states.push(state.type));
  await device.stop();
  t.is(device.state.type, 'stopped');
  // The enrollment in flight went on after stop(): the lifecycle must not connect with its result
  // (or must close what it opened before stop() returns).
  const summary = (await admin(fleet, 'GET', '/v1/summary')).json<{ connected: number }>();
  t.is(summary.connected, 0, `no MQTT session of the stopped device (states after stop(): ${states.join(', ')})`);
});
