/**
 * A device's broker history: refused CONNECTs and dropped sessions, kept out of the audit chain,
 * summarised (identical events within a window are one entry with a count), bounded per device
 * and in memory, written in batches; named only from verified identities. Unit tests of the
 * recorder over a real LevelDB registry with a fake clock, then the real server: the admin API's
 * `brokerEvents` and `fleetgate device show`.
 */
import test, { type ExecutionContext } from 'ava';
import { once, type EventEmitter } from 'node:events';
import { connect as tlsConnect } from 'node:tls';
import mqttPacket from 'mqtt-packet';
import { pino } from 'pino';
import { DeviceHistoryRecorder, type HistoryOutcome } from '../server/src/broker/device-history.ts';
import { LevelRegistry } from '../server/src/registry/level/level-registry.ts';
import { stopSharedPostgres } from './helpers/postgres.ts';
import { ENGINES, type RegistryEngine } from './helpers/registries.ts';
import type { DeviceEventRecord } from '../server/src/registry/types.ts';
import { admin } from './helpers/admin-client.ts';
import { fleetgate } from './helpers/cli.ts';
import { connackCode, connectMqtt, enrolledDevices } from './helpers/device.ts';
import { mintDeviceCredential, startFleet, testConfig, type Fleet } from './helpers/fleet.ts';
import { manufacturer } from './helpers/manufacturer.ts';
import { metric } from './helpers/sockets.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { nextEvent, waitFor, withDeadline } from './helpers/wait.ts';

const silent = pino({ level: 'silent' });
const T0 = Date.parse('2026-12-01T10:00:00.000Z');

/** A recorder over a fresh registry, with a clock the test moves. */
async function recorder(t: ExecutionContext, engine: RegistryEngine, limits: Partial<{ keepPerDevice: number; summaryWindowMs: number; maxOpen: number }> = {}) {
  const { registry } = await engine.create(t);
  const clock = { now: T0 };
  const outcomes: HistoryOutcome[] = [];
  const history = new DeviceHistoryRecorder(
    registry,
    { keepPerDevice: 50, summaryWindowMs: 60_000, maxOpen: 1000, flushMs: 3_600_000, ...limits },
    silent,
    (outcome) => outcomes.push(outcome),
    () => clock.now,
  );
  t.teardown(() => history.close());
  return { registry, clock, outcomes, history };
}

test.after.always(stopSharedPostgres);

for (const engine of ENGINES) {
  test(`${engine.name}: 500 identical refusals within a minute are one entry with a count and a span, none in the audit log`, async (t) => {
    const { registry, clock, outcomes, history } = await recorder(t, engine);
    for (let i = 0; i < 500; i++) {
      clock.now = T0 + i * 100;
      history.refused('thermostat-1', 'BROKER_DEVICE_REVOKED', '127.0.0.1', 'thermostat-1');
      // Written several times along the way: the one entry is rewritten, not repeated.
      if (i % 100 === 0) await history.flush();
    }
    await history.flush();
    const events = await registry.listDeviceEvents('thermostat-1');
    t.deepEqual(events, [
      { deviceId: 'thermostat-1', kind: 'refused', code: 'BROKER_DEVICE_REVOKED', first: '2026-12-01T10:00:00.000Z', last: '2026-12-01T10:00:49.900Z', count: 500, peer: '127.0.0.1', detail: 'thermostat-1' },
    ]);
    t.is(outcomes.filter((outcome) => outcome === 'entry').length, 1);
    t.is(outcomes.filter((outcome) => outcome === 'summarised').length, 499);
    t.deepEqual(await registry.readAudit(), [], 'nothing went to the audit chain');
    t.true((await registry.verifyAudit()).ok);
  });

  test(`${engine.name}: after the window a new entry starts; the closed one keeps its last count; kinds and codes are apart`, async (t) => {
    const { registry, clock, history } = await recorder(t, engine);
    history.refused('cam-1', 'BROKER_DEVICE_DISABLED', '127.0.0.1');
    clock.now = T0 + 30_000;
    history.refused('cam-1', 'BROKER_DEVICE_DISABLED', '127.0.0.2');
    history.dropped('cam-1', 'takeover', '127.0.0.3');
    clock.now = T0 + 60_000;
    // The window of the first entry has passed: its last change was never written, it must be now.
    history.refused('cam-1', 'BROKER_DEVICE_DISABLED', '127.0.0.4');
    history.refused('cam-2', 'BROKER_DEVICE_DISABLED', '127.0.0.5');
    await history.flush();
    const summary = (events: DeviceEventRecord[]): string[] => events.map((event) => `${event.first} ${event.kind} ${event.code} x${event.count} ${event.peer}`);
    t.deepEqual(summary(await registry.listDeviceEvents('cam-1')), [
      '2026-12-01T10:01:00.000Z refused BROKER_DEVICE_DISABLED x1 127.0.0.4',
      '2026-12-01T10:00:30.000Z dropped takeover x1 127.0.0.3',
      '2026-12-01T10:00:00.000Z refused BROKER_DEVICE_DISABLED x2 127.0.0.2',
    ]);
    t.deepEqual(summary(await registry.listDeviceEvents('cam-2')), ['2026-12-01T10:01:00.000Z refused BROKER_DEVICE_DISABLED x1 127.0.0.5']);
    t.deepEqual(summary(await registry.listDeviceEvents('cam-1', 1)), ['2026-12-01T10:01:00.000Z refused BROKER_DEVICE_DISABLED x1 127.0.0.4'], 'limit');
    t.deepEqual(await registry.listDeviceEvents('cam'), [], 'a prefix of an id is not the id');
  });

  test(`${engine.name}: each device keeps its newest historyPerDevice entries`, async (t) => {
    const { registry, clock, history } = await recorder(t, engine, { keepPerDevice: 3, summaryWindowMs: 1000 });
    for (let i = 0; i < 7; i++) {
      clock.now = T0 + i * 1000;
      history.dropped('car-1', 'connection-lost', undefined);
      // Two entries in one batch sometimes, one in others.
      if (i % 2 === 1) await history.flush();
    }
    await history.flush();
    const events = await registry.listDeviceEvents('car-1');
    t.deepEqual(events.map((event) => event.first), ['2026-12-01T10:00:06.000Z', '2026-12-01T10:00:05.000Z', '2026-12-01T10:00:04.000Z']);
    t.false('peer' in (events[0] as object), 'no peer: no field');
  });

  test(`${engine.name}: historyMaxOpen bounds memory: an event that needs one more open entry is counted as dropped, not recorded`, async (t) => {
    const { registry, clock, outcomes, history } = await recorder(t, engine, { maxOpen: 2 });
    history.refused('d-1', 'BROKER_CERT_REVOKED', undefined);
    history.refused('d-2', 'BROKER_CERT_REVOKED', undefined);
    history.refused('d-3', 'BROKER_CERT_REVOKED', undefined);
    history.refused('d-1', 'BROKER_CERT_REVOKED', undefined);
    t.deepEqual(outcomes, ['entry', 'entry', 'dropped', 'summarised']);
    clock.now = T0 + 60_000;
    history.refused('d-3', 'BROKER_CERT_REVOKED', undefined);
    t.is(outcomes.at(-1), 'entry', 'once the window passed, the expired entries make room');
    await history.flush();
    t.is((await registry.listDeviceEvents('d-1'))[0]?.count, 2);
    t.is((await registry.listDeviceEvents('d-3')).length, 1);
    const detail = 'x'.repeat(5000);
    history.refused('d-4', 'BROKER_CLIENT_ID_MISMATCH', undefined, detail);
    await history.flush();
    t.is((await registry.listDeviceEvents('d-4'))[0]?.detail?.length, 200, 'a long detail is cut');
  });
}

interface DetailJson {
  history: { type: string }[];
  brokerEvents: DeviceEventRecord[];
}

async function brokerEvents(fleet: Fleet, id: string): Promise<DeviceEventRecord[]> {
  const answer = await admin(fleet, 'GET', `/v1/devices/${id}`);
  if (answer.status !== 200) throw new Error(`GET /v1/devices/${id}: ${answer.status} ${answer.body.toString()}`);
  return answer.json<DetailJson>().brokerEvents;
}

/** Waits until the device's history holds an entry of this kind and code (with at least `count`). */
function eventOf(fleet: Fleet, id: string, kind: string, code: string, count = 1): Promise<DeviceEventRecord> {
  let seen: DeviceEventRecord[] = [];
  return waitFor(
    async () => {
      seen = await brokerEvents(fleet, id);
      return seen.find((event) => event.kind === kind && event.code === code && event.count >= count);
    },
    { what: () => `${kind} ${code} x${count} in the history of ${id} (seen: ${JSON.stringify(seen)})` },
  );
}

test('a revoked device refused 20 times: one summarised entry in the admin API, the audit log unchanged, fleetgate device show prints it', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet, 'thermostat', 1);
  if (!device) throw new Error('no device');
  t.is((await admin(fleet, 'POST', `/v1/devices/${device.id}/revoke`, { body: { reason: 'keyCompromise' } })).status, 200);
  const auditBefore = (await fleet.server.registry.readAudit()).length;
  for (let i = 0; i < 20; i++) t.is(await connackCode(fleet, device.operational), 5);
  const entry = await eventOf(fleet, device.id, 'refused', 'BROKER_DEVICE_REVOKED', 20);
  t.is(entry.count, 20);
  t.is(entry.peer, '127.0.0.1');
  t.true(entry.first <= entry.last);
  t.is((await brokerEvents(fleet, device.id)).filter((event) => event.kind === 'refused').length, 1, 'one entry, not twenty');
  t.is((await fleet.server.registry.readAudit()).length, auditBefore, 'no audit entry per refusal');
  t.true((await fleet.server.registry.verifyAudit()).ok);
  t.true((await metric(fleet.server.metricsUrl, 'fleetgate_device_history_events_total{outcome="summarised"}')) >= 19);

  const args = [device.id, '--data', fleet.dir, '--server', fleet.server.adminUrl];
  const [human, json] = await Promise.all([fleetgate(['device', 'show', ...args]), fleetgate(['device', 'show', ...args, '--json'])]);
  t.is(human.code, 0, human.stderr);
  t.regex(human.stdout, /Broker events \(newest first/);
  t.regex(human.stdout, /^ {2}\S+ \S+Z\s+refused\s+BROKER_DEVICE_REVOKED\s+x20 until \S+ \S+Z\s+.*from 127\.0\.0\.1$/m);
  t.is(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout) as DetailJson;
  t.is(parsed.brokerEvents.find((event) => event.code === 'BROKER_DEVICE_REVOKED')?.count, 20);
});

test('session drops: revocation, disable, takeover, client disconnect and keepalive timeout each name their reason', async (t) => {
  const fleet = await startFleet(t);
  const [revoked, disabled, taken, leaving, silentOne] = await enrolledDevices(t, fleet, 'thermostat', 5);
  if (!revoked || !disabled || !taken || !leaving || !silentOne) throw new Error('devices missing');

  const revokedClient = await connectMqtt(t, fleet, revoked.operational);
  const revokedClosed = nextEvent(revokedClient as unknown as EventEmitter, 'close', { what: 'the revoked session to be closed' });
  t.is((await admin(fleet, 'POST', `/v1/devices/${revoked.id}/revoke`, { body: {} })).status, 200);
  await revokedClosed;
  await eventOf(fleet, revoked.id, 'dropped', 'BROKER_DEVICE_REVOKED');

  const disabledClient = await connectMqtt(t, fleet, disabled.operational);
  const disabledClosed = nextEvent(disabledClient as unknown as EventEmitter, 'close', { what: 'the disabled session to be closed' });
  t.is((await admin(fleet, 'POST', `/v1/devices/${disabled.id}/disable`, { body: {} })).status, 200);
  await disabledClosed;
  t.is(await connackCode(fleet, disabled.operational), 5);
  await eventOf(fleet, disabled.id, 'dropped', 'BROKER_DEVICE_DISABLED');
  await eventOf(fleet, disabled.id, 'refused', 'BROKER_DEVICE_DISABLED');

  await connectMqtt(t, fleet, taken.operational);
  await connectMqtt(t, fleet, taken.operational);
  const takeover = await eventOf(fleet, taken.id, 'dropped', 'takeover');
  t.is(takeover.count, 1);

  const leavingClient = await connectMqtt(t, fleet, leaving.operational);
  await leavingClient.endAsync();
  await eventOf(fleet, leaving.id, 'dropped', 'client-disconnect');

  // A raw client that asks for a 1 s keepalive and then says nothing: aedes closes it after 1.5 s.
  const socket = tlsConnect({ host: '127.0.0.1', port: fleet.server.mqttPort, ca: fleet.rootPem, cert: silentOne.operational.certPem, key: silentOne.operational.keyPem, servername: 'localhost' });
  t.teardown(() => socket.destroy());
  await withDeadline(once(socket, 'secureConnect'), { what: 'the raw TLS connection' });
  socket.on('data', () => undefined);
  socket.write(mqttPacket.generate({ cmd: 'connect', clientId: silentOne.id, keepalive: 1, protocolVersion: 4, protocolId: 'MQTT', clean: true }));
  await withDeadline(once(socket, 'close'), { what: 'the broker to close the silent client' });
  await eventOf(fleet, silentOne.id, 'dropped', 'keepalive-timeout');

  // The audit log holds the operator's decisions, not the broker's connection events.
  const audit = await fleet.server.registry.readAudit();
  t.false(audit.some((entry) => entry.type === 'refused' && entry.code?.startsWith('BROKER_')));
});

test('only verified identities are named: an untrusted or expired certificate naming a device writes nothing under it; a client id mismatch is filed under the certificate\'s device', async (t) => {
  const fleet = await startFleet(t, { config: testConfig() });
  const [victim, holder] = await enrolledDevices(t, fleet, 'thermostat', 2);
  if (!victim || !holder) throw new Error('devices missing');
  const forged = await (await manufacturer('forger')).device(victim.id);
  t.is(await connackCode(fleet, forged), 5, 'untrusted certificate refused');
  const expired = await mintDeviceCredential(fleet, { id: victim.id, ca: 'issuing', notBefore: new Date(Date.now() - 2 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
  t.is(await connackCode(fleet, expired), 5, 'expired certificate refused');
  // A verified certificate of another device asking for the victim's client id.
  t.is(await connackCode(fleet, holder.operational, { clientId: victim.id }), 5);
  const mismatch = await eventOf(fleet, holder.id, 'refused', 'BROKER_CLIENT_ID_MISMATCH');
  t.regex(mismatch.detail ?? '', new RegExp(victim.id));
  // The refusals above were noted in order, and the last one is written: the earlier ones would be too.
  t.deepEqual(await brokerEvents(fleet, victim.id), [], 'nothing under the name an unverified certificate claimed');
  t.true((await metric(fleet.server.metricsUrl, 'fleetgate_mqtt_refusals_total{code="BROKER_CERT_UNTRUSTED"}')) >= 1);
  t.true((await metric(fleet.server.metricsUrl, 'fleetgate_mqtt_refusals_total{code="BROKER_CERT_EXPIRED"}')) >= 1);
});

test('history is flushed at shutdown', async (t) => {
  const fleet = await startFleet(t, { config: testConfig({ brokerLimits: { presenceFlushMs: 3_600_000 } }) });
  const [device] = await enrolledDevices(t, fleet, 'camera', 1);
  if (!device) throw new Error('no device');
  await fleet.server.registry.changeState({ deviceId: device.id, to: 'disabled', actor: 'operator:test' });
  await waitFor(async () => (await connackCode(fleet, device.operational)) === 5, { what: 'the disabled device to be refused' });
  t.deepEqual(await fleet.server.registry.listDeviceEvents(device.id), [], 'not written before the (hour-long) interval');
  await fleet.server.close();
  const reopened = await LevelRegistry.open(fleet.layout.registry);
  t.teardown(() => reopened.close());
  const events = await reopened.listDeviceEvents(device.id);
  t.is(events[0]?.code, 'BROKER_DEVICE_DISABLED');
});
