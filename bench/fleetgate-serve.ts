import { EST_PATHS } from '@fleetgate/device-sdk';
import { startDaemon, type Daemon } from './daemon.ts';
import { FLEETGATE_BIN } from './fleetgate-cli.ts';
import { freePorts } from './free-port.ts';
import { httpsCall, type Target } from './https-call.ts';
import { serverCommand, type Pinning } from './pinning.ts';
import { readCommand } from './proc-cpu.ts';
import { waitUntilReady } from './wait-ready.ts';

/** A running `fleetgate serve` and where its EST listener is. */
export interface FleetgateServer {
  readonly daemon: Daemon;
  readonly target: Target;
  /** Its Prometheus endpoint (plain HTTP on 127.0.0.1). */
  readonly metricsUrl: string;
}

/** How long the server may take from spawn to answering /cacerts (tsx compiles on first start). */
const READY_TIMEOUT_MS = 60_000;

/**
 * Starts `node server/bin/fleetgate.js serve` on free loopback ports, pinned when pinning
 * applies, with warn-level logs: at info level the server writes a JSON line per enrollment,
 * which would be measured as server CPU. Resolves once GET /cacerts answers 200 over TLS
 * verified against the root the data directory pins.
 */
export async function startFleetgate(options: {
  readonly dataDir: string;
  readonly rootPem: string;
  readonly pinning: Pinning;
  /** Extra node flags for the server process (`--cpu-prof ...`). */
  readonly nodeArgs?: readonly string[];
  /** `--registry URL`: the registry on PostgreSQL instead of LevelDB in the data directory. */
  readonly registryUrl?: string;
}): Promise<FleetgateServer> {
  // serve also starts the MQTT broker, the admin API and the metrics endpoint: they get free
  // ports too, so the benchmark never collides with a fleetgate already running on the defaults.
  const [port, mqttPort, adminPort, metricsPort] = await freePorts(4);
  if (port === undefined) throw new Error('no free port');
  const target: Target = { host: '127.0.0.1', port };
  const ports = ['--est-port', port, '--mqtt-port', mqttPort, '--admin-port', adminPort, '--metrics-port', metricsPort].map(String);
  const registry = options.registryUrl === undefined ? [] : ['--registry', options.registryUrl];
  // process.execPath with the bin script, not npx: the pid we get must be the server itself.
  const command = serverCommand(options.pinning, process.execPath, [...(options.nodeArgs ?? []), FLEETGATE_BIN, 'serve', '--data', options.dataDir, '--host', target.host, ...ports, ...registry]);
  const daemon = startDaemon('fleetgate serve', command.file, command.args, { ...process.env, FLEETGATE_LOG_LEVEL: 'warn' });
  try {
    await waitUntilReady(
      daemon,
      async () => {
        const outcome = await httpsCall(target, { method: 'GET', path: EST_PATHS.cacerts, tls: { ca: options.rootPem }, timeoutMs: 2_000 });
        return outcome.status === 200 ? undefined : (outcome.error ?? `HTTP ${outcome.status}`);
      },
      READY_TIMEOUT_MS,
    );
    // setpriv and taskset exec node in place; if the pid still named one of them, /proc would
    // measure the wrong process.
    const comm = await readCommand(daemon.pid);
    if (comm === 'taskset' || comm === 'setpriv') throw new Error(`pid ${daemon.pid} is still ${comm}, not the server`);
    return { daemon, target, metricsUrl: `http://${target.host}:${metricsPort}/metrics` };
  } catch (error) {
    await daemon.stop();
    throw error;
  }
}
