import { run, type RunResult } from './run.ts';
import { FLEETGATE_BIN } from './serve-process.ts';
import { SOURCE_NODE_ARGS } from './source-node.ts';

/**
 * Runs the real `fleetgate` CLI (the package's bin script) in a child process and waits for it.
 * The environment is the test's own minus the variables the CLI reads (FLEETGATE_DATA,
 * FLEETGATE_CA_PASSPHRASE, FLEETGATE_LOG_LEVEL), so a developer's shell cannot change the outcome;
 * pass them in `env` to set them.
 */
export function fleetgate(args: readonly string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.FLEETGATE_DATA;
  delete env.FLEETGATE_CA_PASSPHRASE;
  delete env.FLEETGATE_LOG_LEVEL;
  return run(process.execPath, [...SOURCE_NODE_ARGS, FLEETGATE_BIN, ...args], { env: { ...env, ...options.env }, cwd: options.cwd });
}
