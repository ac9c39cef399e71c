/**
 * Health and fleet metrics on the metrics port: `/healthz` (liveness), `/readyz` (registry
 * answers, every listener listens, not shutting down) including its 503 answers, the shutdown
 * drain, and the `fleetgate_devices{state,model}` gauge kept current on device changes, with the
 * scrape measured over 10,000 devices.
 */
import test from 'ava';
import { connect } from 'node:net';
import { once } from 'node:events';
import { mergeConfig, ConfigError, DEFAULT_CONFIG } from '../server/src/config/config.ts';
import { HealthState, listenerCheck } from '../server/src/metrics/health.ts';
import { LevelRegistry } from '../server/src/registry/level/level-registry.ts';
import type { DeviceRecord, DeviceState } from '../server/src/registry/types.ts';
import { admin } from './helpers/admin-client.ts';
import { enrolledDevices } from './helpers/device.ts';
import { makeDataDir, startFleet, testConfig, type Fleet } from './helpers/fleet.ts';
import { waitFor, withDeadline } from './helpers/wait.ts';

interface ReadyBody {
  status: string;
  checks: Record<string, string>;
  notReady: string[];
}

const endpoint = (fleet: Fleet, path: string): string => new URL(path, fleet.server.metricsUrl).toString();

async function readyz(fleet: Fleet): Promise<{ status: number; body: ReadyBody; type: string | null }> {
  const response = await fetch(endpoint(fleet, '/readyz'));
  return { status: response.status, type: response.headers.get('content-type'), body: (await response.json()) as ReadyBody };
}

/** Every `fleetgate_devices` series as `state/model` -> count. */
async function deviceGauge(fleet: Fleet): Promise<Record<string, number>> {
  const text = await (await fetch(fleet.server.metricsUrl)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const match = /^fleetgate_devices\{(.*)\} (\d+)$/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...(match[1] as string).matchAll(/(\w+)="([^"]*)"/g)].map((label) => [label[1], label[2]]));
    const count = Number(match[2]);
    if (count > 0) out[`${labels.state}/${labels.model}`] = count;
  }
  return out;
}

test('/healthz answers 200 ok (text); HEAD too; other paths 404, other methods 405', async (t) => {
  const fleet = await startFleet(t);
  const live = await fetch(endpoint(fleet, '/healthz'));
  t.is(live.status, 200);
  t.regex(live.headers.get('content-type') ?? '', /^text\/plain/);
  t.is(await live.text(), 'ok\n');
  const head = await fetch(endpoint(fleet, '/healthz'), { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(await head.text(), '');
  const missing = await fetch(endpoint(fleet, '/health'));
  t.is(missing.status, 404);
  t.regex(await missing.text(), /\/healthz, \/readyz/);
  const post = await fetch(endpoint(fleet, '/readyz'), { method: 'POST' });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD');
  t.is((await fetch(fleet.server.metricsUrl)).status, 200, '/metrics still answers');
});

test('/readyz answers 200 JSON naming every check while the registry answers and every listener listens', async (t) => {
  const fleet = await startFleet(t);
  const ready = await readyz(fleet);
  t.is(ready.status, 200);
  t.is(ready.type, 'application/json');
  t.deepEqual(ready.body, { status: 'ready', checks: { shutdown: 'ok', registry: 'ok', est: 'ok', mqtt: 'ok', admin: 'ok' }, notReady: [] });
});

test('/readyz answers 503 naming the registry once it is closed; /healthz stays 200', async (t) => {
  const fleet = await startFleet(t);
  await fleet.server.registry.close();
  const ready = await readyz(fleet);
  t.is(ready.status, 503);
  t.is(ready.body.status, 'not ready');
  t.is(ready.body.checks.registry, 'REGISTRY_CLOSED');
  t.deepEqual(ready.body.notReady, ['registry']);
  t.is((await fetch(endpoint(fleet, '/healthz'))).status, 200, 'the process is alive: liveness does not fail with readiness');
});

test('shutdown: /readyz goes 503 first and stays so for health.shutdownDrainMs while the listeners still accept', async (t) => {
  const config = { ...testConfig(), health: { shutdownDrainMs: 1500 } };
  const fleet = await startFleet(t, { config });
  t.is((await readyz(fleet)).status, 200);
  const closed = fleet.server.close();
  const draining = await readyz(fleet);
  t.is(draining.status, 503);
  t.is(draining.body.checks.shutdown, 'stopping');
  t.deepEqual(draining.body.notReady, ['shutdown'], 'only shutdown: every listener is still up');
  // The EST listener still accepts a TCP connection during the drain.
  const socket = connect(fleet.server.estPort, '127.0.0.1');
  await withDeadline(once(socket, 'connect'), { what: 'a TCP connection to EST during the drain' });
  socket.destroy();
  await withDeadline(closed, { what: 'the server to stop after the drain', timeoutMs: 20_000 });
  await t.throwsAsync(fetch(endpoint(fleet, '/readyz')), undefined, 'the metrics listener closed last');
});

test('shutdown without a drain: /readyz answers 503 from the moment close() is called', async (t) => {
  const fleet = await startFleet(t);
  const closed = fleet.server.close();
  t.true(fleet.server.health.shuttingDown);
  // Without a drain the listeners close within milliseconds; what /readyz would answer meanwhile:
  const during = await fleet.server.health.readiness();
  t.is(during.status, 503);
  t.is(during.body.checks.shutdown, 'stopping');
  await closed;
});

test('HealthState: a listener that does not listen, a check that throws, a check that hangs: 503 with each named', async (t) => {
  const health = new HealthState(100);
  health.add(listenerCheck('est', { listening: true }));
  health.add(listenerCheck('mqtt', { listening: false }));
  health.add({ name: 'registry', check: () => Promise.reject(Object.assign(new Error('closed'), { code: 'REGISTRY_CLOSED' })) });
  health.add({ name: 'slow', check: () => new Promise<string>(() => undefined) });
  health.add({ name: 'odd', check: () => { throw new Error('no code'); } });
  const readiness = await withDeadline(health.readiness(), { what: 'readiness with a hanging check' });
  t.is(readiness.status, 503);
  t.deepEqual(readiness.body.checks, { shutdown: 'ok', est: 'ok', mqtt: 'not listening', registry: 'REGISTRY_CLOSED', slow: 'no answer within 100 ms', odd: 'failed' });
  t.deepEqual(readiness.body.notReady, ['mqtt', 'registry', 'slow', 'odd']);
});

test('config health.shutdownDrainMs: default 0, integer 0..300000, unknown keys refused (CONFIG_INVALID)', (t) => {
  t.is(mergeConfig({}).health?.shutdownDrainMs, 0);
  t.is(DEFAULT_CONFIG.health?.shutdownDrainMs, 0);
  t.is(mergeConfig({ health: { shutdownDrainMs: 0 } }).health?.shutdownDrainMs, 0);
  t.is(mergeConfig({ health: { shutdownDrainMs: 15_000 } }).health?.shutdownDrainMs, 15_000);
  for (const bad of [{ shutdownDrainMs: -1 }, { shutdownDrainMs: 1.5 }, { shutdownDrainMs: '10' }, { shutdownDrainMs: 300_001 }, { drain: 5 }, 'x', null]) {
    const error = t.throws(() => mergeConfig({ health: bad }), { instanceOf: ConfigError }, JSON.stringify(bad));
    t.is(error?.code, 'CONFIG_INVALID');
    t.regex(error?.message ?? '', /^health/);
  }
  for (const bad of [{ historyPerDevice: 0 }, { historySummaryWindowMs: -5 }, { historyMaxOpen: 'many' }]) {
    t.throws(() => mergeConfig({ broker: { limits: bad } }), { instanceOf: ConfigError }, JSON.stringify(bad));
  }
});

test('fleetgate_devices{state,model} counts devices by state and model and follows state changes', async (t) => {
  const fleet = await startFleet(t);
  t.deepEqual(await deviceGauge(fleet), {}, 'no devices yet');
  const thermostats = await enrolledDevices(t, fleet, 'thermostat', 3);
  const [camera] = await enrolledDevices(t, fleet, 'camera', 1);
  t.deepEqual(await deviceGauge(fleet), { 'enrolled/thermostat': 3, 'enrolled/camera': 1 });
  const [first, second] = thermostats;
  t.is((await admin(fleet, 'POST', `/v1/devices/${first?.id}/disable`, { body: {} })).status, 200);
  t.is((await admin(fleet, 'POST', `/v1/devices/${second?.id}/revoke`, { body: {} })).status, 200);
  t.is((await admin(fleet, 'POST', `/v1/devices/${camera?.id}/disable`, { body: {} })).status, 200);
  t.deepEqual(await deviceGauge(fleet), { 'enrolled/thermostat': 1, 'disabled/thermostat': 1, 'revoked/thermostat': 1, 'disabled/camera': 1 });
  t.is((await admin(fleet, 'POST', `/v1/devices/${camera?.id}/enable`, { body: {} })).status, 200);
  // A pair that drops to zero stays exported as 0.
  const text = await (await fetch(fleet.server.metricsUrl)).text();
  t.regex(text, /^fleetgate_devices\{state="disabled",model="camera"\} 0$/m);
  t.deepEqual(await deviceGauge(fleet), { 'enrolled/thermostat': 1, 'disabled/thermostat': 1, 'revoked/thermostat': 1, 'enrolled/camera': 1 });
});

/** A device record as an issuance would write it (no certificate signing: the census reads records only). */
function syntheticDevice(index: number, state: DeviceState, model: string, certificateDays = 30): DeviceRecord {
  const time = new Date().toISOString();
  const serial = (0x100000 + index).toString(16);
  return {
    id: `${model}-${index.toString().padStart(8, '0')}`,
    model,
    state,
    certSerial: serial,
    certNotAfter: new Date(Date.now() + certificateDays * 86_400_000).toISOString(),
    bootstrap: { key: `ff:${serial}`, trust: 'fleetgate-factory', serial },
    enrollments: 1,
    renewals: 0,
    resetPending: false,
    createdAt: time,
    updatedAt: time,
  };
}

/** Writes a synthetic device as an enrollment would, with its certificate record (no DER). */
function recordIssued(registry: LevelRegistry, device: DeviceRecord): Promise<void> {
  return registry.commitIssuance({
    kind: 'enroll',
    device,
    certificate: { serial: device.certSerial, deviceId: device.id, kind: 'operational', notBefore: device.createdAt, notAfter: device.certNotAfter, issuedAt: device.createdAt, status: 'valid', der: '' },
    expect: { currentSerial: undefined },
    audit: { type: 'enrolled', deviceId: device.id, actor: 'system' },
  });
}

/** Median time of 20 scrapes of /metrics, one after the other. */
async function scrapeMedian(fleet: Fleet): Promise<{ median: number; max: number }> {
  const times: number[] = [];
  for (let round = 0; round < 20; round++) {
    const at = performance.now();
    await (await fetch(fleet.server.metricsUrl)).text();
    times.push(performance.now() - at);
  }
  times.sort((a, b) => a - b);
  return { median: times[10] as number, max: times.at(-1) as number };
}

test('10,000 devices: the gauge is counted once at start and a scrape does not read the registry (timed)', async (t) => {
  // The same scrape over an empty registry, as the yardstick (the process metrics cost the same).
  const empty = await startFleet(t);
  const emptyScrape = await scrapeMedian(empty);
  await empty.server.close();
  const data = await makeDataDir(t);
  const models = ['thermostat', 'camera', 'car'];
  const states: DeviceState[] = ['enrolled', 'enrolled', 'enrolled', 'disabled', 'revoked'];
  const expected: Record<string, number> = {};
  const seeded = await LevelRegistry.open(data.layout.registry);
  const seedStart = performance.now();
  await Promise.all(
    Array.from({ length: 10_000 }, (_, index) => {
      const device = syntheticDevice(index, states[index % states.length] as DeviceState, models[index % models.length] as string);
      expected[`${device.state}/${device.model}`] = (expected[`${device.state}/${device.model}`] ?? 0) + 1;
      return recordIssued(seeded, device);
    }),
  );
  t.log(`seeded 10,000 devices in ${Math.round(performance.now() - seedStart)} ms`);
  const scanStart = performance.now();
  t.is((await seeded.listDevices()).length, 10_000);
  const scanMs = performance.now() - scanStart;
  await seeded.close();

  const startAt = performance.now();
  const fleet = await startFleet(t, { dataDir: data });
  const startMs = performance.now() - startAt;
  t.deepEqual(await deviceGauge(fleet), expected);
  const { median, max } = await scrapeMedian(fleet);
  t.log(
    `scrape with 10,000 devices: median ${median.toFixed(2)} ms (max ${max.toFixed(2)}) over 20; with no devices: median ${emptyScrape.median.toFixed(2)} ms; ` +
      `one registry scan of the devices: ${scanMs.toFixed(1)} ms; server start (census included): ${Math.round(startMs)} ms`,
  );
  // The point is that the scrape does not scan: it costs less than one scan of the registry.
  t.true(median < Math.max(scanMs, 50), `median scrape ${median.toFixed(2)} ms, registry scan ${scanMs.toFixed(1)} ms`);

  // A change after the start moves one device between series, without a rescan.
  const device = syntheticDevice(0, 'enrolled', 'thermostat');
  await fleet.server.registry.changeState({ deviceId: device.id, to: 'disabled', actor: 'operator:test' });
  await waitFor(async () => (await deviceGauge(fleet))['disabled/thermostat'] === (expected['disabled/thermostat'] ?? 0) + 1, { what: 'the gauge to follow the change' });
  t.is((await deviceGauge(fleet))['enrolled/thermostat'], (expected['enrolled/thermostat'] ?? 0) - 1);
});

test('fleetgate_certificates_expiring_7d counts the enrolled devices whose certificate ends within 7 days, from the devices read at start', async (t) => {
  const data = await makeDataDir(t);
  const seeded = await LevelRegistry.open(data.layout.registry);
  // [state, days until the certificate ends]: two enrolled devices within 7 days (one of them
  // already ended), and devices that must not count.
  const devices: [DeviceState, number][] = [
    ['enrolled', 2],
    ['enrolled', -1],
    ['enrolled', 20],
    ['disabled', 2],
    ['revoked', 2],
  ];
  for (const [index, [state, days]] of devices.entries()) {
    const device = syntheticDevice(index, state, 'thermostat', days);
    await recordIssued(seeded, device);
  }
  await seeded.close();
  const fleet = await startFleet(t, { dataDir: data });
  const text = await (await fetch(fleet.server.metricsUrl)).text();
  t.regex(text, /^fleetgate_certificates_expiring_7d 2$/m);
});
