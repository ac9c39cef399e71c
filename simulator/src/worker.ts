import { parentPort, workerData } from 'node:worker_threads';
import { FleetRunner } from './fleet-runner.ts';
import { profiles } from './profiles.ts';
import { RunRecorder } from './recorder.ts';
import type { WorkerInput, WorkerMessage } from './worker-protocol.ts';

/**
 * One worker thread's share of a fleet: a FleetRunner over its devices, reporting counters every
 * second and its latency samples at the end. Used with --workers when the simulator has cores
 * of its own (the server on another machine).
 */
async function runWorker(input: WorkerInput): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('worker.ts runs in a worker thread');
  const recorder = new RunRecorder();
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
  const began = performance.now();
  const post = (message: WorkerMessage): void => port.postMessage(message);
  const tick = setInterval(() => post({ type: 'tick', counters: { ...recorder.counters }, states: runner.states(), connectedPerNode: runner.connectedPerNode(), errorsByCode: Object.fromEntries(recorder.errorsByCode) }), 1000);
  try {
    await runner.startAll();
    const settleBy = Math.max(began + input.durationMs, performance.now() + input.settleMs);
    while (!runner.settled() && performance.now() < settleBy) await new Promise((resolve) => setTimeout(resolve, 50));
    const allConnected = recorder.counters.connected === input.devices.length;
    const allConnectedAtMs = allConnected ? Math.max(...runner.sims.map((sim) => sim.connectedAt ?? 0)) - began : null;
    const remaining = began + input.durationMs - performance.now();
    if (remaining > 0) await new Promise((resolve) => setTimeout(resolve, remaining));
    clearInterval(tick);
    const connectedPerNode = runner.connectedPerNode();
    await runner.stop();
    post({
      type: 'done',
      counters: { ...recorder.counters },
      connectedPerNode,
      errorsByCode: Object.fromEntries(recorder.errorsByCode),
      enroll: recorder.enroll.all(),
      connect: recorder.connect.all(),
      publishAck: recorder.publishAck.all(),
      allConnectedAtMs,
    });
  } catch (error) {
    clearInterval(tick);
    post({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  }
}

await runWorker(workerData as WorkerInput);
