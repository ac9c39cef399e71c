import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { EST_PATHS } from '../../device-sdk/src/protocol.ts';
import { estRequest } from './est-client.ts';
import { PORT_TAKEN, freePorts } from './ports.ts';
import { SOURCE_NODE_ARGS } from './source-node.ts';
import { waitFor } from './wait.ts';

/** Path of the `fleetgate` bin script. */
export const FLEETGATE_BIN = fileURLToPath(new URL('../../server/bin/fleetgate.js', import.meta.url));

/** A `fleetgate serve` child process. */
export interface ServeProcess {
  readonly child: ChildProcess;
  readonly estUrl: string;
  readonly port: number;
  /** The admin API's URL, when a port was asked for (`adminPort: true`). */
  readonly adminUrl: string;
  /** The MQTT listener's URL, when a port was asked for (`mqttPort: true`). */
  readonly mqttUrl: string;
  /** The metrics URL (`/metrics`; `/healthz`, `/readyz` beside it), when a port was asked for (`metricsPort: true`). */
  readonly metricsUrl: string;
  /** Everything it printed so far. */
  output(): string;
}

type ServeOptions = { args?: readonly string[]; adminPort?: boolean; mqttPort?: boolean; metricsPort?: boolean; env?: Record<string, string> };

/** Attempts when a chosen port was taken between choosing and binding (another test's process). */
const LISTEN_ATTEMPTS = 3;

/**
 * Starts `fleetgate serve` as a separate process and waits until EST answers. A port taken between
 * choosing and binding (`SERVE_LISTEN_FAILED ... EADDRINUSE`) is a race with parallel tests, not a
 * finding: the start is tried again on new ports.
 */
export async function startServeProcess(t: ExecutionContext, dataDir: string, rootPem: string, options: ServeOptions = {}): Promise<ServeProcess> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startServeProcessOnce(t, dataDir, rootPem, options);
    } catch (error) {
      const raced = error instanceof Error && PORT_TAKEN.test(error.message);
      if (!raced || attempt >= LISTEN_ATTEMPTS) throw error;
      t.log(`a chosen port was taken before fleetgate serve bound it; starting again on new ports (attempt ${attempt + 1})`);
    }
  }
}

async function startServeProcessOnce(t: ExecutionContext, dataDir: string, rootPem: string, options: ServeOptions): Promise<ServeProcess> {
  const [port = 0, admin = 0, mqtt = 0, metrics = 0] = await freePorts(4);
  const adminPort = options.adminPort ? admin : 0;
  const mqttPort = options.mqttPort ? mqtt : 0;
  const metricsPort = options.metricsPort ? metrics : 0;
  const args = ['serve', '--data', dataDir, '--host', '127.0.0.1', '--est-port', String(port), '--mqtt-port', String(mqttPort), '--admin-port', String(adminPort), '--metrics-port', String(metricsPort), ...(options.args ?? [])];
  const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, FLEETGATE_BIN, ...args], {
    env: { ...process.env, FLEETGATE_LOG_LEVEL: 'warn', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const estUrl = `https://127.0.0.1:${port}`;
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`fleetgate serve exited: ${output}`);
        return estRequest({ url: estUrl, path: EST_PATHS.cacerts, ca: rootPem }).then(
          (response) => response.status === 200,
          () => false,
        );
      },
      { what: () => `fleetgate serve to answer EST on port ${port}: ${output}`, timeoutMs: 30_000, intervalMs: 50 },
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return { child, estUrl, port, adminUrl: `https://127.0.0.1:${adminPort}`, mqttUrl: `mqtts://127.0.0.1:${mqttPort}`, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, output: () => output };
}
