import type { BenchDevice } from './devices.ts';
import { startDaemon, type Daemon } from './daemon.ts';
import { enrollOnce } from './enroll.ts';
import { freePort } from './free-port.ts';
import { httpsCall, type Target } from './https-call.ts';
import { runClosedLoop } from './load.ts';
import { serverCommand, type Pinning } from './pinning.ts';
import { cpuBetween, readCpuTicks } from './proc-cpu.ts';
import { waitForQuietMachine } from './quiet.ts';
import { percentile } from './stats.ts';
import { waitUntilReady } from './wait-ready.ts';

/** Server CPU of a bare Node https server for the same requests fleetgate got. */
export interface NodeFloorResult {
  readonly requests: number;
  readonly failed: number;
  readonly cpuMsPerRequest: number;
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
export async function startNodeFloorServer(options: { readonly dataDir: string; readonly rootPem: string; readonly pinning: Pinning }): Promise<NodeFloorServer> {
  const target: Target = { host: '127.0.0.1', port: await freePort() };
  const command = serverCommand(options.pinning, process.execPath, ['--import', TSX_LOADER, SERVER_SCRIPT, options.dataDir, String(target.port)]);
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

/**
 * Replays the enrollment load (same devices, same concurrency, fresh mTLS connection each)
 * against node-floor-server.ts: what fleetgate costs above this is its own work (CSR checks,
 * registry, signing, audit), below it is Node's TLS and HTTP.
 */
export async function measureNodeFloor(options: {
  readonly dataDir: string;
  readonly rootPem: string;
  readonly warmup: readonly BenchDevice[];
  readonly devices: readonly BenchDevice[];
  readonly concurrency: number;
  readonly pinning: Pinning;
}): Promise<NodeFloorResult> {
  const { daemon, target } = await startNodeFloorServer(options);
  try {
    // The floor server ignores the path and answers 200 to any authenticated request.
    await runClosedLoop(options.warmup, options.concurrency, (device) => enrollOnce(target, device));
    await waitForQuietMachine(30_000);
    const before = await readCpuTicks(daemon.pid);
    const timed = await runClosedLoop(options.devices, options.concurrency, (device) => enrollOnce(target, device));
    const after = await readCpuTicks(daemon.pid);
    const ok = timed.results.filter((outcome) => outcome.ok);
    return {
      requests: timed.results.length,
      failed: timed.results.length - ok.length,
      cpuMsPerRequest: cpuBetween(before, after).totalMs / timed.results.length,
      requestsPerSecond: ok.length / (timed.wallMs / 1000),
      latencyP50Ms: percentile(
        ok.map((outcome) => outcome.latencyMs),
        50,
      ),
    };
  } finally {
    await daemon.stop();
  }
}
