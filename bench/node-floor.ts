import type { BenchDevice } from './devices.ts';
import { startDaemon, type Daemon } from './daemon.ts';
import { enrollOnce, type EnrollOutcome } from './enroll.ts';
import { freePort } from './free-port.ts';
import { httpsCall, type Target } from './https-call.ts';
import { runClosedLoop, type LoadPhase } from './load.ts';
import { serverCommand, type Pinning } from './pinning.ts';
import type { CpuSpent } from './proc-cpu.ts';
import { percentile } from './stats.ts';
import { waitUntilReady } from './wait-ready.ts';

/** Server CPU of a bare Node https server for the same requests fleetgate got. */
export interface NodeFloorResult {
  readonly requests: number;
  readonly failed: number;
  readonly cpuMsPerRequest: number;
  /** Of cpuMsPerRequest, the main thread's. */
  readonly mainThreadCpuMsPerRequest: number;
  readonly requestsPerSecond: number;
  readonly latencyP50Ms: number;
}

const SERVER_SCRIPT = new URL('./node-floor-server.ts', import.meta.url).pathname;
// Resolved here so the floor server finds tsx wherever the benchmark is started from.
const TSX_LOADER = import.meta.resolve('tsx');

/** A running bench/node-floor-server.ts and where it listens. */
export interface NodeFloorServer {
  readonly daemon: Daemon;
  readonly target: Target;
}

/**
 * Starts node-floor-server.ts (a bare Node https server with the EST listener's TLS settings) on
 * a free port, pinned like the server under test, and waits until it answers over TLS verified
 * against `rootPem`. The enrollment benchmark replays its load against it; the simulator
 * benchmark measures its client-side floor with it.
 */
export async function startNodeFloorServer(options: {
  readonly dataDir: string;
  readonly rootPem: string;
  readonly pinning: Pinning;
  /** Extra node options (`--cpu-prof`, say), before the script. */
  readonly nodeArgs?: readonly string[];
}): Promise<NodeFloorServer> {
  const target: Target = { host: '127.0.0.1', port: await freePort() };
  const command = serverCommand(options.pinning, process.execPath, [...(options.nodeArgs ?? []), '--import', TSX_LOADER, SERVER_SCRIPT, options.dataDir, String(target.port)]);
  const daemon = startDaemon('node https floor server', command.file, command.args);
  try {
    await waitUntilReady(
      daemon,
      async () => {
        const outcome = await httpsCall(target, { method: 'GET', path: '/', tls: { ca: options.rootPem }, timeoutMs: 2_000 });
        return outcome.status === 0 ? (outcome.error ?? 'no response') : undefined;
      },
      30_000,
    );
  } catch (error) {
    await daemon.stop();
    throw error;
  }
  return { daemon, target };
}

/** What one timed phase against the floor server measured, over its blocks together. */
export function nodeFloorResult(cpu: CpuSpent, phase: LoadPhase<EnrollOutcome>): NodeFloorResult {
  const ok = phase.results.filter((outcome) => outcome.ok);
  return {
    requests: phase.results.length,
    failed: phase.results.length - ok.length,
    cpuMsPerRequest: cpu.totalMs / phase.results.length,
    mainThreadCpuMsPerRequest: cpu.mainThreadMs / phase.results.length,
    requestsPerSecond: ok.length / (phase.wallMs / 1000),
    latencyP50Ms: percentile(
      ok.map((outcome) => outcome.latencyMs),
      50,
    ),
  };
}

/** Untimed requests against the floor server (JIT and TLS warm-up), as fleetgate gets them. */
export async function warmUpNodeFloor(floor: NodeFloorServer, devices: readonly BenchDevice[], concurrency: number): Promise<void> {
  // The floor server ignores the path and answers 200 to any authenticated request.
  const warm = await runClosedLoop(devices, concurrency, (device) => enrollOnce(floor.target, device));
  const failed = warm.results.filter((outcome) => !outcome.ok).length;
  if (failed > 0) throw new Error(`node https floor: ${failed} of ${devices.length} warm-up requests failed\n${floor.daemon.outputTail()}`);
}
