/**
 * `npm run demo`: the main job on embedded defaults. Initialises a throw-away data directory,
 * starts fleetgate (EST, MQTT broker, admin API, metrics on free loopback ports), and runs a few
 * hundred simulated thermostats, cameras and cars through the real lifecycle for about 30 s with
 * the simulator: factory credential, key on the device, EST enrollment, MQTT over mutual TLS,
 * telemetry. Prints the summary and where the HTML report is.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Progress, parseSimArgs, simulate, summaryText } from '@fleetgate/simulator';
import { initDataDir } from '../server/src/datadir/init.ts';
import { startServer } from '../server/src/server.ts';

const HELP = `Usage: npm run demo [-- --devices N --duration D --keep]

Starts fleetgate on a temporary data directory and runs N simulated devices (default 300: 70%
thermostats, 20% cameras, 10% cars) for D (default 30s) with the simulator; the report goes to
./reports. --keep leaves the data directory in place.`;

const { values } = parseArgs({
  options: { devices: { type: 'string' }, duration: { type: 'string' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}

const dataDir = await mkdtemp(join(tmpdir(), 'fleetgate-demo-'));
console.log(`fleetgate demo: data directory ${dataDir}`);
await initDataDir({ dataDir });
const server = await startServer({
  dataDir,
  listen: { host: '127.0.0.1', estPort: 0, mqttPort: 0, adminPort: 0, metricsPort: 0 },
  logger: pino({ level: 'warn' }),
});
console.log(`server: EST ${server.estUrl}, MQTT ${server.mqttUrl}, admin ${server.adminUrl}, metrics ${server.metricsUrl}`);
try {
  const options = parseSimArgs([
    '--devices', values.devices ?? '300',
    '--rate', '60/s',
    '--duration', values.duration ?? '30s',
    '--traffic-scale', '0.1',
    '--est', server.estUrl,
    '--mqtt', server.mqttUrl,
    // On a free port, not the default beside --est: the report shows the server's side too.
    '--metrics', server.metricsUrl,
    '--data', dataDir,
    '--report', resolve('reports'),
  ]);
  if (!options) throw new Error('unreachable: no --help given');
  const outcome = await simulate(options, new Progress(process.stderr, false, 5));
  console.log(`\n${summaryText(outcome, options.maxErrorRate)}`);
  const audit = await server.registry.verifyAudit();
  console.log(`registry: ${(await server.registry.listDevices()).length} devices, audit chain ${audit.ok ? `verified (${audit.entries} entries)` : `BROKEN at ${audit.brokenAt}`}`);
  console.log(`\nOpen the report: ${outcome.htmlPath}`);
  if (!outcome.passed || !audit.ok) process.exitCode = 1;
} finally {
  await server.close();
  if (values.keep) console.log(`kept ${dataDir}`);
  else await rm(dataDir, { recursive: true, force: true });
}
