/**
 * `fleetgate serve` for the demo, in a process of its own: the simulator's CPU figures and the
 * server's (read from its /metrics) then each measure one program. In the demo's own process
 * they measured the same process twice (24.99 ms "simulator" and 38.06 ms "server" CPU per
 * device in one 300-device run on 2026-12-03, both the sum of the two).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

/** The `fleetgate` command of this repository (run with the demo's own node flags: tsx, sources). */
const FLEETGATE_BIN = fileURLToPath(new URL('../server/bin/fleetgate.js', import.meta.url));
/** From spawn to the 'fleetgate listening' log line (tsx compiles the sources on first start). */
const START_TIMEOUT_MS = 60_000;
/** SIGTERM lets in-flight requests finish; a server still running after this is killed. */
const STOP_TIMEOUT_MS = 15_000;
/** Log lines kept to explain a server that did not start. */
const TAIL_LINES = 20;
/** pino's level numbers: warn and above are shown on the demo's stderr. */
const WARN_LEVEL = 40;

/** Where the server listens, from its 'fleetgate listening' log line. */
export interface ServerUrls {
  readonly estUrl: string;
  readonly mqttUrl: string;
  readonly adminUrl: string;
  readonly metricsUrl: string;
}

export interface DemoServer {
  readonly urls: ServerUrls;
  readonly pid: number;
  /** SIGTERM, then the exit code (null when it had to be killed or died by a signal). */
  stop(): Promise<number | null>;
}

/** A pino line of the server, as far as the demo reads it. */
interface LogLine {
  readonly level?: number;
  readonly msg?: string;
  readonly estUrl?: string;
  readonly mqttUrl?: string;
  readonly adminUrl?: string;
  readonly metricsUrl?: string;
}

function parseLogLine(line: string): LogLine | undefined {
  try {
    const parsed: unknown = JSON.parse(line);
    return typeof parsed === 'object' && parsed !== null ? (parsed as LogLine) : undefined;
  } catch {
    return undefined;
  }
}

function listeningUrls(entry: LogLine): ServerUrls | undefined {
  const { msg, estUrl, mqttUrl, adminUrl, metricsUrl } = entry;
  if (msg !== 'fleetgate listening' || !estUrl || !mqttUrl || !adminUrl || !metricsUrl) return undefined;
  return { estUrl, mqttUrl, adminUrl, metricsUrl };
}

/**
 * Starts `fleetgate serve --data dataDir` on free loopback ports and resolves once it listens.
 * Its warnings and errors go to stderr as `server: ...`; the info lines (one per enrollment)
 * are dropped. The server is stopped if the demo is interrupted or exits.
 */
export async function startDemoServer(dataDir: string): Promise<DemoServer> {
  const ports = ['--est-port', '--mqtt-port', '--admin-port', '--metrics-port'].flatMap((flag) => [flag, '0']);
  const child = spawn(process.execPath, [...process.execArgv, FLEETGATE_BIN, 'serve', '--data', dataDir, '--host', '127.0.0.1', ...ports], {
    env: { ...process.env, FLEETGATE_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (child.pid === undefined) throw new Error(`cannot start ${FLEETGATE_BIN}`);
  const pid = child.pid;
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  /** SIGTERM (in-flight requests finish, the registry closes), SIGKILL if it is still running after the grace. */
  const terminate = async (): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    const [code] = await exited;
    clearTimeout(killer);
    return code;
  };
  const killOnExit = (): void => {
    child.kill('SIGTERM');
  };
  // Interrupted: the server shuts down gracefully (its registry closed) before the demo exits.
  const interrupted = (signal: NodeJS.Signals): void => {
    void terminate().then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('exit', killOnExit);
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  const tail: string[] = [];
  let listening: (urls: ServerUrls) => void = () => undefined;
  const started = new Promise<ServerUrls>((resolve) => {
    listening = resolve;
  });
  let urls: ServerUrls | undefined;
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (!urls) {
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      const entry = parseLogLine(line);
      urls = entry && listeningUrls(entry);
      if (urls) listening(urls);
      return;
    }
    // After start-up, parse only what is shown: the info lines stay cheap for this process.
    if (!line.startsWith('{"level":') || Number(line.slice(9, 11)) < WARN_LEVEL) return;
    const entry = parseLogLine(line);
    process.stderr.write(`server: ${entry?.msg ?? line}\n`);
  });

  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`fleetgate serve did not listen within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
  });
  const died = exited.then(([code, signal]) => Promise.reject(new Error(`fleetgate serve exited (${signal ?? `code ${code}`}) before listening:\n${tail.join('\n')}`)));
  // Only a rejection before the race settles matters; later ones are the server's normal exit.
  died.catch(() => undefined);
  try {
    const found = await Promise.race([started, timedOut, died]);
    return {
      urls: found,
      pid,
      stop() {
        process.removeListener('exit', killOnExit);
        process.removeListener('SIGINT', interrupted);
        process.removeListener('SIGTERM', interrupted);
        return terminate();
      },
    };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
