import { LoopDelayMonitor, type LoopDelay } from './monitor/loop-delay.ts';
import { SIMULATOR_ADVICE, THRESHOLDS, simulatorLoadText, simulatorSaturated } from './monitor/bottleneck.ts';
import type { ServerMetrics } from './monitor/server-metrics.ts';
import { progressLine, type Progress } from './progress.ts';
import type { RunRecorder } from './recorder.ts';
import type { TimePoint } from './report/types.ts';

/** What the sampler reads from the fleet at each point: the main thread's runner, or the workers' latest figures. */
export interface FleetView {
  readonly states: Record<string, number>;
  readonly connectedPerNode: Record<string, number>;
  /** The event-loop delay of each worker thread over its last interval (none without workers). */
  readonly workerDelays: readonly LoopDelay[];
}

export interface SamplerSettings {
  readonly recorder: RunRecorder;
  readonly progress: Progress;
  /** Devices in the fleet (for the progress line). */
  readonly total: number;
  /** Threads running devices: what the simulator's CPU is judged against. */
  readonly threads: number;
  readonly view: () => FleetView;
  readonly server?: ServerMetrics;
  /** Called with each point (after it is recorded). */
  readonly onPoint?: (point: TimePoint) => void;
  /** The monotonic clock, ms (performance.now unless a test replaces it). */
  readonly now?: () => number;
  readonly cpuUsage?: (previous?: NodeJS.CpuUsage) => NodeJS.CpuUsage;
}

/** Consecutive saturated intervals before the live warning: one slow second is not a finding. */
const WARN_AFTER_INTERVALS = 3;

/**
 * Takes the run's time series about once a second. Every point carries the elapsed time read
 * from the monotonic clock and the real length of its interval: a timer that fires late because
 * the event loop is saturated stretches the interval, it does not shift the time axis. Each point
 * also carries the simulator's own load (event-loop delay, CPU) and the server's (from its
 * `/metrics`), and the sampler warns on stderr once when the simulator stays saturated.
 */
export class RunSampler {
  readonly began: number;
  private last: number;
  private lastCpu: NodeJS.CpuUsage;
  private timer: NodeJS.Timeout | undefined;
  private readonly loop = new LoopDelayMonitor();
  private saturatedRun = 0;
  private warned = false;
  private workerRunDelays: LoopDelay[] = [];
  peakRss = process.memoryUsage.rss();

  constructor(private readonly settings: SamplerSettings) {
    this.began = this.now();
    this.last = this.began;
    this.lastCpu = this.cpuUsage();
  }

  private now(): number {
    return (this.settings.now ?? performance.now.bind(performance))();
  }

  private cpuUsage(previous?: NodeJS.CpuUsage): NodeJS.CpuUsage {
    return (this.settings.cpuUsage ?? process.cpuUsage.bind(process))(previous);
  }

  /** Seconds since the run started, by the monotonic clock. */
  elapsedSeconds(): number {
    return (this.now() - this.began) / 1000;
  }

  /** Samples every `everyMs` (and scrapes the server's metrics as often) until `stop()`. */
  start(everyMs = 1000): void {
    this.timer = setInterval(() => {
      this.sample(everyMs);
      void this.settings.server?.scrape();
    }, everyMs);
  }

  /**
   * Takes one point now. `dueEveryMs`: the sampler's own period when a timer called it; how late
   * it came is an event-loop delay too, and one the histogram can miss (a timer that runs before
   * the histogram's own in the turn that ends a long stall reads it before the stall is recorded).
   */
  sample(dueEveryMs?: number): TimePoint {
    const now = this.now();
    const intervalSeconds = (now - this.last) / 1000;
    this.last = now;
    const cpu = this.cpuUsage(this.lastCpu);
    this.lastCpu = this.cpuUsage();
    const view = this.settings.view();
    const lateMs = dueEveryMs === undefined ? 0 : Math.max(0, Math.round(intervalSeconds * 1000 - dueEveryMs));
    const delays = [this.loop.interval(), ...view.workerDelays, { p99Ms: lateMs, maxMs: lateMs }];
    const delay = { p99Ms: Math.max(...delays.map((entry) => entry.p99Ms)), maxMs: Math.max(...delays.map((entry) => entry.maxMs)) };
    const cpuCores = intervalSeconds > 0 ? Math.round(((cpu.user + cpu.system) / 1000 / 1000 / intervalSeconds) * 100) / 100 : 0;
    // The last point of a run may close an interval of a few milliseconds: too short to judge CPU by.
    const saturated = intervalSeconds >= 0.5 ? simulatorSaturated(delay, cpuCores, this.settings.threads) : delay.p99Ms > THRESHOLDS.loopDelayP99Ms;
    this.peakRss = Math.max(this.peakRss, process.memoryUsage.rss());
    const recorder = this.settings.recorder;
    const point = recorder.sample({
      t: (now - this.began) / 1000,
      intervalSeconds,
      states: view.states,
      connectedPerNode: view.connectedPerNode,
      simulator: { loopDelayP99Ms: delay.p99Ms, loopDelayMaxMs: delay.maxMs, cpuCores, saturated },
      server: this.settings.server?.interval(),
    });
    this.saturatedRun = saturated ? this.saturatedRun + 1 : 0;
    if (this.saturatedRun >= WARN_AFTER_INTERVALS && !this.warned) {
      this.warned = true;
      this.settings.progress.note(`warning: the simulator is saturated (${simulatorLoadText(point.simulator)} over ${this.settings.threads} thread${this.settings.threads > 1 ? 's' : ''}): ${SIMULATOR_ADVICE}`);
    }
    this.settings.progress.update(progressLine(point, this.settings.total, recorder.counters.errors), point.t);
    this.settings.onPoint?.(point);
    return point;
  }

  /**
   * Closes the series at the end of the run: one more point unless the last one is less than
   * half a second old (an interval that short makes a CPU figure of noise).
   */
  finish(): void {
    if (this.now() - this.last >= 500) this.sample();
    this.stop();
  }

  /** The workers' event-loop delay over their whole run (sent when they finish). */
  addWorkerRunDelay(delay: LoopDelay): void {
    this.workerRunDelays.push(delay);
  }

  /** The event-loop delay over the whole run: the worst thread's. */
  runDelay(): LoopDelay {
    const delays = [this.loop.run(), ...this.workerRunDelays];
    return { p99Ms: Math.max(...delays.map((entry) => entry.p99Ms)), maxMs: Math.max(...delays.map((entry) => entry.maxMs)) };
  }

  /** Stops sampling (a last point is taken by whoever calls `sample()`). */
  stop(): void {
    clearInterval(this.timer);
    this.loop.stop();
  }
}
