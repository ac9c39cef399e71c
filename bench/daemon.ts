import { spawn } from 'node:child_process';
import { trackChild } from './cleanup.ts';
import { stopWithParent, type ParentDeathOptions } from './orphan-guard.ts';

/** A long-running child (fleetgate serve, openssl s_server) under the benchmark's control. */
export interface Daemon {
  readonly name: string;
  /** The pid /proc is read by: the program itself, never a wrapper shell. */
  readonly pid: number;
  /** Whether it has exited (on its own or stopped). */
  exited(): boolean;
  /** The last few KB it printed, for error messages. */
  outputTail(): string;
  /** Its stop signal, then SIGKILL if it is still running after `graceMs`. Resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** How a daemon is started and stopped, beyond its command line. */
export interface DaemonOptions extends ParentDeathOptions {
  /**
   * What {@link Daemon.stop} and the benchmark's cleanup send it (default SIGTERM). PostgreSQL
   * gets SIGQUIT, its immediate shutdown: its data is thrown away afterwards.
   */
  readonly stopSignal?: NodeJS.Signals;
}

/** Output kept per daemon: enough for a stack trace, bounded however chatty the program is. */
const TAIL_BYTES = 16 * 1024;

/**
 * Starts `file args` without a shell (so the pid is the program's own) with stdin closed and
 * stdout/stderr drained into a bounded tail, because an unread pipe would block a chatty server
 * once the pipe buffer fills. The daemon is told to stop if the benchmark process dies.
 */
export function startDaemon(name: string, file: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env, options: DaemonOptions = {}): Daemon {
  const command = stopWithParent({ file, args: [...args] }, options);
  const stopSignal = options.stopSignal ?? 'SIGTERM';
  const child = spawn(command.file, command.args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child, stopSignal);
  if (child.pid === undefined) {
    // spawn reports ENOENT asynchronously; the pid is missing when the program cannot start.
    child.once('error', () => undefined);
    throw new Error(`cannot start ${name} (${file})`);
  }
  const pid = child.pid;
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  // Not events.once: that rejects on 'error', which would go unhandled when nobody calls stop().
  const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', (error) => keep(Buffer.from(`\n${name}: ${error.message}\n`)));
  const hasExited = (): boolean => child.exitCode !== null || child.signalCode !== null;

  return {
    name,
    pid,
    exited: hasExited,
    outputTail: () => tail,
    async stop(graceMs = 10_000) {
      if (hasExited()) return;
      child.kill(stopSignal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exit;
      clearTimeout(timer);
    },
  };
}
