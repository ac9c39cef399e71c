import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Which CPUs the server under test and the load generator run on. */
export type Pinning =
  | { readonly applied: true; readonly serverCpu: number; readonly loadCpu: number }
  | { readonly applied: false; readonly reason: string };

/** The server (fleetgate or openssl s_server) gets this CPU ... */
export const SERVER_CPU = 0;
/** ... and the benchmark process with every client it starts gets this one. */
export const LOAD_CPU = 1;

async function tasksetAvailable(): Promise<boolean> {
  try {
    await run('taskset', ['--version'], { timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Pins this process to {@link LOAD_CPU}, so that the load generator and the server do not steal
 * each other's core and the server's CPU per operation is not inflated by being descheduled.
 * `-a` pins every thread: libuv's pool and V8's helpers already exist at this point, and
 * `taskset -p` alone would move only the main thread. Children started afterwards (openssl
 * s_time, the fleetgate CLI for init and bootstrap) inherit the mask.
 */
export async function pinLoadGenerator(enabled: boolean): Promise<Pinning> {
  if (!enabled) return { applied: false, reason: 'disabled with --no-pin' };
  if (!(await tasksetAvailable())) return { applied: false, reason: 'taskset not found' };
  const cpus = availableParallelism();
  if (cpus < 2) return { applied: false, reason: `only ${cpus} CPU available` };
  try {
    await run('taskset', ['-a', '-p', '-c', String(LOAD_CPU), String(process.pid)], { timeout: 5_000 });
  } catch (error) {
    return { applied: false, reason: `taskset failed: ${(error as Error).message.split('\n')[0] ?? 'unknown error'}` };
  }
  return { applied: true, serverCpu: SERVER_CPU, loadCpu: LOAD_CPU };
}

/**
 * The command line that starts a server under the pinning: `taskset -c 0 <file> <args>`.
 * taskset execs the program, so the child's pid is the server's pid, which /proc is read by.
 */
export function serverCommand(pinning: Pinning, file: string, args: readonly string[]): { file: string; args: string[] } {
  if (!pinning.applied) return { file, args: [...args] };
  return { file: 'taskset', args: ['-c', String(pinning.serverCpu), file, ...args] };
}

/** One line for humans: what pinning did. */
export function describePinning(pinning: Pinning): string {
  return pinning.applied ? `server on CPU ${pinning.serverCpu}, load generator on CPU ${pinning.loadCpu} (taskset)` : `not pinned: ${pinning.reason}`;
}
