import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PORT_TAKEN } from './ports.ts';
import { SOURCE_NODE_OPTIONS } from './source-node.ts';
import { tempDir } from './temp-dir.ts';
import { waitFor } from './wait.ts';

/*
 * Executable documentation: a guide under docs/ whose ```bash blocks, in order, are the whole
 * walk-through. A test runs exactly those blocks in one bash (set -euo pipefail) in an empty
 * directory, the way a reader pastes them from the repository root, and then checks what the
 * guide claims to show. Whatever the guide starts in the background (`fleetgate serve &`,
 * `mosquitto_sub &`) stays in the script's process group, which the test stops in teardown.
 */

/** The repository root (where `node_modules/.bin/fleetgate` is). */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Fence languages a guide may use: `bash` is run, the others are shown only. */
export const DOC_FENCE_LANGUAGES: ReadonlySet<string> = new Set(['bash', 'text', 'console']);

/** A whole guide runs in seconds; this bounds a hung step. */
export const DOC_SCRIPT_TIMEOUT_MS = 45_000;

/** One fenced code block of a markdown file. */
export interface FencedBlock {
  readonly language: string;
  readonly body: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
}

/** The top-level ``` fenced blocks of a markdown text, in order. */
export function fencedBlocks(markdown: string): FencedBlock[] {
  const blocks: FencedBlock[] = [];
  let open: { language: string; line: number; lines: string[] } | undefined;
  markdown.split('\n').forEach((text, index) => {
    if (open) {
      if (/^```\s*$/.test(text)) {
        blocks.push({ language: open.language, body: open.lines.join('\n'), line: open.line });
        open = undefined;
      } else {
        open.lines.push(text);
      }
      return;
    }
    const fence = /^```\s*(\S*)\s*$/.exec(text);
    if (fence) open = { language: fence[1] ?? '', line: index + 1, lines: [] };
  });
  if (open) throw new Error(`unclosed code fence at line ${open.line}`);
  return blocks;
}

/** The ```bash blocks of a guide, in order. */
export async function bashBlocks(guidePath: string): Promise<FencedBlock[]> {
  return fencedBlocks(await readFile(guidePath, 'utf8')).filter((block) => block.language === 'bash');
}

/**
 * One bash script made of `blocks`, under `set -euo pipefail` so the first failing step stops
 * it; each block is preceded by a comment naming its line in the guide (for failure reports).
 */
export function docScript(guidePath: string, blocks: readonly FencedBlock[]): string {
  const name = relative(REPO_ROOT, guidePath);
  return ['set -euo pipefail', ...blocks.map((block) => `# ${name} line ${block.line}\n${block.body}`)].join('\n');
}

/** What a bash run printed. */
export interface ScriptResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/**
 * Runs `script` in bash as the leader of a new process group, so that everything it starts in
 * the background (the guide's `fleetgate serve &`) can be found again and stopped by group id.
 * After `timeoutMs` the whole group is killed and the result says `timedOut`.
 */
export function runScript(
  script: string,
  options: { cwd: string; env: NodeJS.ProcessEnv; onStart: (pgid: number) => void; timeoutMs?: number },
): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['--noprofile', '--norc', '-c', script], {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pgid = child.pid;
    if (pgid === undefined) {
      child.once('error', reject);
      return;
    }
    options.onStart(pgid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(pgid, 'SIGKILL');
    }, options.timeoutMs ?? DOC_SCRIPT_TIMEOUT_MS);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Signals a process group; false if it no longer exists. */
export function killGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** The four listener ports of `fleetgate serve`. */
export interface ListenerPorts {
  readonly est: number;
  readonly mqtt: number;
  readonly admin: number;
  readonly metrics: number;
}

/**
 * `count` sets of four listener ports that were free a moment ago on 127.0.0.1, all different:
 * they are held open together before being released, so the operating system cannot hand out
 * one of them twice (a guide that runs two servers at once needs two sets).
 */
export async function freeListenerPortSets(count: number): Promise<ListenerPorts[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let index = 0; index < 4 * count; index++) {
      const server = createServer();
      servers.push(server);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => {
            const address = server.address();
            resolve(typeof address === 'object' && address ? address.port : 0);
          });
        }),
      );
    }
    return Array.from({ length: count }, (_, set) => {
      const [est, mqtt, admin, metrics] = ports.slice(4 * set, 4 * set + 4) as [number, number, number, number];
      return { est, mqtt, admin, metrics };
    });
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()))));
  }
}

/** Four listener ports that were free a moment ago on 127.0.0.1, all different. */
export async function freeListenerPorts(): Promise<ListenerPorts> {
  const [ports] = await freeListenerPortSets(1);
  if (!ports) throw new Error('no ports');
  return ports;
}

/** Variables a guide reads from the caller; the guide's own defaults apply instead. */
const UNSET_VARIABLES = ['DATA', 'EST', 'FLEETGATE_DATA', 'FLEETGATE_CA_PASSPHRASE', 'FLEETGATE_REGISTRY_URL', 'FLEETGATE_SERVER', 'OPENSSL_CONF', 'CURL_HOME'] as const;

/**
 * The environment a guide runs in: the caller's, with `fleetgate` on PATH as a reader has it
 * after `npm install` (guides also prepend $PWD/node_modules/.bin, which from a temp directory
 * does not exist), the listener ports as EST_PORT, MQTT_PORT, ADMIN_PORT, METRICS_PORT, and
 * nothing that would override the guide's own defaults.
 */
export function docEnvironment(ports: ListenerPorts): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${join(REPO_ROOT, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`,
    EST_PORT: String(ports.est),
    MQTT_PORT: String(ports.mqtt),
    ADMIN_PORT: String(ports.admin),
    METRICS_PORT: String(ports.metrics),
    FLEETGATE_LOG_LEVEL: 'info',
    // `fleetgate` from PATH runs the sources, like every other command in the tests.
    NODE_OPTIONS: SOURCE_NODE_OPTIONS,
  };
  for (const name of UNSET_VARIABLES) delete env[name];
  return env;
}

/** The last `length` characters of a text, for failure messages. */
export const tail = (text: string, length = 4000): string => (text.length > length ? `...${text.slice(-length)}` : text);

/** A guide's run, with a report for failure messages. */
export interface DocRun extends ScriptResult {
  /** Exit status and the tails of stdout and stderr. */
  readonly report: string;
}

/**
 * Runs the ```bash blocks of `guidePath` as one script in `cwd` with `env`. Teardown kills the
 * script's process group (the guide stops its own server; if it failed before that, this does)
 * and waits until the group is gone.
 */
export async function runDocScript(
  t: ExecutionContext,
  guidePath: string,
  options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<DocRun> {
  const script = docScript(guidePath, await bashBlocks(guidePath));
  let pgid: number | undefined;
  t.teardown(async () => {
    if (pgid === undefined || !killGroup(pgid, 'SIGKILL')) return;
    const group = pgid;
    // Best effort: a group that outlives this is reported by the port checks of the test itself.
    await waitFor(() => !killGroup(group, 0), { what: `process group ${group} to exit`, timeoutMs: 2500, intervalMs: 50 }).catch(() => undefined);
  });
  const result = await runScript(script, { ...options, onStart: (id) => (pgid = id) });
  const report = `exit ${String(result.code)} signal ${String(result.signal)}${result.timedOut ? ' (timed out)' : ''}\n--- stdout\n${tail(result.stdout)}\n--- stderr\n${tail(result.stderr)}`;
  return { ...result, report };
}

/** Runs of a guide when a chosen port was taken before its server could bind it. */
const PORT_RACE_ATTEMPTS = 3;

/**
 * {@link runDocScript} in a fresh directory with free listener ports ({@link docEnvironment}).
 * A port that was free when chosen can be taken by a parallel test before the guide's server
 * binds it: that run ends with `SERVE_LISTEN_FAILED ... EADDRINUSE`, which is a race between
 * tests, not a finding about the guide, so the guide runs again from the start, in a new
 * directory on new ports (up to {@link PORT_RACE_ATTEMPTS} runs). Any other failure is returned.
 */
export async function runDocScriptOnFreePorts(
  t: ExecutionContext,
  guidePath: string,
  options: { tempPrefix: string; timeoutMs?: number },
): Promise<DocRun & { cwd: string; ports: ListenerPorts }> {
  for (let attempt = 1; ; attempt += 1) {
    const cwd = await tempDir(t, options.tempPrefix);
    const ports = await freeListenerPorts();
    const run = await runDocScript(t, guidePath, { cwd, env: docEnvironment(ports), ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) });
    const log = await readFile(join(cwd, 'fleetgate.log'), 'utf8').catch(() => '');
    const raced = run.code !== 0 && PORT_TAKEN.test(`${run.stdout}\n${run.stderr}\n${log}`);
    if (!raced || attempt >= PORT_RACE_ATTEMPTS) return { ...run, cwd, ports };
    t.log(`a chosen port was taken before the guide's server bound it; running the guide again on new ports (attempt ${attempt + 1})`);
  }
}
