import { spawn, type ChildProcess } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import type { ExecutionContext } from 'ava';
import { run } from './run.ts';
import { FLEETGATE_BIN } from './serve-process.ts';
import { SOURCE_NODE_ARGS } from './source-node.ts';
import { waitFor } from './wait.ts';

/** Debian's chromium (`apt-get install chromium`), or $CHROMIUM_PATH. The tests never download a browser. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Fails (never skips) when the browser is missing: CI installs it (.ci/run). */
export async function requireChromium(): Promise<string> {
  try {
    await access(CHROMIUM_PATH, constants.X_OK);
  } catch {
    throw new Error(`no browser at ${CHROMIUM_PATH}: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH`);
  }
  return CHROMIUM_PATH;
}

/** Chromium's flags for a headless test: no sandbox when running as root (containers, CI). */
export const CHROMIUM_ARGS: readonly string[] = process.getuid?.() === 0 ? ['--no-sandbox'] : [];

/** Builds the dashboard's page bundle (server/dist/ui), as `npm run build` does. */
export async function buildDashboardUi(): Promise<void> {
  const built = await run(process.execPath, [new URL('../../server/ui/build.mjs', import.meta.url).pathname]);
  if (built.code !== 0) throw new Error(`building the dashboard page failed: ${built.stderr}`);
}

/** A running `fleetgate dashboard` child process. */
export interface DashboardProcess {
  readonly child: ChildProcess;
  /** The URL it printed, with the token. */
  readonly url: string;
  /** `http://127.0.0.1:PORT` */
  readonly origin: string;
  readonly token: string;
  output(): string;
}

/** Starts `fleetgate dashboard --data DIR --server URL` and waits for the URL it prints. */
export async function startDashboard(t: ExecutionContext, dataDir: string, adminUrl: string, extra: readonly string[] = [], env: Readonly<Record<string, string>> = {}): Promise<DashboardProcess> {
  const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, FLEETGATE_BIN, 'dashboard', '--data', dataDir, '--server', adminUrl, ...extra], {
    env: { ...process.env, FLEETGATE_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const printed = await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`fleetgate dashboard exited ${child.exitCode}: ${output}`);
      return /(http:\/\/127\.0\.0\.1:\d+)\/\?token=([A-Za-z0-9_-]+)/.exec(stdout);
    },
    { what: () => `fleetgate dashboard to print its URL: ${output}`, timeoutMs: 30_000, intervalMs: 50 },
  );
  return { child, url: printed[0], origin: printed[1] ?? '', token: printed[2] ?? '', output: () => output };
}
