import { cpus } from 'node:os';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeAcks } from './acks.ts';
import { exportCredentials, mintFactory, readFactory, type FactoryBatch, type FactoryCredential } from './credentials.ts';
import { FleetRunner } from './fleet-runner.ts';
import { countsFor, type SimOptions } from './options.ts';
import { profiles } from './profiles.ts';
import { Progress, perNodeText } from './progress.ts';
import { judgeBottleneck, verdictText } from './monitor/bottleneck.ts';
import { ServerMetrics } from './monitor/server-metrics.ts';
import { RunSampler } from './sampler.ts';
import { RunRecorder } from './recorder.ts';
import { renderHtml } from './report/html.ts';
import type { RunTiming, ScenarioResult, SimulationReport } from './report/types.ts';
import { reconnectStorm, renewalStorm, revocationSweep } from './scenarios.ts';
import { WorkerPool, type WorkersOutcome } from './worker-pool.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve_) => setTimeout(resolve_, ms));

/** The simulator's answer: the report and where it was written. */
export interface SimulationOutcome {
  readonly report: SimulationReport;
  readonly jsonPath: string;
  readonly htmlPath: string;
  /** Whether the error rate stayed within --max-error-rate. */
  readonly passed: boolean;
}

/** Picks `count` credentials following the mix, from what the factory folder holds. */
function pickDevices(batch: FactoryBatch, counts: Readonly<Record<string, number>>): FactoryCredential[] {
  const picked: FactoryCredential[] = [];
  for (const [model, count] of Object.entries(counts)) {
    const available = batch.devices.filter((device) => device.model === model);
    if (available.length < count) throw new Error(`the factory folder holds ${available.length} ${model} credentials; ${count} are needed`);
    picked.push(...available.slice(0, count));
  }
  // Interleave models so the ramp starts a mix, not all thermostats first.
  return picked.sort(() => Math.random() - 0.5);
}

/** Runs a whole simulation: credentials, ramp, traffic, scenario, report. */
export async function simulate(options: SimOptions, progress: Progress): Promise<SimulationOutcome> {
  const counts = countsFor(options.devices, options.mix);
  let factoryDir = options.credentials ?? options.factory;
  let scratch: string | undefined;
  if (!factoryDir) {
    await mkdir(options.reportDir, { recursive: true });
    scratch = await mkdtemp(join(resolve(options.reportDir), 'factory-'));
    factoryDir = scratch;
    await mintFactory(options.data as string, factoryDir, counts, (line) => progress.note(line));
  }
  try {
    const batch = await readFactory(factoryDir);
    const rootPem = options.root ? await readFile(options.root, 'utf8') : batch.rootPem;
    const devices = pickDevices(batch, counts);
    return await runFleet(options, devices, rootPem, progress);
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}

async function runFleet(options: SimOptions, devices: FactoryCredential[], rootPem: string, progress: Progress): Promise<SimulationOutcome> {
  if (options.workers > 1) return runInWorkers(options, devices, rootPem, progress);
  const recorder = new RunRecorder();
  const runner = new FleetRunner(
    {
      devices,
      rootPem,
      estUrls: options.estUrls,
      mqttUrls: options.mqttUrls,
      ratePerSecond: options.ratePerSecond,
      sourceAddresses: options.sourceAddresses,
      profiles: profiles(options.traffic),
      backoff: { initialMs: 1000, maxMs: 30_000, multiplier: 2 },
      persistentSessions: options.persistentSessions,
      recordAcks: options.exportAcks !== undefined,
    },
    recorder,
  );
  const server = await serverMetrics(options, progress);
  const startedAt = new Date();
  const cpuBefore = process.cpuUsage();
  let cpuAtAllConnected: NodeJS.CpuUsage | undefined;
  let allConnectedAt: number | null = null;
  const sampler = new RunSampler({
    recorder,
    progress,
    total: devices.length,
    threads: 1,
    server,
    view: () => ({ states: runner.states(), connectedPerNode: runner.connectedPerNode(), workerDelays: [] }),
    onPoint: () => {
      if (allConnectedAt === null && runner.sims.length === devices.length && recorder.counters.connected === devices.length) {
        allConnectedAt = lastConnectedSeconds(runner, sampler.began);
        cpuAtAllConnected = process.cpuUsage(cpuBefore);
      }
    },
  });
  const began = sampler.began;
  // The fleet phase ends here by the monotonic clock, whatever the load (a scenario that needs
  // the whole fleet may wait --settle for it and then run its course: it says so in its figures).
  const deadline = began + options.durationMs;
  sampler.start();

  const scenarios: ScenarioResult[] = [];
  let devicesPerNode: Record<string, number> = {};
  let fleetPhaseEnded = began;
  let stop: { seconds: number; forced: number } = { seconds: 0, forced: 0 };
  try {
    await runner.startAll(deadline);
    const settleBy = options.scenario === 'steady' || options.scenario === 'enroll-storm' ? deadline : Math.max(deadline, performance.now() + options.settleMs);
    while (!runner.settled() && performance.now() < settleBy) await sleep(Math.min(50, Math.max(1, settleBy - performance.now())));
    if (allConnectedAt === null && recorder.counters.connected === devices.length) {
      allConnectedAt = lastConnectedSeconds(runner, began);
      cpuAtAllConnected = process.cpuUsage(cpuBefore);
    }
    const scenarioTimeout = Math.max(30_000, options.durationMs);
    const log = (line: string): void => progress.note(line);
    switch (options.scenario) {
      case 'reconnect-storm':
        scenarios.push(await reconnectStorm(runner, { restartCommand: options.restartCommand, timeoutMs: scenarioTimeout * 2, log }));
        break;
      case 'renewal-storm':
        scenarios.push(await renewalStorm(runner, { timeoutMs: scenarioTimeout }));
        break;
      case 'revocation-sweep': {
        if (!options.operatorCert || !options.operatorKey) throw new Error('revocation-sweep needs --data DIR or --operator-cert/--operator-key');
        const admin = { url: options.adminUrl, root: rootPem, cert: await readFile(options.operatorCert, 'utf8'), key: await readFile(options.operatorKey, 'utf8') };
        scenarios.push(await revocationSweep(runner, admin, options.revokeShare, { timeoutMs: scenarioTimeout }));
        break;
      }
      default:
        break;
    }
    while (performance.now() < deadline) await sleep(Math.min(100, Math.max(1, deadline - performance.now())));
  } finally {
    // The server's figures at the end of the run, for the last point (bounded by the scrapes' timeouts).
    await server?.closing();
    fleetPhaseEnded = performance.now();
    sampler.finish();
    devicesPerNode = runner.connectedPerNode();
    const { forced } = await runner.stop(options.stopTimeoutMs);
    stop = { seconds: (performance.now() - fleetPhaseEnded) / 1000, forced };
    progress.done();
  }
  // After the stop, so that writing thousands of files is not part of the run (on a saturated
  // event loop each write waits a whole turn of it): the devices' stores outlive the devices.
  if (options.exportCredentials) {
    await exportCredentials(options.exportCredentials, rootPem, await runner.operationalCredentials());
    progress.note(`operational credentials written to ${options.exportCredentials}`);
  }
  // After the stop: PUBACKs of the messages still in flight came in while the devices flushed them.
  if (options.exportAcks) {
    const count = await writeAcks(options.exportAcks, runner.acknowledged());
    progress.note(`${count} acknowledged QoS 1 message numbers written to ${options.exportAcks}`);
  }
  const timing = runTiming(options, began, fleetPhaseEnded, stop, runner.notStarted());
  return writeReport(options, devices, recorder, { startedAt, devicesStarted: runner.sims.length, allConnectedAt, cpuBefore, cpuAtAllConnected, peakRss: sampler.peakRss, devicesPerNode, scenarios, timing, sampler, server, threads: 1 });
}

/** Seconds from the start until the last device of the fleet first connected. */
function lastConnectedSeconds(runner: FleetRunner, began: number): number {
  return (Math.max(...runner.sims.map((sim) => sim.connectedAt ?? 0)) - began) / 1000;
}

/** The server's metrics, read once before the fleet starts (the baseline of every figure); undefined with --no-metrics. */
async function serverMetrics(options: SimOptions, progress: Progress): Promise<ServerMetrics | undefined> {
  if (options.metricsUrls.length === 0) return undefined;
  const server = new ServerMetrics(options.metricsUrls, (line) => progress.note(line));
  await server.baseline();
  return server;
}

/** How the run ended, in seconds. */
function runTiming(options: SimOptions, began: number, fleetPhaseEnded: number, stop: { seconds: number; forced: number }, notStarted: number): RunTiming {
  const round = (seconds: number): number => Math.round(seconds * 100) / 100;
  return {
    fleetPhaseSeconds: round((fleetPhaseEnded - began) / 1000),
    stopSeconds: round(stop.seconds),
    stopTimeoutSeconds: options.stopTimeoutMs / 1000,
    devicesStoppedByForce: stop.forced,
    devicesNotStarted: notStarted,
    totalSeconds: round((fleetPhaseEnded - began) / 1000 + stop.seconds),
  };
}

/** The same fleet in worker threads: the main thread only samples and reports. */
async function runInWorkers(options: SimOptions, devices: FactoryCredential[], rootPem: string, progress: Progress): Promise<SimulationOutcome> {
  const recorder = new RunRecorder();
  const pool = new WorkerPool(options, recorder);
  const server = await serverMetrics(options, progress);
  const startedAt = new Date();
  const cpuBefore = process.cpuUsage();
  let cpuAtAllConnected: NodeJS.CpuUsage | undefined;
  const sampler = new RunSampler({
    recorder,
    progress,
    total: devices.length,
    threads: options.workers,
    server,
    view: () => ({ ...pool.collect(), workerDelays: pool.workerDelays() }),
    onPoint: () => {
      if (!cpuAtAllConnected && recorder.counters.connected === devices.length) cpuAtAllConnected = process.cpuUsage(cpuBefore);
    },
  });
  const began = sampler.began;
  const deadline = began + options.durationMs;
  sampler.start();
  let outcome: WorkersOutcome | undefined;
  let fleetPhaseEnded = deadline;
  try {
    progress.note(`running ${devices.length} devices in ${options.workers} worker threads`);
    // A worker that does not finish within its own bounds (and a margin) is terminated.
    const bound = began + options.durationMs + options.stopTimeoutMs + 5000;
    let timer: NodeJS.Timeout | undefined;
    outcome = await Promise.race([
      pool.run(devices, rootPem, options.workers, performance.timeOrigin + deadline),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), Math.max(0, bound - performance.now()));
      }),
    ]);
    clearTimeout(timer);
  } finally {
    // The workers' own end of their fleet phase (a stalled worker reaches the deadline late); the deadline when they did not say.
    fleetPhaseEnded = outcome ? outcome.fleetPhaseEndedAt - performance.timeOrigin : Math.min(performance.now(), deadline);
    sampler.finish();
    // The workers have stopped their devices by now: this reading closes the server's counters
    // (issuances, refusals, CPU), after the last point of the series, which keeps the sampler's.
    await server?.closing();
    await pool.terminate();
    progress.done();
  }
  for (const delay of outcome?.loopDelayRuns ?? []) sampler.addWorkerRunDelay(delay);
  const allConnectedAt = outcome?.allConnectedAt == null ? null : (outcome.allConnectedAt - performance.timeOrigin - began) / 1000;
  // The workers' last figures: taken just before each stopped its devices.
  const devicesPerNode = pool.collect().connectedPerNode;
  const stop = { seconds: (performance.now() - fleetPhaseEnded) / 1000, forced: outcome ? outcome.forced : devices.length };
  const timing = runTiming(options, began, fleetPhaseEnded, stop, outcome?.notStarted ?? 0);
  return writeReport(options, devices, recorder, { startedAt, devicesStarted: devices.length - timing.devicesNotStarted, allConnectedAt, cpuBefore, cpuAtAllConnected, peakRss: sampler.peakRss, devicesPerNode, scenarios: [], timing, sampler, server, threads: options.workers });
}

/** Figures of a run that are not in the recorder. */
interface RunFacts {
  readonly startedAt: Date;
  readonly devicesStarted: number;
  /** Seconds from the start until every device was connected once (monotonic clock). */
  readonly allConnectedAt: number | null;
  readonly cpuBefore: NodeJS.CpuUsage;
  readonly cpuAtAllConnected: NodeJS.CpuUsage | undefined;
  readonly peakRss: number;
  /** Devices connected to each MQTT endpoint at the end, before they were stopped. */
  readonly devicesPerNode: Readonly<Record<string, number>>;
  readonly scenarios: ScenarioResult[];
  readonly timing: RunTiming;
  readonly sampler: RunSampler;
  readonly server: ServerMetrics | undefined;
  /** Threads that ran devices. */
  readonly threads: number;
}

/** Builds the report and writes report.json, report.html and the latest.* copies. */
async function writeReport(options: SimOptions, devices: readonly FactoryCredential[], recorder: RunRecorder, facts: RunFacts): Promise<SimulationOutcome> {
  const { startedAt, allConnectedAt, cpuBefore, cpuAtAllConnected, peakRss, scenarios, sampler, server } = facts;
  const cpu = process.cpuUsage(cpuBefore);
  const connectedCpu = cpuAtAllConnected ?? cpu;
  const totals = recorder.counters;
  const denominator = devices.length + totals.messagesSent;
  const errorRate = denominator ? totals.errors / denominator : 0;
  const report: SimulationReport = {
    format: 'fleetgate-sim-report/1',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    scenario: options.scenario,
    settings: {
      devices: devices.length,
      mix: options.mix,
      ratePerSecond: Number.isFinite(options.ratePerSecond) ? options.ratePerSecond : devices.length,
      durationSeconds: options.durationMs / 1000,
      estUrl: options.estUrls.join(','),
      mqttUrl: options.mqttUrls.join(','),
      estUrls: options.estUrls,
      mqttUrls: options.mqttUrls,
      workers: options.workers,
      sourceAddresses: options.sourceAddresses,
    },
    machine: { node: process.version, cpus: cpus().length, platform: `${process.platform}-${process.arch}` },
    totals: {
      devicesStarted: facts.devicesStarted,
      enrolled: totals.enrolled,
      connected: totals.connected,
      renewed: totals.renewed,
      refused: totals.refused,
      messagesSent: totals.messagesSent,
      messagesAcknowledged: totals.messagesAcknowledged,
      messagesFailed: totals.messagesFailed,
      errors: totals.errors,
      errorRate,
      allConnectedAfterSeconds: allConnectedAt === null ? null : Math.round(allConnectedAt * 100) / 100,
    },
    nodes: {
      devicesPerNode: facts.devicesPerNode,
      failovers: totals.failovers,
      endpointMoves: { est: totals.estMoves, mqtt: totals.mqttMoves },
    },
    errorsByCode: Object.fromEntries(recorder.errorsByCode),
    latency: { enrollMs: recorder.enroll.summary(), connectMs: recorder.connect.summary(), publishAckMs: recorder.publishAck.summary() },
    cpu: {
      // CPU spent bringing the fleet to "all connected" (traffic afterwards is not lifecycle).
      msPerDevice: totals.connected ? Math.round(((connectedCpu.user + connectedCpu.system) / 1000 / totals.connected) * 100) / 100 : null,
      userMs: Math.round(cpu.user / 1000),
      systemMs: Math.round(cpu.system / 1000),
      peakRssMiB: Math.round(peakRss / 1048576),
    },
    series: recorder.series,
    scenarios,
    timing: facts.timing,
    bottleneck: judgeBottleneck(recorder.series, { delay: sampler.runDelay(), threads: facts.threads, serverProcesses: Math.max(1, options.metricsUrls.length), serverMetrics: server !== undefined }),
    serverMetrics: server ? server.report(totals.connected) : { urls: [], available: false, problem: 'not read (--no-metrics)', scrapes: 0, failedScrapes: 0, issuanceMs: null, refusals: null, peakConnectedDevices: null, cpuMsPerDevice: null },
  };
  await mkdir(options.reportDir, { recursive: true });
  const stamp = report.startedAt.replace(/[:.]/g, '-');
  const jsonPath = resolve(options.reportDir, `report-${stamp}.json`);
  const htmlPath = resolve(options.reportDir, `report-${stamp}.html`);
  await writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(htmlPath, renderHtml(report));
  await writeFile(resolve(options.reportDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(resolve(options.reportDir, 'latest.html'), renderHtml(report));
  return { report, jsonPath, htmlPath, passed: errorRate <= options.maxErrorRate };
}

/** Where the devices ended and how often they moved. */
function nodesText(report: SimulationReport): string {
  const { devicesPerNode, failovers, endpointMoves } = report.nodes;
  return `devices per node at the end: ${perNodeText(devicesPerNode)}; failovers ${failovers} (moves from an unavailable endpoint: EST ${endpointMoves.est}, MQTT ${endpointMoves.mqtt})`;
}

/** Where the server's figures come from. */
function serverSource(report: SimulationReport): string {
  return report.serverMetrics.urls.length ? report.serverMetrics.urls.join(', ') : 'metrics not read';
}

/** The server's side, beside what the devices saw. */
function serverText(report: SimulationReport): string {
  const metrics = report.serverMetrics;
  if (!metrics.available) return `unknown (${metrics.problem ?? 'no metrics'})`;
  const issuance = metrics.issuanceMs;
  const refusals = metrics.refusals;
  const refused = refusals ? Object.values(refusals.est).reduce((sum, value) => sum + value, 0) + Object.values(refusals.mqtt).reduce((sum, value) => sum + value, 0) : 0;
  return [
    issuance && issuance.count > 0 ? `issuance p50 ${issuance.p50} ms, p99 ${issuance.p99} ms (${issuance.count} issued)` : 'no issuance',
    `peak connected ${metrics.peakConnectedDevices ?? '-'}`,
    `refusals ${refused}${refused && refusals ? ` ${JSON.stringify({ ...refusals.est, ...refusals.mqtt })}` : ''}`,
    `CPU ${metrics.cpuMsPerDevice ?? '-'} ms per device`,
  ].join('; ');
}

/**
 * Why the fleet phase lasted longer than --duration: a stalled event loop only gets to the
 * deadline at its next turn (a scenario that ran past it says so in its own figures).
 */
function overrunText(report: SimulationReport): string {
  const over = report.timing.fleetPhaseSeconds - report.settings.durationSeconds;
  if (over < 1 || report.scenarios.length > 0) return '';
  return ` (${over.toFixed(1)} s past --duration: the simulator's event loop was stalled, see the bottleneck)`;
}

/** The summary printed at the end of a run. */
export function summaryText(outcome: SimulationOutcome, maxErrorRate: number): string {
  const { report } = outcome;
  const t = report.totals;
  const lines = [
    `fleetgate-sim ${report.scenario}: ${t.devicesStarted} devices started, ${t.enrolled} enrolled, ${t.connected} connected, ${t.renewed} renewed, ${t.refused} refused`,
    `  all connected after: ${t.allConnectedAfterSeconds === null ? 'never' : `${t.allConnectedAfterSeconds.toFixed(1)} s`} (wall clock); run ${report.timing.fleetPhaseSeconds.toFixed(1)} s${overrunText(report)} + stop ${report.timing.stopSeconds.toFixed(1)} s (bound ${report.timing.stopTimeoutSeconds} s${report.timing.devicesStoppedByForce ? `, ${report.timing.devicesStoppedByForce} devices closed by force` : ''})${report.timing.devicesNotStarted ? `; ${report.timing.devicesNotStarted} devices not started before --duration` : ''}`,
    `  enrollment latency: p50 ${report.latency.enrollMs.p50} ms, p99 ${report.latency.enrollMs.p99} ms; connect: p50 ${report.latency.connectMs.p50} ms, p99 ${report.latency.connectMs.p99} ms`,
    `  messages: ${t.messagesSent} sent, ${t.messagesAcknowledged} acknowledged, ${t.messagesFailed} failed; QoS 1 ack p50 ${report.latency.publishAckMs.p50} ms`,
    ...(report.settings.mqttUrls.length > 1 || report.nodes.failovers > 0 ? [`  ${nodesText(report)}`] : []),
    `  simulator CPU: ${report.cpu.msPerDevice ?? '-'} ms per device to first connection; peak RSS ${report.cpu.peakRssMiB} MiB; event-loop delay p99 ${report.bottleneck.simulator.loopDelayP99Ms} ms, CPU up to ${report.bottleneck.simulator.peakCpuCores.toFixed(2)} cores`,
    `  server (${serverSource(report)}): ${serverText(report)}`,
    `  bottleneck: ${verdictText(report.bottleneck)}`,
    ...report.bottleneck.warnings.map((warning) => `  WARNING: ${warning}`),
    `  errors: ${t.errors} (${(t.errorRate * 100).toFixed(3)} %, limit ${(maxErrorRate * 100).toFixed(3)} %)${Object.keys(report.errorsByCode).length ? ` ${JSON.stringify(report.errorsByCode)}` : ''}`,
    ...report.scenarios.map((scenario) => `  ${scenario.name}: ${Object.entries(scenario).filter(([key]) => key !== 'name').map(([key, value]) => `${key} ${String(value)}`).join(', ')}`),
    `  report: ${outcome.htmlPath}`,
    `          ${outcome.jsonPath}`,
  ];
  return lines.join('\n');
}
