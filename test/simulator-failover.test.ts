import test, { type ExecutionContext } from 'ava';
import { readFile } from 'node:fs/promises';
import { SimUsageError } from '../simulator/src/errors.ts';
import { Progress, parseSimArgs, simulate, type SimOptions } from '../simulator/src/index.ts';
import type { Fleet } from './helpers/fleet.ts';
import { connectedTo, connectsTo, startTwoNodes } from './helpers/nodes.ts';
import { stopSharedPostgres } from './helpers/postgres.ts';
import { run } from './helpers/run.ts';
import { NoteWatcher } from './helpers/sim-notes.ts';
import { SOURCE_NODE_ARGS } from './helpers/source-node.ts';
import { tempDir } from './helpers/temp-dir.ts';
import { waitFor } from './helpers/wait.ts';

/*
 * fleetgate-sim against two nodes of one fleet (one data directory, one PostgreSQL registry):
 * comma-separated --est and --mqtt, the fleet spread over the nodes, devices moving to the
 * other node when theirs stops, and the report's devices per node and failovers.
 */

test.after.always(stopSharedPostgres);

const SIM_BIN = new URL('../simulator/bin/fleetgate-sim.js', import.meta.url).pathname;
const quiet = new Progress(process.stderr, true);

async function options(t: ExecutionContext, nodes: readonly Fleet[], dataDir: string, extra: string[]): Promise<SimOptions> {
  const est = nodes.map((node) => node.estUrl).join(',');
  const mqtt = nodes.map((node) => node.server.mqttUrl).join(',');
  const parsed = parseSimArgs(['--est', est, '--mqtt', mqtt, '--data', dataDir, '--report', await tempDir(t, 'fleetgate-sim-'), ...extra]);
  if (!parsed) throw new Error('help');
  return parsed;
}

test('--est and --mqtt take one URL or several, comma-separated; a bad one is a usage error (exit 2) naming it', async (t) => {
  const parsed = parseSimArgs(['--data', 'x', '--est', 'https://127.0.0.1:8443, https://127.0.0.2:8443', '--mqtt', 'mqtts://127.0.0.1:8883,mqtts://127.0.0.2:8883']);
  t.deepEqual(parsed?.estUrls, ['https://127.0.0.1:8443', 'https://127.0.0.2:8443']);
  t.deepEqual(parsed?.mqttUrls, ['mqtts://127.0.0.1:8883', 'mqtts://127.0.0.2:8883']);
  t.deepEqual(parseSimArgs(['--data', 'x'])?.mqttUrls, ['mqtts://127.0.0.1:8883'], 'the default: one broker');
  const bad: [string[], RegExp][] = [
    [['--mqtt', 'mqtts://127.0.0.1:8883,mqtt://127.0.0.1:1883'], /^--mqtt: "mqtt:\/\/127.0.0.1:1883" is not an mqtts:\/\/ URL$/],
    [['--est', 'http://127.0.0.1:8443'], /^--est: "http:\/\/127.0.0.1:8443" is not an https:\/\/ URL$/],
    [['--est', 'https://127.0.0.1:8443,'], /^--est: "" is not a URL$/],
    [['--mqtt', 'mqtts://a:1,mqtts://a:1'], /^--mqtt: "mqtts:\/\/a:1" is listed twice$/],
  ];
  for (const [args, message] of bad) t.throws(() => parseSimArgs(['--data', 'x', ...args]), { instanceOf: SimUsageError, message }, args.join(' '));

  const result = await run(process.execPath, [...SOURCE_NODE_ARGS, SIM_BIN, '--data', 'x', '--mqtt', 'mqtts://127.0.0.1:8883,tcp://127.0.0.1:1883']);
  t.is(result.code, 2);
  t.regex(result.stderr, /^fleetgate-sim: SIM_USAGE: --mqtt: "tcp:\/\/127.0.0.1:1883" is not an mqtts:\/\/ URL/);
  const help = await run(process.execPath, [...SOURCE_NODE_ARGS, SIM_BIN, '--help']);
  t.regex(help.stdout, /--mqtt URL\[,URL\.\.\.\]/);
});

test('a fleet given two nodes spreads over both; the report shows devices per node, in JSON and HTML', async (t) => {
  const { data, nodes } = await startTwoNodes(t);
  const outcome = await simulate(await options(t, nodes, data.dir, ['--devices', '20', '--rate', 'all', '--duration', '8s', '--traffic-scale', '0.01']), quiet);
  const { report } = outcome;
  t.is(report.totals.connected, 20);
  t.is(report.totals.errors, 0, JSON.stringify(report.errorsByCode));
  const urls = nodes.map((node) => node.server.mqttUrl);
  t.deepEqual(report.settings.mqttUrls, urls);
  t.is(report.settings.mqttUrl, urls.join(','));
  const perNode = report.nodes.devicesPerNode;
  t.deepEqual(Object.keys(perNode).sort(), [...urls].sort());
  // Devices per node count the devices connected at the end of the run: every one of the 20 at
  // most once. On a loaded machine a device can be between a dropped connection and its
  // reconnection at that moment (CI saw 18 of 20 with the other figures all right), so fewer is
  // said, not failed.
  const atEnd = Object.values(perNode).reduce((sum, count) => sum + count, 0);
  if (atEnd < 20) t.log(`${atEnd} of 20 devices connected at the end of the run`);
  t.true(atEnd >= 2 && atEnd <= 20, `${atEnd} devices counted per node`);
  // Starting positions are hashes of random ids: all 20 on one node has a chance of 2 in 2^20.
  for (const url of urls) t.true((perNode[url] ?? 0) > 0, `${url}: ${perNode[url]} devices`);
  t.like(report.nodes, { failovers: 0, endpointMoves: { est: 0, mqtt: 0 } });
  t.deepEqual(Object.keys(report.series.at(-1)?.connectedPerNode ?? {}).sort(), [...urls].sort(), 'per node in the series');
  t.deepEqual(JSON.parse(await readFile(outcome.jsonPath, 'utf8')).nodes, report.nodes);
  const html = await readFile(outcome.htmlPath, 'utf8');
  t.regex(html, /<h2>Devices per node<\/h2>/);
  for (const url of urls) t.true(html.includes(`connected to ${url} at the end</th><td>${perNode[url]}</td>`), url);
  t.regex(html, /Connected devices per node/, 'a chart over time');
});

test('a node stops mid-run: its devices move to the other node, the report counts the failovers and the devices per node at the end', async (t) => {
  const { data, nodes } = await startTwoNodes(t);
  const [stopping, staying] = nodes;
  const watching = new NoteWatcher();
  const waiting = watching.line(/reconnect-storm: waiting for the server to be restarted/, 'the simulator to wait for a node to go');
  const simulation = simulate(await options(t, nodes, data.dir, ['--devices', '20', '--rate', 'all', '--duration', '2s', '--scenario', 'reconnect-storm', '--traffic-scale', '0.05']), watching);
  simulation.catch(() => undefined); // a failed wait below leaves the run to nobody
  await waiting;
  await waitFor(async () => (await connectedTo(stopping!)) + (await connectedTo(staying!)) === 20, { what: 'all 20 devices connected', timeoutMs: 30_000 });
  const moving = await connectedTo(stopping!);
  t.true(moving > 0, 'some devices started on the node that stops');
  const connectsBefore = await connectsTo(staying!);
  await stopping!.server.close();
  // The run ends, and every device leaves, as soon as the moved devices are back: the staying
  // node holds all 20 only for that moment, which a poll of its gauge can miss on a loaded
  // machine (CI saw it read 0 for 30 s, after the run). Its count of accepted connections stays.
  const { report } = await simulation;
  const accepted = (await connectsTo(staying!)) - connectsBefore;
  t.true(accepted >= moving, `the staying node accepted ${accepted} connections after the stop, for ${moving} moved devices`);
  t.like(report.scenarios[0], { name: 'reconnect-storm', disconnected: moving, reconnected: moving, allBack: true });
  t.deepEqual(report.nodes.devicesPerNode, { [stopping!.server.mqttUrl]: 0, [staying!.server.mqttUrl]: 20 });
  t.is(report.nodes.failovers, moving, 'one failover per device of the stopped node');
  t.true(report.nodes.endpointMoves.mqtt >= moving, `${report.nodes.endpointMoves.mqtt} MQTT moves`);
});
