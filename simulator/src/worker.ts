import { parentPort, workerData } from 'node:worker_threads';
import { FleetRunner } from './fleet-runner.ts';
import { LoopDelayMonitor } from './monitor/loop-delay.ts';
import { profiles } from './profiles.ts';
import { RunRecorder } from './recorder.ts';
import type { WorkerInput, WorkerMessage } from './worker-protocol.ts';

/** performance.now() of this thread for a time in the base threads share (timeOrigin + now). */
const local = (sharedMs: number): number => sharedMs - performance.timeOrigin;

/**
 * One worker thread's share of a fleet: a FleetRunner over its devices, reporting counters and
 * its event-loop delay every second and its latency samples at the end. Used with --workers when
 * the simulator has cores of its own (the server on another machine). The fleet phase ends at the
 * run's deadline, however loaded the thread is.
 */
async function runWorker(input: WorkerInput): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('worker.ts runs in a worker thread');
  const recorder = new RunRecorder();
  const loop = new LoopDelayMonitor();
  const runner = new FleetRunner(
    {
      devices: input.devices,
      rootPem: input.rootPem,
      estUrls: input.estUrls,
      mqttUrls: input.mqttUrls,
      ratePerSecond: input.ratePerSecond,
      sourceAddresses: input.sourceAddresses,
      profiles: profiles(input.traffic),
      backoff: { initialMs: 1000, maxMs: 30_000, multiplier: 2 },
      persistentSessions: input.persistentSessions,
    },
    recorder,
  );
  const deadline = local(input.deadlineAt);
  const post = (message: WorkerMessage): void => port.postMessage(message);
  const tick = setInterval(
    () => post({ type: 'tick', counters: { ...recorder.counters }, states: runner.states(), connectedPerNode: runner.connectedPerNode(), errorsByCode: Object.fromEntries(recorder.errorsByCode), loopDelay: loop.interval() }),
    1000,
  );
  try {
    await runner.startAll(deadline);
    while (performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, Math.min(100, Math.max(1, deadline - performance.now()))));
    const allConnected = recorder.counters.connected === input.devices.length;
    const allConnectedAt = allConnected ? Math.max(...runner.sims.map((sim) => sim.connectedAt ?? 0)) + performance.timeOrigin : null;
    clearInterval(tick);
    const fleetPhaseEndedAt = performance.timeOrigin + performance.now();
    const connectedPerNode = runner.connectedPerNode();
    const { forced } = await runner.stop(input.stopTimeoutMs);
    loop.stop();
    post({
      type: 'done',
      counters: { ...recorder.counters },
      connectedPerNode,
      errorsByCode: Object.fromEntries(recorder.errorsByCode),
      enroll: recorder.enroll.all(),
      connect: recorder.connect.all(),
      publishAck: recorder.publishAck.all(),
      allConnectedAt,
      loopDelayRun: loop.run(),
      notStarted: runner.notStarted(),
      forced,
      fleetPhaseEndedAt,
    });
  } catch (error) {
    clearInterval(tick);
    post({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  }
}

await runWorker(workerData as WorkerInput);
