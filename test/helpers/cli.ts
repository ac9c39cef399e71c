import type { ExecutionContext } from 'ava';
import { run, type RunResult } from './run.ts';
import { FLEETGATE_BIN } from './serve-process.ts';
import { SOURCE_NODE_ARGS } from './source-node.ts';

/**
 * Runs the real `fleetgate` CLI (the package's bin script) in a child process and waits for it.
 * The environment is the test's own minus the variables the CLI reads (FLEETGATE_DATA, FLEETGATE_REGISTRY_URL,
 * FLEETGATE_CA_PASSPHRASE, FLEETGATE_LOG_LEVEL), so a developer's shell cannot change the outcome;
 * pass them in `env` to set them.
 */
export function fleetgate(args: readonly string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.FLEETGATE_DATA;
  delete env.FLEETGATE_CA_PASSPHRASE;
  delete env.FLEETGATE_LOG_LEVEL;
  delete env.FLEETGATE_REGISTRY_URL;
  delete env.FLEETGATE_CLUSTER_REDIS;
  return run(process.execPath, [...SOURCE_NODE_ARGS, FLEETGATE_BIN, ...args], { env: { ...env, ...options.env }, cwd: options.cwd });
}

/** A stack trace or the CLI's last-resort message: never in what an operator sees. */
export const STACK_TRACE = /unexpected error|\n\s+at /;

/** A failed call: exit status, one line `fleetgate: CODE: ...` on stderr, no stack trace, nothing on stdout. */
export function refused(t: ExecutionContext, result: RunResult, label: string, exit: number, code: string, message?: RegExp): void {
  t.is(result.code, exit, `${label}: exit status (stderr: ${result.stderr})`);
  t.true(result.stderr.startsWith(`fleetgate: ${code}: `), `${label}: stderr starts with the code ${code}: ${result.stderr}`);
  if (message) t.regex(result.stderr, message, label);
  t.false(STACK_TRACE.test(result.stderr), `${label}: no stack trace: ${result.stderr}`);
  t.is(result.stdout, '', `${label}: nothing on stdout`);
}
