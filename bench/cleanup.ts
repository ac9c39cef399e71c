import type { ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { progress } from './progress.ts';

/**
 * Everything the benchmark starts or creates is registered here, so that a failure, an exit or a
 * Ctrl-C never leaves a server holding a port or a temp directory full of CA keys behind.
 * Children are kept with the signal that stops them.
 */
const children = new Map<ChildProcess, NodeJS.Signals>();
const tempDirs = new Set<string>();
let interruptedBy: NodeJS.Signals | undefined;

/** The signal that interrupted the benchmark, if one did (errors after it are its consequence). */
export function interruption(): NodeJS.Signals | undefined {
  return interruptedBy;
}

/**
 * Registers a child process to be stopped if the benchmark stops before the child does: with
 * `stopSignal` on an interrupt, and on exit with SIGKILL, or with `stopSignal` when it is not
 * SIGTERM (PostgreSQL's SIGQUIT: a SIGKILLed postmaster would leave its backends behind).
 */
export function trackChild(child: ChildProcess, stopSignal: NodeJS.Signals = 'SIGTERM'): void {
  children.set(child, stopSignal);
  child.once('exit', () => children.delete(child));
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Sends each child still running its stop signal (SIGTERM unless registered otherwise); returns how many were signalled. */
export function stopChildren(): number {
  let count = 0;
  for (const [child, signal] of children) {
    if (running(child) && child.kill(signal)) count++;
  }
  return count;
}

/** How long the exit handler waits for children stopped by their own signal to be gone. */
const EXIT_WAIT_MS = 3_000;

/** Whether a process has ended: gone, or a zombie (the exit handler cannot reap it). */
function ended(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/**
 * For the exit handler, which cannot wait asynchronously: SIGKILL every child, except that a
 * child registered with a stop signal of its own gets that signal and up to
 * {@link EXIT_WAIT_MS} to end, so that its files are not deleted under it.
 */
function stopChildrenSync(): void {
  const waiting: number[] = [];
  for (const [child, signal] of children) {
    if (!running(child) || child.pid === undefined) continue;
    const own = signal !== 'SIGTERM';
    if (child.kill(own ? signal : 'SIGKILL') && own) waiting.push(child.pid);
  }
  const deadline = performance.now() + EXIT_WAIT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (waiting.some((pid) => !ended(pid)) && performance.now() < deadline) Atomics.wait(pause, 0, 0, 10);
}

/** Temp directories are named `fleetgate-<kind>-<pid>-XXXXXX`, so a later run can tell whose they are. */
const TEMP_DIR_PATTERN = /^fleetgate-(?:bench|floor|pgdata)-(\d+)-/;

/** What a temp directory holds: a benchmark's data, a floor's, or a PostgreSQL cluster's. */
export type TempDirKind = 'bench' | 'floor' | 'pgdata';

/**
 * A fresh temp directory, removed when the benchmark ends even if nobody calls
 * {@link removeTempDir}. It holds CA keys: never leave one behind.
 */
export async function makeTempDir(kind: TempDirKind): Promise<string> {
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
 * On exit: stop what is left (SIGKILL, or a child's own stop signal) and delete temp directories
 * (synchronously: 'exit' handlers cannot wait). On SIGINT/SIGTERM/SIGHUP: ask children to stop,
 * give them a moment, then exit 130 so the exit handler finishes the job.
 */
export function installCleanupHandlers(): void {
  process.once('exit', () => {
    stopChildrenSync();
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    interruptedBy = signal;
    progress(`${signal}: stopping ${stopChildren()} child process(es) and exiting`);
    setTimeout(() => process.exit(130), SIGNAL_GRACE_MS);
    // A second signal means "now".
    process.once(signal, () => process.exit(130));
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, onSignal);
}
