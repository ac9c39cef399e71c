import type { BenchDevice } from './devices.ts';
import { startDaemon } from './daemon.ts';
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
