import { setTimeout as sleep } from 'node:timers/promises';
import { progress } from './progress.ts';
import { readSystemTicks, systemBetween } from './proc-cpu.ts';

/** Busy CPU (in cores) below which the machine counts as quiet: timers, the idle server's housekeeping. */
const QUIET_CORES = 0.15;
const SAMPLE_MS = 1_000;

/**
 * Waits, at most `maxWaitMs`, until the machine is quiet: CPU busy below {@link QUIET_CORES}
 * over a one-second sample, taken while the benchmark and its idle server do nothing. On a shared
 * machine someone else's test run would otherwise land in the timed phase and halve the
 * throughput. Returns the busy cores of the last sample; gives up (and says so) rather than
 * waiting forever.
 */
export async function waitForQuietMachine(maxWaitMs: number): Promise<number> {
  const deadline = performance.now() + maxWaitMs;
  let warned = false;
  for (;;) {
    const before = await readSystemTicks();
    await sleep(SAMPLE_MS);
    const busyCores = systemBetween(before, await readSystemTicks()).busyMs / SAMPLE_MS;
    if (busyCores < QUIET_CORES) return busyCores;
    if (performance.now() >= deadline) {
      progress(`machine still busy (${busyCores.toFixed(2)} cores used by other processes); measuring anyway`);
      return busyCores;
    }
    if (!warned) progress(`machine busy (${busyCores.toFixed(2)} cores used by other processes); waiting up to ${maxWaitMs / 1000} s for it to calm down`);
    warned = true;
  }
}
