import { spawnSync } from 'node:child_process';

let available: boolean | undefined;

/** Whether util-linux `setpriv --pdeathsig` works here (checked once). */
function setprivAvailable(): boolean {
  available ??= spawnSync('setpriv', ['--pdeathsig', 'TERM', 'true'], { stdio: 'ignore', timeout: 5_000 }).status === 0;
  return available;
}

/** How a server is tied to the benchmark's life. */
export interface ParentDeathOptions {
  /**
   * What the kernel sends the server when the benchmark dies (default TERM). PostgreSQL wants
   * QUIT: TERM is its "smart" shutdown, which waits for every client to disconnect.
   */
  readonly signal?: 'TERM' | 'QUIT';
  /**
   * Run the server as this user (and its groups) instead of ours: `initdb` and `postgres` refuse
   * to run as root. setpriv switches user before it sets the death signal (a change of user
   * clears it, so the two must be one setpriv, not two).
   */
  readonly user?: string;
}

/**
 * Prefixes a server's command line with `setpriv --pdeathsig TERM`, so the kernel stops the
 * server if the benchmark dies without running its cleanup (SIGKILL, or tsx force-killing a
 * child whose event loop was too busy to acknowledge a relayed signal). setpriv and taskset both
 * exec in place, so the pid stays the server's. Without setpriv the command is returned as is,
 * unless it must run as another user: then there is no way to start it with the right pid.
 */
export function stopWithParent(command: { file: string; args: string[] }, options: ParentDeathOptions = {}): { file: string; args: string[] } {
  const user = options.user === undefined ? [] : asUser(options.user);
  if (!setprivAvailable()) {
    if (options.user !== undefined) throw new Error(`running ${command.file} as ${options.user} needs util-linux setpriv, which is not available`);
    return command;
  }
  return { file: 'setpriv', args: [...user, '--pdeathsig', options.signal ?? 'TERM', command.file, ...command.args] };
}

/** setpriv's options that run a program as `user` with its primary group and supplementary groups. */
export function asUser(user: string): string[] {
  return ['--reuid', user, '--regid', user, '--init-groups'];
}
