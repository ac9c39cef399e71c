import test, { type ExecutionContext } from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { connect, connectAsync, type IConnackPacket } from 'mqtt';
import { Progress, parseSimArgs, simulate, type AckExport, type SimOptions } from '../simulator/src/index.ts';
import { startServer } from '../server/src/server.ts';
import { mqttOptions } from './helpers/device.ts';
import { serviceCredential, startFleet, testConfig, type Fleet } from './helpers/fleet.ts';
import { Ingest } from './helpers/ingest.ts';
import { freePort } from './helpers/ports.ts';
import { run } from './helpers/run.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { SOURCE_NODE_ARGS } from './helpers/source-node.ts';
import { NoteWatcher } from './helpers/sim-notes.ts';
import { waitFor, withDeadline } from './helpers/wait.ts';

const SIM_BIN = new URL('../simulator/bin/fleetgate-sim.js', import.meta.url).pathname;
const quiet = new Progress(process.stderr, true);

async function options(t: ExecutionContext, fleet: Fleet, extra: string[]): Promise<SimOptions> {
  const parsed = parseSimArgs(['--est', fleet.estUrl, '--mqtt', fleet.server.mqttUrl, '--admin', fleet.server.adminUrl, '--data', fleet.dir, '--report', await tempDir(t, 'fleetgate-sim-'), ...extra]);
  if (!parsed) throw new Error('help');
  return parsed;
}

test('fleetgate-sim --help, and usage errors exit 2 with a code', async (t) => {
  const help = await run(process.execPath, [...SOURCE_NODE_ARGS, SIM_BIN, '--help']);
  t.is(help.code, 0);
  for (const flag of ['--devices', '--mix', '--rate', '--duration', '--est', '--mqtt', '--root', '--data', '--factory', '--report', '--scenario', '--max-error-rate', '--persistent-sessions', '--export-acks', '--metrics', '--no-metrics', '--stop-timeout']) t.true(help.stdout.includes(flag), flag);
  for (const args of [['--devices', '10'], ['--devices', '0', '--data', 'x'], ['--mix', 'thermostat', '--data', 'x'], ['--scenario', 'chaos', '--data', 'x'], ['--duration', 'soon', '--data', 'x'], ['--source-addresses', '10.0.0.1', '--data', 'x']]) {
    const result = await run(process.execPath, [...SOURCE_NODE_ARGS, SIM_BIN, ...args]);
    t.is(result.code, 2, args.join(' '));
    t.regex(result.stderr, /SIM_USAGE/);
  }
});

test('steady: a mixed fleet enrolls, connects and sends telemetry; JSON and HTML reports are written', async (t) => {
  const fleet = await startFleet(t);
  const outcome = await simulate(await options(t, fleet, ['--devices', '30', '--rate', '50/s', '--duration', '20s', '--traffic-scale', '0.01']), quiet);
  const { totals } = outcome.report;
  t.is(totals.enrolled, 30);
  t.is(totals.connected, 30, JSON.stringify(outcome.report.errorsByCode));
  t.true(totals.messagesSent > 30, `${totals.messagesSent} messages`);
  t.is(totals.messagesFailed, 0);
  t.is(totals.errors, 0, JSON.stringify(outcome.report.errorsByCode));
  t.true(outcome.passed);
  t.is(outcome.report.latency.enrollMs.count, 30);
  t.true(outcome.report.series.length >= 3);
  // When the last device first connected, in wall-clock seconds: within the run, and no later
  // than the first point of the series that counts all 30 connected. A bound of seconds would
  // measure the machine: the fleet is connected after 0.8 s on a quiet machine, and took 10 s or
  // more once in a fresh-clone CI run beside the rest of the suite (with no error and no retry).
  const allConnected = totals.allConnectedAfterSeconds;
  const latencies = `enrollment ${JSON.stringify(outcome.report.latency.enrollMs)}, connect ${JSON.stringify(outcome.report.latency.connectMs)}`;
  t.true(allConnected !== null && allConnected > 0 && allConnected < outcome.report.timing.fleetPhaseSeconds, `all connected after ${String(allConnected)} s; ${latencies}`);
  const firstFull = outcome.report.series.find((point) => point.states.connected === 30);
  t.true(firstFull !== undefined && Number(allConnected) <= firstFull.t, `all connected after ${String(allConnected)} s, first point with 30 connected at ${String(firstFull?.t)} s`);
  t.deepEqual(outcome.report.nodes, { devicesPerNode: { [fleet.server.mqttUrl]: 30 }, failovers: 0, endpointMoves: { est: 0, mqtt: 0 } });
  const models = (await fleet.server.registry.listDevices()).map((device) => device.model);
  t.deepEqual([...new Set(models)].sort(), ['camera', 'car', 'thermostat']);
  t.deepEqual(JSON.parse(await readFile(outcome.jsonPath, 'utf8')).totals, totals);
  const html = await readFile(outcome.htmlPath, 'utf8');
  t.regex(html, /<svg/);
  t.regex(html, /Enrollment latency/);
  t.notRegex(html, /<script/, 'self-contained, no scripts');
});

test('revocation-sweep: revoked devices are dropped and stay refused, the others stay connected', async (t) => {
  const fleet = await startFleet(t);
  const outcome = await simulate(await options(t, fleet, ['--devices', '20', '--rate', 'all', '--duration', '2s', '--scenario', 'revocation-sweep', '--revoke-share', '0.25', '--traffic-scale', '0.05']), quiet);
  const [sweep] = outcome.report.scenarios;
  t.like(sweep, { name: 'revocation-sweep', revoked: 5, apiFailures: 0, refused: 5, reconnectsAfterRefusal: 0, othersStillConnected: 15, others: 15 });
  // About 60 ms on a quiet machine. The one-second promise is held by the broker and admin API
  // tests of a single device; here 20 simulated clients share the 2 cores with whatever else the
  // suite runs (npm pack builds), which has stretched the slowest drop past a second in CI.
  t.true(Number(sweep?.dropMaxMs) >= 0 && Number(sweep?.dropMaxMs) < 5000, `dropped within ${String(sweep?.dropMaxMs)} ms`);
  t.is(outcome.report.totals.refused, 5);
  t.is((await fleet.server.registry.listDevices({ state: 'revoked' })).length, 5);
});

test('renewal-storm: every device renews at once and keeps its connection', async (t) => {
  const fleet = await startFleet(t);
  const outcome = await simulate(await options(t, fleet, ['--devices', '12', '--rate', 'all', '--duration', '1s', '--scenario', 'renewal-storm', '--traffic-scale', '0.01']), quiet);
  t.like(outcome.report.scenarios[0], { name: 'renewal-storm', devices: 12, renewed: 12, failed: 0 });
  t.is(outcome.report.totals.renewed, 12);
  t.is(outcome.report.totals.messagesFailed, 0);
  const devices = await fleet.server.registry.listDevices();
  t.true(devices.every((device) => device.renewals === 1));
});

test('reconnect-storm: the server restarts mid-run; every device comes back, spread out', async (t) => {
  const config = testConfig();
  const fleet = await startFleet(t, { config });
  const watching = new NoteWatcher();
  const waiting = watching.line(/reconnect-storm: waiting for the server to be restarted/, 'the simulator to wait for the restart');
  const simulation = simulate(await options(t, fleet, ['--devices', '40', '--rate', 'all', '--duration', '2s', '--scenario', 'reconnect-storm', '--traffic-scale', '0.05']), watching);
  // Should a wait below fail, the run goes on after teardown removed its directory: its error
  // then belongs to nobody (the test has already failed with the wait's message).
  simulation.catch(() => undefined);
  // Restart the server once the simulator watches for the drop and the whole fleet is connected.
  await waiting;
  await waitFor(async () => (await fleet.server.metrics.mqttConnected.get()).values[0]?.value === 40, { what: 'all 40 devices connected', timeoutMs: 30_000 });
  const { estPort, mqttPort } = fleet.server;
  await fleet.server.close();
  const restarted = await startServer({ dataDir: fleet.dir, listen: { host: '127.0.0.1', estPort, mqttPort, adminPort: 0, metricsPort: 0 }, logger: pino({ level: 'silent' }), config });
  t.teardown(() => restarted.close());
  const outcome = await simulation;
  const storm = outcome.report.scenarios[0];
  t.like(storm, { name: 'reconnect-storm', disconnected: 40, reconnected: 40, allBack: true });
  t.true(Number(storm?.reconnectSpreadMs) > 200, `spread ${String(storm?.reconnectSpreadMs)} ms`);
});

test('the exit code is 1 when errors exceed --max-error-rate (broker unreachable)', async (t) => {
  const fleet = await startFleet(t);
  const closedPort = await freePort();
  const report = await tempDir(t);
  const result = await run(process.execPath, [...SOURCE_NODE_ARGS, SIM_BIN, '--devices', '5', '--rate', 'all', '--duration', '10s', '--settle', '2s', '--est', fleet.estUrl, '--mqtt', `mqtts://127.0.0.1:${closedPort}`, '--data', fleet.dir, '--report', report, '--max-error-rate', '0.01', '--json'], { timeoutMs: 200_000 });
  t.is(result.code, 1, result.stderr);
  const parsed = JSON.parse(result.stdout) as { totals: { errors: number; connected: number }; errorsByCode: Record<string, number> };
  t.is(parsed.totals.connected, 0);
  t.true(parsed.totals.errors > 0);
  t.truthy(await readFile(join(report, 'latest.html'), 'utf8'));
});

test('the same devices run their connect and publish phases against mosquitto (credentials exported, MQTT only)', async (t) => {
  const fleet = await startFleet(t);
  const exported = join(await tempDir(t), 'credentials');
  const first = await simulate(await options(t, fleet, ['--devices', '10', '--rate', 'all', '--duration', '15s', '--traffic-scale', '0.01', '--export-credentials', exported]), quiet);
  t.is(first.report.totals.connected, 10);
  const { startMosquitto } = await import('./helpers/mosquitto.ts');
  const mosquitto = await startMosquitto(t, fleet);
  const parsed = parseSimArgs(['--credentials', exported, '--mqtt', mosquitto.url, '--est', 'https://127.0.0.1:1', '--devices', '10', '--rate', 'all', '--duration', '10s', '--traffic-scale', '0.01', '--report', await tempDir(t)]);
  if (!parsed) throw new Error('help');
  const second = await simulate(parsed, quiet);
  t.is(second.report.totals.enrolled, 0, 'no enrollment: operational credentials');
  t.is(second.report.totals.connected, 10);
  t.true(second.report.totals.messagesAcknowledged > 0);
  t.is(second.report.totals.errors, 0, JSON.stringify(second.report.errorsByCode));
});

test('--workers: the fleet runs in worker threads and the report sums them', async (t) => {
  const fleet = await startFleet(t);
  const outcome = await simulate(await options(t, fleet, ['--devices', '12', '--rate', 'all', '--duration', '15s', '--workers', '2', '--traffic-scale', '0.01']), quiet);
  t.is(outcome.report.settings.workers, 2);
  t.is(outcome.report.totals.enrolled, 12);
  t.is(outcome.report.totals.connected, 12);
  t.is(outcome.report.latency.enrollMs.count, 12, 'latency samples merged from both workers');
  const { timing } = outcome.report;
  t.true(timing.fleetPhaseSeconds >= 15, `the workers ran to the 15 s deadline (${timing.fleetPhaseSeconds} s)`);
  t.true(timing.stopSeconds <= timing.stopTimeoutSeconds + 5, `stop ${timing.stopSeconds} s within its bound`);
  t.deepEqual(outcome.report.nodes.devicesPerNode, { [fleet.server.mqttUrl]: 12 }, 'devices per node summed from both workers, taken before they stopped');
  t.is((await fleet.server.registry.listDevices()).length, 12);
  t.throws(() => parseSimArgs(['--data', 'x', '--workers', '2', '--scenario', 'revocation-sweep']), { message: /steady and enroll-storm/ });
});

test('--persistent-sessions and --export-acks: every QoS 1 message a device got a PUBACK for reaches a backend, by its number; the sessions persist', async (t) => {
  const fleet = await startFleet(t);
  const service = await serviceCredential(t, fleet);
  const backend = await connectAsync(fleet.server.mqttUrl, mqttOptions(fleet, service, { clientId: 'backend:ingest', clean: false }));
  t.teardown(() => backend.endAsync(true));
  const ingest = new Ingest(backend);
  await backend.subscribeAsync('devices/#', { qos: 1 });
  const dir = await tempDir(t);
  const acksPath = join(dir, 'acks.json');
  const exported = join(dir, 'credentials');
  const outcome = await simulate(await options(t, fleet, ['--devices', '12', '--mix', 'thermostat=50,camera=50', '--rate', 'all', '--duration', '10s', '--traffic-scale', '0.02', '--persistent-sessions', '--export-acks', acksPath, '--export-credentials', exported]), quiet);
  t.is(outcome.report.totals.errors, 0, JSON.stringify(outcome.report.errorsByCode));
  const acks = JSON.parse(await readFile(acksPath, 'utf8')) as AckExport;
  t.is(acks.format, 'fleetgate-sim-acks/1');
  t.is(Object.keys(acks.devices).length, 12, 'every device listed');
  t.is(acks.count, Object.values(acks.devices).reduce((sum, numbers) => sum + numbers.length, 0));
  t.true(acks.count > 12, `${acks.count} acknowledged`);
  t.is(acks.count, outcome.report.totals.messagesAcknowledged, 'thermostats and cameras publish QoS 1 only');
  let missing: string[] = [];
  await waitFor(() => (missing = ingest.missing(acks)).length === 0, { what: () => `the backend to receive every acknowledged message (missing ${missing.slice(0, 10).join(', ')})` });
  t.is(ingest.unnumbered, 0, 'every payload carries its number');

  // The broker kept a thermostat's session (and its commands subscription) after the run.
  const thermostat = Object.keys(acks.devices).find((id) => id.startsWith('thermostat-'));
  if (!thermostat) throw new Error('no thermostat');
  const credential = { id: thermostat, certPem: await readFile(join(exported, `${thermostat}.crt`), 'utf8'), keyPem: await readFile(join(exported, `${thermostat}.key`), 'utf8') };
  const again = connect(fleet.server.mqttUrl, mqttOptions(fleet, credential, { clean: false }));
  t.teardown(() => again.endAsync(true));
  const connack = await withDeadline(
    new Promise<IConnackPacket>((resolve, reject) => {
      again.once('connect', resolve);
      again.once('error', reject);
    }),
    { what: "the thermostat's CONNACK" },
  );
  t.true(connack.sessionPresent, 'session present: the simulated device connected with clean session off');

  t.throws(() => parseSimArgs(['--data', 'x', '--workers', '2', '--export-acks', 'acks.json']), { message: '--export-acks needs --workers 1' });
});
