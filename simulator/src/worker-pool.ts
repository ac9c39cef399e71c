import { Worker } from 'node:worker_threads';
import type { FactoryCredential } from './credentials.ts';
import type { SimOptions } from './options.ts';
import type { Counters, RunRecorder } from './recorder.ts';
import type { LoopDelay } from './monitor/loop-delay.ts';
import type { WorkerInput, WorkerMessage } from './worker-protocol.ts';

/**
 * The worker's script. Compiled, it is worker.js beside this file. Run from the TypeScript
 * sources (this repository's tests, with tsx), a worker thread does not inherit a loader
 * registered at run time, so ../source-worker.js registers tsx first and then loads worker.ts.
 */
const WORKER_SCRIPT = import.meta.url.endsWith('.ts') ? new URL('../source-worker.js', import.meta.url) : new URL('./worker.js', import.meta.url);

/** Latest figures of one worker. */
interface WorkerState {
  counters: Counters;
  states: Record<string, number>;
  /** Connected per MQTT endpoint: every second, and at the end just before the worker stopped its devices. */
  connectedPerNode: Record<string, number>;
  errorsByCode: Record<string, number>;
  /** Event-loop delay over the worker's last interval. */
  loopDelay: LoopDelay;
  done: boolean;
}

/** What the workers said when they finished. */
export interface WorkersOutcome {
  /** When the last device of all first connected (timeOrigin + now, ms); null if not all did. */
  readonly allConnectedAt: number | null;
  readonly loopDelayRuns: readonly LoopDelay[];
  readonly notStarted: number;
  readonly forced: number;
  /** When the last worker's fleet phase ended (timeOrigin + now, ms). */
  readonly fleetPhaseEndedAt: number;
}

/**
 * Runs the fleet in `workers` threads, devices dealt round-robin, each thread at its share of
 * the rate. The main thread sums their figures into `recorder` every second and merges their
 * latency samples at the end.
 */
export class WorkerPool {
  private readonly workers: Worker[] = [];
  private readonly states: WorkerState[] = [];

  constructor(
    private readonly options: SimOptions,
    private readonly recorder: RunRecorder,
  ) {}

  /** Runs every worker to the end: each ends its fleet phase at `deadlineAt` (timeOrigin + now, ms). */
  run(devices: readonly FactoryCredential[], rootPem: string, count: number, deadlineAt: number): Promise<WorkersOutcome> {
    const shares = Array.from({ length: count }, (_, index) => devices.filter((_device, position) => position % count === index));
    const finished = shares.map((share, index) => {
      const input: WorkerInput = {
        devices: share,
        rootPem,
        estUrls: this.options.estUrls,
        mqttUrls: this.options.mqttUrls,
        ratePerSecond: this.options.ratePerSecond / count,
        sourceAddresses: this.options.sourceAddresses,
        traffic: this.options.traffic,
        persistentSessions: this.options.persistentSessions,
        deadlineAt,
        stopTimeoutMs: this.options.stopTimeoutMs,
      };
      const worker = new Worker(WORKER_SCRIPT, { workerData: input });
      this.workers.push(worker);
      const state: WorkerState = { counters: { ...this.recorder.counters }, states: {}, connectedPerNode: {}, errorsByCode: {}, loopDelay: { p99Ms: 0, maxMs: 0 }, done: false };
      this.states[index] = state;
      return new Promise<Extract<WorkerMessage, { type: 'done' }>>((resolve, reject) => {
        worker.on('message', (message: WorkerMessage) => {
          if (message.type === 'error') {
            reject(new Error(`worker ${index}: ${message.message}`));
            return;
          }
          state.counters = message.counters;
          state.errorsByCode = message.errorsByCode;
          state.connectedPerNode = message.connectedPerNode;
          if (message.type === 'tick') {
            state.states = message.states;
            state.loopDelay = message.loopDelay;
            return;
          }
          state.done = true;
          // The states of its last tick stay: the fleet as it was when the worker stopped it.
          this.recorder.enroll.addAll(message.enroll);
          this.recorder.connect.addAll(message.connect);
          this.recorder.publishAck.addAll(message.publishAck);
          resolve(message);
        });
        worker.on('error', reject);
        worker.on('exit', (code) => {
          if (!state.done) reject(new Error(`worker ${index} exited with code ${code}`));
        });
      });
    });
    return Promise.all(finished).then((done) => {
      this.collect();
      const times = done.map((message) => message.allConnectedAt);
      return {
        allConnectedAt: times.every((time) => time !== null) ? Math.max(...(times as number[])) : null,
        loopDelayRuns: done.map((message) => message.loopDelayRun),
        notStarted: done.reduce((sum, message) => sum + message.notStarted, 0),
        forced: done.reduce((sum, message) => sum + message.forced, 0),
        fleetPhaseEndedAt: Math.max(...done.map((message) => message.fleetPhaseEndedAt)),
      };
    });
  }

  /** Each running worker's event-loop delay over its last interval. */
  workerDelays(): LoopDelay[] {
    return this.states.filter((state) => state && !state.done).map((state) => state.loopDelay);
  }

  /**
   * Sums the workers' latest counters into the main recorder; returns their devices by state and
   * connected per MQTT endpoint (at the end: just before they stopped).
   */
  collect(): { states: Record<string, number>; connectedPerNode: Record<string, number> } {
    const totals = this.recorder.counters;
    for (const key of Object.keys(totals) as (keyof Counters)[]) totals[key] = this.states.reduce((sum, state) => sum + (state?.counters[key] ?? 0), 0);
    this.recorder.errorsByCode.clear();
    const states: Record<string, number> = {};
    const connectedPerNode: Record<string, number> = Object.fromEntries(this.options.mqttUrls.map((url) => [url, 0]));
    for (const state of this.states) {
      for (const [code, count] of Object.entries(state?.errorsByCode ?? {})) this.recorder.errorsByCode.set(code, (this.recorder.errorsByCode.get(code) ?? 0) + count);
      for (const [name, count] of Object.entries(state?.states ?? {})) states[name] = (states[name] ?? 0) + count;
      for (const [url, count] of Object.entries(state?.connectedPerNode ?? {})) connectedPerNode[url] = (connectedPerNode[url] ?? 0) + count;
    }
    return { states, connectedPerNode };
  }

  async terminate(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}
