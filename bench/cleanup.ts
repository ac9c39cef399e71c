import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { progress } from './progress.ts';

/**
 * Everything the benchmark starts or creates is registered here, so that a failure, an exit or a
 * Ctrl-C never leaves a server holding a port or a temp directory full of CA keys behind.
 */
const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let interruptedBy: NodeJS.Signals | undefined;

/** The signal that interrupted the benchmark, if one did (errors after it are its consequence). */
export function interruption(): NodeJS.Signals | undefined {
  return interruptedBy;
}

/** Registers a child process to be killed if the benchmark stops before the child does. */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Sends `signal` to every child still running; returns how many were signalled. */
export function signalChildren(signal: NodeJS.Signals): number {
  let count = 0;
  for (const child of children) {
    if (running(child) && child.kill(signal)) count++;
  }
  return count;
}

/** Temp directories are named `fleetgate-<kind>-<pid>-XXXXXX`, so a later run can tell whose they are. */
const TEMP_DIR_PATTERN = /^fleetgate-(?:bench|floor)-(\d+)-/;

/**
 * A fresh temp directory, removed when the benchmark ends even if nobody calls
 * {@link removeTempDir}. It holds CA keys: never leave one behind.
 */
export async function makeTempDir(kind: 'bench' | 'floor'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `fleetgate-${kind}-${process.pid}-`));
  tempDirs.add(dir);
  return dir;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temp directories of earlier benchmark processes that no longer exist (killed with
 * SIGKILL before their exit handler ran). Directories of running benchmarks are left alone.
 */
export async function sweepStaleTempDirs(): Promise<number> {
  let removed = 0;
  for (const name of await readdir(tmpdir())) {
    const pid = Number(TEMP_DIR_PATTERN.exec(name)?.[1]);
    if (!pid || pid === process.pid || alive(pid)) continue;
    await rm(join(tmpdir(), name), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

/** Removes a temp directory made by {@link makeTempDir}. */
export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** How long children get to stop on SIGTERM after a signal before the process exits anyway. */
const SIGNAL_GRACE_MS = 1_500;

/**
 * On exit: SIGKILL what is left and delete temp directories (synchronously: 'exit' handlers cannot
 * wait). On SIGINT/SIGTERM/SIGHUP: ask children to stop, give them a moment, then exit 130 so the
 * exit handler finishes the job.
 */
export function installCleanupHandlers(): void {
  process.once('exit', () => {
    signalChildren('SIGKILL');
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    interruptedBy = signal;
    progress(`${signal}: stopping ${signalChildren('SIGTERM')} child process(es) and exiting`);
    setTimeout(() => process.exit(130), SIGNAL_GRACE_MS);
    // A second signal means "now".
    process.once(signal, () => process.exit(130));
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, onSignal);
}
