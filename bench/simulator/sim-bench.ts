import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Progress, parseSimArgs, simulate, type SimulationReport } from '@fleetgate/simulator';
import { startDaemon } from '../daemon.ts';
import { fleetgateInit } from '../fleetgate-cli.ts';
import { EST_PATHS } from '@fleetgate/device-sdk';
import { FLEETGATE_BIN } from '../fleetgate-cli.ts';
import { BENCH_LISTENER_LIMITS } from '../broker/fleetgate-broker.ts';
import { httpsCall } from '../https-call.ts';
import { waitUntilReady } from '../wait-ready.ts';
import type { Daemon } from '../daemon.ts';
import { freePort } from '../free-port.ts';
import { serverCommand, type Pinning } from '../pinning.ts';
import { cpuBetween, readCpuTicks, readPeakRssKiB, readRssKiB } from '../proc-cpu.ts';
import { progress } from '../progress.ts';
import { readFactory } from '../../simulator/src/credentials.ts';
import { measureClientFloor, type ClientFloor } from './client-floor.ts';

/** What one side (fleetgate or mosquitto) measured in the simulator-based benchmark. */
export interface SimSide {
  readonly broker: 'fleetgate' | 'mosquitto';
  readonly devices: number;
  readonly connected: number;
  readonly errors: number;
  /** From the first device started until every device was connected once. */
  readonly allConnectedSeconds: number | null;
  readonly enrollP50Ms: number | null;
  readonly enrollP99Ms: number | null;
  readonly connectP50Ms: number;
  readonly connectP99Ms: number;
  /** Simulator CPU per device to its first connection. */
  readonly simulatorCpuMsPerDevice: number | null;
  /** Server (fleetgate serve, or mosquitto) CPU during the storm, per device. */
  readonly serverCpuMsPerDevice: number;
  /**
   * Server RSS growth per device from before the run to its peak (the kernel's high-water mark):
   * for fleetgate the whole lifecycle, every enrollment and connection in flight at once.
   */
  readonly serverPeakKiBPerDevice: number;
  /**
   * Server RSS growth per device still held after the run, every device gone: what the
   * allocator kept of the peak (glibc's malloc returns little of it; see docs/operator.md).
   * Memory per held connection is `npm run bench:memory`'s measurement.
   */
  readonly serverKeptKiBPerDevice: number;
  readonly messagesPerSecond: number;
  /** Who limited the run, as the simulator judged it (its event-loop delay and CPU, the server's metrics). */
  readonly bottleneck: string;
  /** Wall-clock seconds of the fleet phase (ends at --duration) and of the bounded stop after it. */
  readonly fleetPhaseSeconds: number;
  readonly stopSeconds: number;
  readonly reportJson: string;
}

export interface SimBenchOptions {
  readonly devices: number;
  readonly pinning: Pinning;
  /** Seconds the fleet is held connected, sending telemetry, after the storm. */
  readonly holdSeconds: number;
}

const SETTINGS = {
  est: { ratePerSecond: 100_000, rateBurst: 100_000, perIdentityPerMinute: 100, maxConcurrent: 4096, maxInProgressPerSource: 4096 },
  broker: { limits: { connectionsPerSecond: 100_000, connectionBurst: 100_000, maxConnections: 200_000 } },
  listeners: BENCH_LISTENER_LIMITS,
};

/** Mean messages per second over the series points after the whole fleet was connected. */
function heldRate(report: SimulationReport): number {
  const since = report.totals.allConnectedAfterSeconds ?? Number.POSITIVE_INFINITY;
  const held = report.series.filter((point) => point.t > since + 1);
  return held.length ? Math.round(held.reduce((sum, point) => sum + point.messagesPerSecond, 0) / held.length) : 0;
}

/** The simulator's figures for one run, plus the server's CPU and memory from /proc. */
function sideOf(broker: SimSide['broker'], report: SimulationReport, server: { cpuMs: number; rssBeforeKiB: number; rssPeakKiB: number; rssAfterKiB: number }, path: string): SimSide {
  const t = report.totals;
  const enrolled = report.latency.enrollMs.count > 0;
  return {
    broker,
    devices: report.settings.devices,
    connected: t.connected,
    errors: t.errors,
    allConnectedSeconds: t.allConnectedAfterSeconds === null ? null : Math.round(t.allConnectedAfterSeconds * 10) / 10,
    enrollP50Ms: enrolled ? report.latency.enrollMs.p50 : null,
    enrollP99Ms: enrolled ? report.latency.enrollMs.p99 : null,
    connectP50Ms: report.latency.connectMs.p50,
    connectP99Ms: report.latency.connectMs.p99,
    simulatorCpuMsPerDevice: report.cpu.msPerDevice,
    serverCpuMsPerDevice: Math.round((server.cpuMs / Math.max(1, t.connected)) * 100) / 100,
    serverPeakKiBPerDevice: Math.round((server.rssPeakKiB - server.rssBeforeKiB) / Math.max(1, t.connected)),
    serverKeptKiBPerDevice: Math.round((server.rssAfterKiB - server.rssBeforeKiB) / Math.max(1, t.connected)),
    // Telemetry of the held fleet: the seconds after everyone was connected.
    messagesPerSecond: heldRate(report),
    bottleneck: report.bottleneck.verdict,
    fleetPhaseSeconds: report.timing.fleetPhaseSeconds,
    stopSeconds: report.timing.stopSeconds,
    reportJson: path,
  };
}

/** A server's RSS readings once a run is over: its peak (VmHWM) and what it still holds. */
async function memoryAfterRun(pid: number, rssBeforeKiB: number): Promise<{ rssBeforeKiB: number; rssPeakKiB: number; rssAfterKiB: number }> {
  return { rssBeforeKiB, rssPeakKiB: await readPeakRssKiB(pid), rssAfterKiB: await readRssKiB(pid) };
}

/**
 * `fleetgate init` in `dataDir` with the storm settings (every rate and pending limit raised, so
 * the server admits the whole fleet at once); returns the root certificate devices pin.
 */
export async function initStormDataDir(dataDir: string): Promise<string> {
  await fleetgateInit(dataDir);
  const config = JSON.parse(await readFile(join(dataDir, 'config.json'), 'utf8')) as { est: Record<string, number>; broker: { limits: Record<string, number> }; listeners?: Record<string, number> };
  Object.assign(config.est, SETTINGS.est);
  Object.assign(config.broker.limits, SETTINGS.broker.limits);
  config.listeners = { ...config.listeners, ...SETTINGS.listeners };
  await writeFile(join(dataDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  return readFile(join(dataDir, 'ca', 'root.crt'), 'utf8');
}

/** `fleetgate serve` on free ports (all four listeners), pinned, ready when EST answers; `env` is added to the server's environment. */
export async function startFleetgateWithPorts(dataDir: string, rootPem: string, pinning: Pinning, env: NodeJS.ProcessEnv = {}): Promise<{ daemon: Daemon; ports: { est: number; mqtt: number; metrics: number } }> {
  const [est, mqtt, admin, metrics] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const args = [FLEETGATE_BIN, 'serve', '--data', dataDir, '--host', '127.0.0.1', '--est-port', est, '--mqtt-port', mqtt, '--admin-port', admin, '--metrics-port', metrics].map(String);
  const command = serverCommand(pinning, process.execPath, args);
  const daemon = startDaemon('fleetgate serve', command.file, command.args, { ...process.env, FLEETGATE_LOG_LEVEL: 'warn', ...env });
  await waitUntilReady(
    daemon,
    async () => {
      const outcome = await httpsCall({ host: '127.0.0.1', port: est }, { method: 'GET', path: EST_PATHS.cacerts, tls: { ca: rootPem }, timeoutMs: 2_000 });
      return outcome.status === 200 ? undefined : (outcome.error ?? `HTTP ${outcome.status}`);
    },
    60_000,
  );
  return { daemon, ports: { est, mqtt, metrics } };
}

/**
 * The simulator-based benchmark: an enrollment storm of N devices against fleetgate (all at
 * once, the whole lifecycle), held connected with telemetry; then the same devices' connect and
 * publish phases against mosquitto with their operational certificates. Server pinned to one
 * CPU, simulator to the other.
 */
export async function runSimulatorBench(options: SimBenchOptions): Promise<{ fleetgate: SimSide; mosquitto: SimSide; clientFloor: ClientFloor; reportDir: string }> {
  const work = await mkdtemp(join(tmpdir(), 'fleetgate-simbench-'));
  const reportDir = join(work, 'reports');
  try {
    const dataDir = join(work, 'data');
    const rootPem = await initStormDataDir(dataDir);
    const quiet = new Progress(process.stderr, false, 10);
    // --duration counts from the start by the wall clock and ends the run whatever the load: the
    // storm's own length (10,000 devices: ~60 s is the target, 67 s allowed) plus the hold.
    const duration = `${Math.ceil(options.holdSeconds + Math.max(30, options.devices / 150))}s`;

    // 1. fleetgate: the whole lifecycle, everyone at once.
    const server = await startFleetgateWithPorts(dataDir, rootPem, options.pinning);
    const ports = server.ports;
    const credentials = join(work, 'credentials');
    let fleetgateSide: SimSide;
    try {
      const rssBefore = await readRssKiB(server.daemon.pid);
      const cpuBefore = await readCpuTicks(server.daemon.pid);
      progress(`simulator bench: enrollment storm of ${options.devices} devices against fleetgate`);
      const sim = parseSimArgs(['--devices', String(options.devices), '--scenario', 'enroll-storm', '--duration', duration, '--traffic-scale', '0.05', '--est', `https://127.0.0.1:${ports.est}`, '--mqtt', `mqtts://127.0.0.1:${ports.mqtt}`, '--metrics', `http://127.0.0.1:${ports.metrics}/metrics`, '--data', dataDir, '--report', reportDir, '--export-credentials', credentials, '--settle', '120s']);
      if (!sim) throw new Error('unreachable');
      const outcome = await simulate(sim, quiet);
      const cpu = cpuBetween(cpuBefore, await readCpuTicks(server.daemon.pid));
      fleetgateSide = sideOf('fleetgate', outcome.report, { cpuMs: cpu.totalMs, ...(await memoryAfterRun(server.daemon.pid, rssBefore)) }, outcome.jsonPath);
    } finally {
      await server.daemon.stop();
    }

    // 2. The client-side floor: the same devices' contexts and bare handshakes, and key + CSR.
    progress('simulator bench: client-side floor (contexts, bare mTLS handshakes, key and CSR)');
    const clientFloor = await measureClientFloor({ dataDir, rootPem, credentials: (await readFactory(credentials)).devices, pinning: options.pinning });

    // 3. mosquitto: the same devices, connect and publish only (operational certificates).
    const port = await freePort();
    const caBundle = join(work, 'ca-bundle.crt');
    await writeFile(caBundle, rootPem + (await readFile(join(dataDir, 'ca', 'issuing.crt'), 'utf8')));
    const acl = join(work, 'acl');
    await writeFile(acl, 'pattern readwrite devices/%u/#\n');
    const conf = join(work, 'mosquitto.conf');
    await writeFile(
      conf,
      [
        ...(process.getuid?.() === 0 ? ['user root'] : []),
        'per_listener_settings false',
        'persistence false',
        `listener ${port} 127.0.0.1`,
        // Root and issuing CA: the simulated devices present their leaf only (as against fleetgate).
        `cafile ${caBundle}`,
        `certfile ${join(dataDir, 'tls', 'server.crt')}`,
        `keyfile ${join(dataDir, 'tls', 'server.key')}`,
        'require_certificate true',
        'use_identity_as_username true',
        'set_tcp_nodelay true',
        `acl_file ${acl}`,
        'max_connections -1',
        'log_dest none',
        '',
      ].join('\n'),
    );
    const command = serverCommand(options.pinning, '/usr/sbin/mosquitto', ['-c', conf]);
    const mosquitto = startDaemon('mosquitto', command.file, command.args);
    let mosquittoSide: SimSide;
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const rssBefore = await readRssKiB(mosquitto.pid);
      const cpuBefore = await readCpuTicks(mosquitto.pid);
      // The devices that got an operational certificate (all of them, unless the storm did not finish in time).
      const exported = (await readFactory(credentials)).devices;
      const perModel = new Map<string, number>();
      for (const device of exported) perModel.set(device.model, (perModel.get(device.model) ?? 0) + 1);
      const mix = [...perModel].map(([model, count]) => `${model}=${count}`).join(',');
      progress(`simulator bench: connect storm of the same ${exported.length} devices against mosquitto`);
      const sim = parseSimArgs(['--devices', String(exported.length), '--mix', mix, '--scenario', 'enroll-storm', '--duration', duration, '--traffic-scale', '0.05', '--credentials', credentials, '--no-metrics', '--est', 'https://127.0.0.1:1', '--mqtt', `mqtts://127.0.0.1:${port}`, '--report', reportDir, '--settle', '120s']);
      if (!sim) throw new Error('unreachable');
      const outcome = await simulate(sim, quiet);
      const cpu = cpuBetween(cpuBefore, await readCpuTicks(mosquitto.pid));
      mosquittoSide = sideOf('mosquitto', outcome.report, { cpuMs: cpu.totalMs, ...(await memoryAfterRun(mosquitto.pid, rssBefore)) }, outcome.jsonPath);
    } finally {
      await mosquitto.stop();
    }
    return { fleetgate: fleetgateSide, mosquitto: mosquittoSide, clientFloor, reportDir };
  } finally {
    await rm(join(work, 'data'), { recursive: true, force: true });
    await rm(join(work, 'credentials'), { recursive: true, force: true });
  }
}
