import type { BottleneckReport, ServerLoad, SimulatorLoad, TimePoint } from '../report/types.ts';
import type { LoopDelay } from './loop-delay.ts';

/**
 * When a load counts as saturated.
 *
 * - Event-loop delay p99 above 50 ms: a callback of the thread (a TLS handshake step, an EST
 *   answer, a PUBACK) waited that long before the thread got to it, so every latency the
 *   simulator records then includes up to that much of its own queueing: ten times a loopback
 *   mTLS handshake (2-5 ms here) and more than a typical enrollment on an idle server.
 * - CPU above 0.9 core per thread: a Node thread runs its JavaScript on one core; at 90 % busy
 *   the smallest burst queues work faster than the thread drains it.
 * - Warn when the simulator (or server) was saturated for at least 10 % of the run's seconds (and
 *   at least 2 s): a second or two of garbage collection at the start is not a finding.
 */
export const THRESHOLDS = { loopDelayP99Ms: 50, cpuCoresPerThread: 0.9, saturatedShare: 0.1 } as const;

/** Whether the simulator was saturated over one interval. */
export function simulatorSaturated(delay: LoopDelay, cpuCores: number, threads: number): boolean {
  return delay.p99Ms > THRESHOLDS.loopDelayP99Ms || cpuCores >= THRESHOLDS.cpuCoresPerThread * threads;
}

/** Whether the server was saturated over one interval (per server process: one per metrics URL). */
export function serverSaturated(load: ServerLoad, processes: number): boolean {
  return (load.cpuCores ?? 0) >= THRESHOLDS.cpuCoresPerThread * processes || (load.loopLagP99Ms ?? 0) > THRESHOLDS.loopDelayP99Ms;
}

/** A load of the simulator as people read it: `event-loop delay p99 230 ms, CPU 0.98 cores`. */
export function simulatorLoadText(load: Pick<SimulatorLoad, 'loopDelayP99Ms' | 'cpuCores'>): string {
  return `event-loop delay p99 ${load.loopDelayP99Ms} ms, CPU ${load.cpuCores.toFixed(2)} cores`;
}

/** The advice printed with a simulator that is the bottleneck. */
export const SIMULATOR_ADVICE = 'the latencies it measured include its own queueing: lower --rate or --devices, or give it cores of its own (--workers N)';

/** Who was the bottleneck of a run, from its series. */
export function judgeBottleneck(series: readonly TimePoint[], run: { readonly delay: LoopDelay; readonly threads: number; readonly serverProcesses: number; readonly serverMetrics: boolean }): BottleneckReport {
  const seconds = series.reduce((sum, point) => sum + point.intervalSeconds, 0);
  const share = (saturated: (point: TimePoint) => boolean): { share: number; seconds: number } => {
    const busy = series.filter(saturated).reduce((sum, point) => sum + point.intervalSeconds, 0);
    return { share: seconds > 0 ? Math.round((busy / seconds) * 1000) / 1000 : 0, seconds: busy };
  };
  const simulator = share((point) => point.simulator.saturated);
  const withServer = series.filter((point) => point.server !== undefined);
  const server = share((point) => point.server !== undefined && serverSaturated(point.server, run.serverProcesses));
  const counts = (found: { share: number; seconds: number }): boolean => found.share >= THRESHOLDS.saturatedShare && found.seconds >= 2;
  const simulatorWas = counts(simulator);
  const serverKnown = run.serverMetrics && withServer.length > 0;
  const serverWas = serverKnown && counts(server);
  const peakCpuCores = Math.max(0, ...series.map((point) => point.simulator.cpuCores));
  const warnings: string[] = [];
  if (simulatorWas) {
    warnings.push(
      `the simulator was saturated for ${Math.round(simulator.share * 100)} % of the run (event-loop delay p99 ${run.delay.p99Ms} ms, longest ${run.delay.maxMs} ms; CPU up to ${peakCpuCores.toFixed(2)} cores for ${run.threads} thread${run.threads > 1 ? 's' : ''}): ${SIMULATOR_ADVICE}`,
    );
  }
  if (serverWas) {
    const cpu = Math.max(0, ...withServer.map((point) => point.server?.cpuCores ?? 0));
    const lag = Math.max(0, ...withServer.map((point) => point.server?.loopLagP99Ms ?? 0));
    warnings.push(`the server was saturated for ${Math.round(server.share * 100)} % of the run (CPU up to ${cpu.toFixed(2)} cores, event-loop lag p99 up to ${lag} ms)`);
  }
  const verdict: BottleneckReport['verdict'] = simulatorWas && serverWas ? 'both' : simulatorWas ? 'simulator' : serverWas ? 'server' : serverKnown ? 'neither' : 'not-the-simulator';
  return {
    verdict,
    thresholds: { ...THRESHOLDS },
    simulator: { loopDelayP99Ms: run.delay.p99Ms, loopDelayMaxMs: run.delay.maxMs, peakCpuCores, threads: run.threads, saturatedShare: simulator.share },
    serverSaturatedShare: serverKnown ? server.share : null,
    warnings,
  };
}

/** One line for the summary: who limited the run. */
export function verdictText(report: BottleneckReport): string {
  switch (report.verdict) {
    case 'simulator':
      return 'the simulator itself (not the server)';
    case 'server':
      return 'the server';
    case 'both':
      return 'both the simulator and the server';
    case 'neither':
      return 'neither was saturated';
    default:
      return 'not the simulator (the server\'s load is unknown: no metrics)';
  }
}
