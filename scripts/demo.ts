/**
 * `npm run demo`: the main job on embedded defaults. Initialises a throw-away data directory,
 * starts `fleetgate serve` in a process of its own (EST, MQTT broker, admin API, metrics on free
 * loopback ports), and runs a few hundred simulated thermostats, cameras and cars through the
 * real lifecycle for about 30 s with the simulator in this process: factory credential, key on
 * the device, EST enrollment, MQTT over mutual TLS, telemetry. Prints the summary and where the
 * HTML report is, stops the server and checks its registry (devices, audit chain).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Progress, parseSimArgs, simulate, summaryText } from '@fleetgate/simulator';
import { initDataDir } from '../server/src/datadir/init.ts';
import { dataLayout } from '../server/src/datadir/layout.ts';
import { LevelRegistry } from '../server/src/registry/level/level-registry.ts';
import { startDemoServer } from './demo-server.ts';

const HELP = `Usage: npm run demo [-- --devices N --duration D --report DIR --keep]

Starts fleetgate (\`fleetgate serve\`, a process of its own) on a temporary data directory and runs N
simulated devices (default 300: 70% thermostats, 20% cameras, 10% cars) for D (default 30s) with
the simulator in this process; the report goes to DIR (default ./reports). Then stops the server
(SIGTERM) and checks its registry: devices and the audit chain. --keep leaves the data directory
in place.`;

const { values } = parseArgs({
  options: {
    devices: { type: 'string' },
    duration: { type: 'string' },
    report: { type: 'string' },
    keep: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}

const dataDir = await mkdtemp(join(tmpdir(), 'fleetgate-demo-'));
console.log(`fleetgate demo: data directory ${dataDir}`);
try {
  await initDataDir({ dataDir });
  const server = await startDemoServer(dataDir);
  const { estUrl, mqttUrl, adminUrl, metricsUrl } = server.urls;
  console.log(`server (pid ${server.pid}): EST ${estUrl}, MQTT ${mqttUrl}, admin ${adminUrl}, metrics ${metricsUrl}`);
  let passed = false;
  try {
    const options = parseSimArgs([
      '--devices', values.devices ?? '300',
      '--rate', '60/s',
      '--duration', values.duration ?? '30s',
      '--traffic-scale', '0.1',
      '--est', estUrl,
      '--mqtt', mqttUrl,
      // On a free port, not the default beside --est: the report shows the server's side too.
      '--metrics', metricsUrl,
      '--data', dataDir,
      '--report', resolve(values.report ?? 'reports'),
    ]);
    if (!options) throw new Error('unreachable: no --help given');
    const outcome = await simulate(options, new Progress(process.stderr, false, 5));
    console.log(`\n${summaryText(outcome, options.maxErrorRate)}`);
    console.log(`\nOpen the report: ${outcome.htmlPath}`);
    passed = outcome.passed;
  } finally {
    const code = await server.stop();
    console.log(`server stopped (exit code ${code ?? 'none: killed'})`);
    if (code !== 0) passed = false;
  }
  // The server has closed the registry: this process may open it now.
  const registry = await LevelRegistry.open(dataLayout(dataDir).registry);
  try {
    const audit = await registry.verifyAudit();
    console.log(`registry: ${(await registry.listDevices()).length} devices, audit chain ${audit.ok ? `verified (${audit.entries} entries)` : `BROKEN at ${audit.brokenAt}`}`);
    if (!passed || !audit.ok) process.exitCode = 1;
  } finally {
    await registry.close();
  }
} finally {
  if (values.keep) console.log(`kept ${dataDir}`);
  else await rm(dataDir, { recursive: true, force: true });
}
