import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BROKER_ERRORS, type BrokerErrorCode } from '../server/src/broker/errors.ts';
import { DEFAULT_CONFIG, type BrokerLimits } from '../server/src/config/config.ts';
import { Metrics } from '../server/src/metrics/metrics.ts';
import { connackCode, connectMqtt, enrolledDevices } from './helpers/device.ts';
import { DOC_FENCE_LANGUAGES, REPO_ROOT, bashBlocks, fencedBlocks, isListening, runDocScriptOnFreePorts, tail } from './helpers/doc-script.ts';
import { serviceCredential, startFleet } from './helpers/fleet.ts';
import { withDeadline } from './helpers/wait.ts';

/*
 * docs/broker.md is executable: its ```bash blocks, in order, are the mosquitto walk-through.
 * This test runs exactly those blocks in one bash (set -euo pipefail) in an empty directory with
 * free ports, and checks what the guide claims to show; the other tests keep the guide's tables
 * (CONNACK codes, limits and their defaults, metric names) in step with the code.
 */

const GUIDE = join(REPO_ROOT, 'docs', 'broker.md');

const isBrokerCode = (code: string): code is BrokerErrorCode => Object.hasOwn(BROKER_ERRORS, code);

/** The rows of the markdown table whose header row starts with `| firstHeader |`, as cells. */
function tableRows(markdown: string, firstHeader: string): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => line.startsWith(`| ${firstHeader} |`));
  if (start === -1) return [];
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.split('|').slice(1, -1).map((cell) => cell.trim()));
  }
  return rows;
}

/** The `code`-quoted words of a table cell. */
const quoted = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((match) => match[1] ?? '');

test('every code block of docs/broker.md is marked bash (run) or text/console (shown), and the walk-through is complete', async (t) => {
  const blocks = fencedBlocks(await readFile(GUIDE, 'utf8'));
  for (const block of blocks) {
    t.true(DOC_FENCE_LANGUAGES.has(block.language), `line ${block.line}: fence language "${block.language}" (use bash, text or console)`);
  }
  const runnable = await bashBlocks(GUIDE);
  t.true(runnable.length >= 10, 'the walk-through has its steps as bash blocks');
  t.regex(runnable[0]?.body ?? '', /fleetgate init --data/, 'the walk-through starts with the setup');
  t.regex(runnable.at(-1)?.body ?? '', /kill "\$SERVER_PID"/, 'the walk-through ends by stopping the server it started');
  const script = runnable.map((block) => block.body).join('\n');
  for (const flag of ['--est-port "$EST_PORT"', '--mqtt-port "$MQTT_PORT"', '--admin-port "$ADMIN_PORT"', '--metrics-port "$METRICS_PORT"']) {
    t.true(script.includes(flag), `fleetgate serve gets ${flag}`);
  }
  t.regex(script, /MQTT=\(-h 127\.0\.0\.1 -p "\$MQTT_PORT" --cafile "\$DATA\/ca\/root\.crt" -V mqttv311\)/);
  // Every mosquitto client goes through the same connection options.
  for (const line of script.split('\n').filter((text) => /\bmosquitto_(pub|sub) (?=["-])/.test(text))) {
    t.true(line.includes('"${MQTT[@]}"'), `uses the common options: ${line}`);
  }
});

test('the CONNACK codes docs/broker.md gives are the broker\'s, and every connection refusal is there', async (t) => {
  const guide = await readFile(GUIDE, 'utf8');
  const named = new Set([...guide.matchAll(/\bBROKER_[A-Z_]+\b/g)].map((match) => match[0]));
  for (const code of named) t.true(isBrokerCode(code), `${code} is not in BROKER_ERRORS`);

  const rows = tableRows(guide, 'CONNACK');
  t.true(rows.length >= 3, 'the guide has the CONNACK table');
  const listed = new Set<string>();
  for (const [connack = '', , codes = ''] of rows) {
    const returnCode = Number(/^\d+/.exec(connack)?.[0]);
    for (const code of quoted(codes)) {
      listed.add(code);
      t.true(isBrokerCode(code) && BROKER_ERRORS[code].returnCode === returnCode, `the guide says CONNACK ${returnCode} for ${code}`);
    }
  }
  const refusals = Object.entries(BROKER_ERRORS).filter(([, error]) => error.returnCode !== 0).map(([code]) => code);
  for (const code of refusals) t.true(listed.has(code), `${code} (CONNACK ${BROKER_ERRORS[code as BrokerErrorCode].returnCode}) is missing from the table`);
});

test('the limits table of docs/broker.md lists every broker.limits setting with its default', async (t) => {
  const rows = tableRows(await readFile(GUIDE, 'utf8'), 'setting');
  const documented = new Map<string, string>();
  for (const [settings = '', defaults = ''] of rows) {
    const names = quoted(settings);
    // "500, 1000" for two settings in one row; "262144 (256 KiB)" for one.
    const values = defaults.split(',').map((value) => value.trim().split(' ')[0] ?? '');
    t.is(values.length, names.length, `row ${settings}: one default per setting`);
    names.forEach((name, index) => documented.set(name, values[index] ?? ''));
  }
  const limits: BrokerLimits = DEFAULT_CONFIG.broker.limits;
  for (const [name, value] of Object.entries(limits)) {
    t.is(documented.get(name), String(value), `broker.limits.${name}`);
  }
  for (const name of documented.keys()) t.true(Object.hasOwn(limits, name), `${name} is not a broker.limits setting`);
});

test('the metrics table of docs/broker.md names exactly the broker\'s metrics', async (t) => {
  const rows = tableRows(await readFile(GUIDE, 'utf8'), 'metric');
  const documented = new Set(rows.map(([metric = '']) => (quoted(metric)[0] ?? '').replace(/\{.*\}$/, '')));
  const exported = new Metrics({ processMetrics: false }).registry.getMetricsAsArray().map((metric) => metric.name);
  const broker = exported.filter((name) => name.startsWith('fleetgate_mqtt_'));
  t.true(broker.length > 0);
  t.deepEqual([...documented].sort(), broker.sort());
});

test('the commands of docs/broker.md carry telemetry and commands, and refuse foreign topics and credentials', async (t) => {
  const result = await runDocScriptOnFreePorts(t, GUIDE, { tempPrefix: 'fleetgate-docs-broker-' });
  const { cwd, ports, report } = result;
  t.false(result.timedOut, report);
  t.is(result.code, 0, report);

  const batch = JSON.parse(await readFile(join(cwd, 'mqtt-batch.json'), 'utf8')) as { devices: { id: string }[] };
  const [a = '', b = ''] = batch.devices.map((device) => device.id);
  t.regex(a, /^thermostat-[0-9a-f]{12}$/);
  t.regex(b, /^thermostat-[0-9a-f]{12}$/);
  const out = result.stdout;

  // Setup: both devices enrolled (their certificates name them), the backend credential made.
  t.regex(out, /fleetgate data directory ready/, report);
  t.regex(out, new RegExp(`^"mqttUrl":"mqtts://127\\.0\\.0\\.1:${ports.mqtt}"$`, 'm'), report);
  for (const [id, dir] of [[a, 'device-a'], [b, 'device-b']] as const) {
    t.regex(out, new RegExp(`^subject=.*CN = ${id}$`, 'm'), report);
    const certificate = new X509Certificate(await readFile(join(cwd, dir, 'device.crt')));
    t.is(certificate.subjectAltName, `URI:urn:fleetgate:device:${id}`);
  }
  t.regex(out, /^service backend: \S+backend\.crt, \S+backend\.key \(expires /m, report);

  // Telemetry from A reached the backend; the backend's command reached A.
  t.regex(out, new RegExp(`^devices/${a}/telemetry \\{"temp":21\\.5\\}$`, 'm'), report);
  t.regex(out, new RegExp(`^devices/${a}/commands/setpoint 19$`, 'm'), report);
  // A's subscription to B's namespace: SUBACK 128 on an accepted connection.
  t.regex(out, /^Subscribed \(mid: \d+\): 128$/m, report);
  t.regex(out, /^All subscription requests were denied\.$/m, report);
  t.regex(out, new RegExp(`^Client ${a} received CONNACK \\(0\\)$`, 'm'), report);
  // A's publish into B's namespace: A cut off, nothing delivered to B.
  t.regex(out, /^device A cut off \(mosquitto_pub exit [1-9]\d*\)$/m, report);
  t.regex(out, /^device B received nothing \(mosquitto_sub exit 27\)$/m, report);
  t.notRegex(out, new RegExp(`^devices/${b}/commands/unlock`, 'm'), report);
  t.notRegex(out, /^unexpected:/m, report);
  // A bootstrap certificate and a foreign client id: CONNACK 5, "not authorised".
  t.is(out.match(/Connection Refused: not authori[sz]ed/g)?.length, 2, report);
  t.regex(out, /^bootstrap certificate refused \(mosquitto_pub exit 5\)$/m, report);
  t.regex(out, /^client id of another device refused \(mosquitto_pub exit 5\)$/m, report);
  // The log names the rule behind each refusal.
  t.regex(out, new RegExp(`^BROKER_SUBSCRIBE_DENIED: .*devices/${b}/#$`, 'm'), report);
  t.regex(out, new RegExp(`^BROKER_PUBLISH_DENIED: .*devices/${b}/commands/unlock$`, 'm'), report);
  t.regex(out, /^BROKER_NOT_OPERATIONAL: .*factory CA/m, report);
  t.regex(out, /^BROKER_CLIENT_ID_MISMATCH: /m, report);

  // The metrics the guide printed: each refusal counted once.
  const refusals = new Map([...out.matchAll(/^fleetgate_mqtt_refusals_total\{code="([A-Z_]+)"\} (\d+)$/gm)].map((match) => [match[1] ?? '', Number(match[2])]));
  for (const code of ['BROKER_SUBSCRIBE_DENIED', 'BROKER_PUBLISH_DENIED', 'BROKER_NOT_OPERATIONAL', 'BROKER_CLIENT_ID_MISMATCH']) {
    t.is(refusals.get(code), 1, `${code} in\n${[...refusals].join('\n')}\n${report}`);
  }

  // The guide's last block stopped the server: it shut down cleanly and freed its ports.
  const log = await readFile(join(cwd, 'fleetgate.log'), 'utf8');
  t.regex(log, /"msg":"fleetgate stopped"/, tail(log));
  t.false(await isListening(ports.mqtt), `MQTT port ${ports.mqtt} still accepts connections after the guide stopped the server`);
  t.false(await isListening(ports.metrics), `metrics port ${ports.metrics} still accepts connections`);
});

/*
 * A service's client id is `<name>` or `<name>:<instance>`; a device id never holds `:`. So
 * service `backend` cannot connect with the client id of a device of model `backend` and take
 * its session over (MQTT-3.1.4-2), which an earlier `<name>-<anything>` rule allowed.
 */
test('a backend service cannot take over a device session by using its device id as client id', async (t) => {
  const fleet = await startFleet(t);
  const [device] = await enrolledDevices(t, fleet, 'backend', 1);
  if (!device) throw new Error('no device');
  t.regex(device.id, /^backend-/);
  const client = await connectMqtt(t, fleet, device.operational);
  const closed = new Promise<'closed'>((resolve) => client.once('close', () => resolve('closed')));
  const code = await connackCode(fleet, await serviceCredential(t, fleet), { clientId: device.id });
  // A takeover closes the old session before the new one's CONNACK; a QoS 1 round trip on the
  // device's connection after that CONNACK shows whether it is still there.
  const roundTrip = client.publishAsync(`devices/${device.id}/telemetry`, 'still here', { qos: 1 }).then(() => 'connected' as const);
  const outcome = await withDeadline(Promise.race([closed, roundTrip]), { what: 'the device session to answer or close' });
  t.is(outcome, 'connected', 'the device session survived');
  t.is(code, 5, 'CONNACK 5 for a service using a device id as client id');
  t.is(await connackCode(fleet, await serviceCredential(t, fleet), { clientId: 'backend:ingest-1' }), 0, 'an instance id is fine');
});
