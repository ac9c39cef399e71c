import { readFile } from 'node:fs/promises';

/** File descriptors beyond the held connections: listeners, LevelDB, pipes, the connect phase's sockets. */
const HEADROOM = 512;

/** The soft "Max open files" limit of this process (`ulimit -n`), from /proc/self/limits. */
export async function openFilesLimit(): Promise<number> {
  const limits = await readFile('/proc/self/limits', 'utf8');
  const match = /^Max open files\s+(\d+|unlimited)\s+/m.exec(limits);
  if (!match?.[1]) throw new Error('cannot read "Max open files" from /proc/self/limits');
  return match[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match[1]);
}

/**
 * Fails before anything starts when `held` connections cannot be held: each needs a descriptor in
 * the load generator and one in the broker, which inherits this limit. Node cannot raise its own
 * limit, so the message says what to run instead.
 */
export async function assertOpenFilesFor(held: number): Promise<number> {
  const limit = await openFilesLimit();
  if (limit < held + HEADROOM) {
    throw new Error(
      `the open-files limit is ${limit}, and holding ${held} connections needs at least ${held + HEADROOM} ` +
        `(in this process and in the broker, which inherits it): run \`ulimit -n ${held + HEADROOM}\` (or more) in the shell first, or lower --storm-devices`,
    );
  }
  return limit;
}
