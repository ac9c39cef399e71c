import { spawnSync } from 'node:child_process';

let available: boolean | undefined;

/** Whether util-linux `setpriv --pdeathsig` works here (checked once). */
function setprivAvailable(): boolean {
  available ??= spawnSync('setpriv', ['--pdeathsig', 'TERM', 'true'], { stdio: 'ignore', timeout: 5_000 }).status === 0;
  return available;
}

/**
 * Prefixes a server's command line with `setpriv --pdeathsig TERM`, so the kernel stops the
 * server if the benchmark dies without running its cleanup (SIGKILL, or tsx force-killing a
 * child whose event loop was too busy to acknowledge a relayed signal). setpriv and taskset both
 * exec in place, so the pid stays the server's. Without setpriv the command is returned as is.
 */
export function stopWithParent(command: { file: string; args: string[] }): { file: string; args: string[] } {
  if (!setprivAvailable()) return command;
  return { file: 'setpriv', args: ['--pdeathsig', 'TERM', command.file, ...command.args] };
}
