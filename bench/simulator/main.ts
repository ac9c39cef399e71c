/**
 * `npm run bench:sim`: the simulator-based benchmark (also `npm run bench -- --only simulator`
 * once wired into bench/run.ts). Enrollment storm of N devices against fleetgate, then the same
 * devices' connect storm against mosquitto; table on stdout, JSON and SVG charts in bench/results.
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { reportCharts, type SimulationReport } from '@fleetgate/simulator';
import { pinLoadGenerator, describePinning } from '../pinning.ts';
import { RESULTS_DIR } from '../results.ts';
import { renderTable } from '../table.ts';
import { runSimulatorBench, type SimSide } from './sim-bench.ts';

const HELP = `Usage: npm run bench:sim -- [--devices N] [--hold S] [--no-pin]

Runs fleetgate-sim against a fresh fleetgate (enroll-storm: N devices at once through the whole
lifecycle, then held for S seconds with telemetry), exports the devices' operational
certificates, and runs the same devices' connect phase against mosquitto (require_certificate,
use_identity_as_username, pattern readwrite devices/%u/#). Server on CPU 0, simulator on CPU 1.
Defaults: --devices 10000 --hold 20.`;

const { values } = parseArgs({ options: { devices: { type: 'string' }, hold: { type: 'string' }, 'no-pin': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const devices = Number(values.devices ?? 10_000);
const holdSeconds = Number(values.hold ?? 20);
if (!Number.isInteger(devices) || devices < 1 || devices > 50_000 || !(holdSeconds >= 1 && holdSeconds <= 600)) {
  console.error('--devices must be 1 to 50000 and --hold 1 to 600 seconds');
  process.exit(2);
}
const pinning = await pinLoadGenerator(!values['no-pin']);
const result = await runSimulatorBench({ devices, pinning, holdSeconds });
const rows = (label: string, pick: (side: SimSide) => number | null, target: string): string[] => {
  const ours = pick(result.fleetgate);
  const theirs = pick(result.mosquitto);
  const ratio = ours !== null && theirs !== null && theirs !== 0 ? `${(ours / theirs).toFixed(2)}x` : '-';
  return [label, String(ours ?? '-'), String(theirs ?? '-'), ratio, target];
};
console.log(
  renderTable(
    ['metric', 'fleetgate', 'mosquitto', 'ratio', 'target'],
    [
      rows('devices connected', (side) => side.connected, `${devices}`),
      rows('errors', (side) => side.errors, '0'),
      rows('all connected after (s)', (side) => side.allConnectedSeconds, '<= 60 (fleetgate, whole lifecycle)'),
      rows('enrollment p50 (ms)', (side) => side.enrollP50Ms, '-'),
      rows('enrollment p99 (ms)', (side) => side.enrollP99Ms, '-'),
      rows('connect p50 (ms)', (side) => side.connectP50Ms, '-'),
      rows('connect p99 (ms)', (side) => side.connectP99Ms, '-'),
      rows('simulator CPU per device (ms)', (side) => side.simulatorCpuMsPerDevice, '<= 6 (whole lifecycle)'),
      ['client floor per device (ms)', String(result.clientFloor.perDeviceMs), '-', '-', '2 contexts + 2 handshakes + key/CSR'],
      ['simulator CPU above the floor (ms)', result.fleetgate.simulatorCpuMsPerDevice === null ? '-' : String(Math.round((result.fleetgate.simulatorCpuMsPerDevice - result.clientFloor.perDeviceMs) * 100) / 100), '-', '-', '-'],
      rows('server CPU per device (ms)', (side) => side.serverCpuMsPerDevice, '-'),
      rows('server RSS peak growth per device (KiB)', (side) => side.serverPeakKiBPerDevice, '- (every handshake in flight)'),
      rows('server RSS kept after the run (KiB/device)', (side) => side.serverKeptKiBPerDevice, '- (held: npm run bench:memory)'),
      rows('telemetry messages/s (held fleet)', (side) => side.messagesPerSecond, '-'),
      rows('run + stop phase (s, wall clock)', (side) => Math.round((side.fleetPhaseSeconds + side.stopSeconds) * 10) / 10, '-'),
      ['bottleneck (simulator\'s verdict)', result.fleetgate.bottleneck, result.mosquitto.bottleneck, '-', '-'],
    ],
  ),
);
const floor = result.clientFloor;
console.log(`client floor: context ${floor.contextMs} ms, bare mTLS handshake ${floor.handshakeMs} ms, key + CSR ${floor.keyAndCsrMs} ms (${floor.handshakes} handshakes)`);
console.log(`pinning: ${describePinning(pinning)}`);
await mkdir(RESULTS_DIR, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const json = { benchmark: 'simulator', devices, holdSeconds, pinning, fleetgate: result.fleetgate, mosquitto: result.mosquitto, clientFloor: result.clientFloor };
await writeFile(join(RESULTS_DIR, `simulator-${stamp}.json`), `${JSON.stringify(json, null, 2)}\n`);
await writeFile(join(RESULTS_DIR, 'latest-simulator.json'), `${JSON.stringify(json, null, 2)}\n`);
const report = JSON.parse(await readFile(result.fleetgate.reportJson, 'utf8')) as SimulationReport;
for (const [name, svg] of Object.entries(reportCharts(report))) await writeFile(join(RESULTS_DIR, `simulator-${name}`), svg);
await copyFile(result.fleetgate.reportJson.replace(/\.json$/, '.html'), join(RESULTS_DIR, 'simulator-report.html'));
console.log(`results: ${join(RESULTS_DIR, 'latest-simulator.json')}, charts ${join(RESULTS_DIR, 'simulator-*.svg')}`);
