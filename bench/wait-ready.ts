import { setTimeout as sleep } from 'node:timers/promises';
import type { Daemon } from './daemon.ts';

/**
 * Polls `check` every 100 ms until it returns `undefined` (ready) or the time is up; a returned
 * string is the reason it is not ready yet. Fails at once if the daemon exits meanwhile, with
 * what it printed.
 */
export async function waitUntilReady(daemon: Daemon, check: () => Promise<string | undefined>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = 'no attempt yet';
  while (performance.now() < deadline) {
    if (daemon.exited()) throw new Error(`${daemon.name} exited before it was ready:\n${daemon.outputTail()}`);
    const reason = await check();
    if (reason === undefined) return;
    last = reason;
    await sleep(100);
  }
  throw new Error(`${daemon.name} not ready after ${timeoutMs} ms (last: ${last}):\n${daemon.outputTail()}`);
}
