import type { Logger } from 'pino';
import { MAX_WORKERS, RESTARTS_PER_MINUTE, workerSpec } from '../../cluster/worker-protocol.ts';
import { dataLayout, resolveDataDir } from '../../datadir/layout.ts';
import { DEFAULT_LISTEN } from '../../listen.ts';
import { integerOption, type Command } from '../args.ts';
import { clusterRedisOption, nodeIdOption, registryUrlOption } from '../registry-option.ts';
import { recordAdminUrl } from '../server-url.ts';

export const serveCommand: Command = {
  path: ['serve'],
  help: `Usage: fleetgate serve [--data DIR] [--registry URL] [--cluster-redis URL] [--node-id ID] [--workers N] [--host H] [--est-port P] [--mqtt-port P] [--admin-port P] [--metrics-port P]

Starts every listener:
  EST enrollment (RFC 7030, HTTPS, client certificates)  https://H:8443/.well-known/est/{cacerts,simpleenroll,simplereenroll,csrattrs}
                                                         and the CRL at https://H:8443/crl
  MQTT broker (TLS, operational device certificates)     mqtts://H:8883
  admin API (HTTPS, operator certificates)               https://H:9443/v1/...
  Prometheus metrics (plain HTTP)                        http://H:9464/metrics
Logs are JSON lines (pino) on stdout; FLEETGATE_LOG_LEVEL sets the level.
The admin URL is recorded in <data>/run/admin-url while the server runs: admin commands given
the same --data find it without --server.
SIGINT or SIGTERM stops accepting, lets in-flight requests finish, and exits.
With --workers N, N worker processes share the EST, MQTT and admin ports (node:cluster, round
robin), each a cluster node named <node-id>-w0, -w1, ...; this process, the primary, serves the
metrics of all of them on the metrics port (/readyz: 200 when every worker is ready), restarts a
worker that dies (after 1 s, doubling; it gives up after ${RESTARTS_PER_MINUTE} restarts within a minute:
SERVE_WORKER_FAILED), and stops them all on SIGINT or SIGTERM.

Options:
  --data DIR          data directory made by \`fleetgate init\` (default ./data or $FLEETGATE_DATA)
  --registry URL      the registry on PostgreSQL (postgres://user@host:port/db), shared by every
                      fleetgate process given the same URL (default $FLEETGATE_REGISTRY_URL, then
                      config.json registry.url, else LevelDB in <data>/registry; docs/postgres.md)
  --cluster-redis URL cluster mode: MQTT routing, persistent sessions and retained messages shared
                      with the other nodes through Redis (redis://host:port); needs --registry
                      (default $FLEETGATE_CLUSTER_REDIS, then config.json cluster.redis; docs/cluster.md)
  --node-id ID        this node's name in the cluster: presence, device show, logs
                      (default config.json cluster.nodeId, else host name and process id)
  --workers N         worker processes on the same ports, 1 to ${MAX_WORKERS} (default config.json
                      cluster.workers, else 1: one process); above 1 needs a PostgreSQL registry
                      and --cluster-redis (else SERVE_CLUSTER_INVALID). Limits in config.json
                      apply to each worker.
  --host H            address to listen on (default ${DEFAULT_LISTEN.host})
  --est-port P        EST port (default ${DEFAULT_LISTEN.estPort}; 0 picks a free port)
  --mqtt-port P       MQTT over TLS port (default ${DEFAULT_LISTEN.mqttPort})
  --admin-port P      admin API port (default ${DEFAULT_LISTEN.adminPort})
  --metrics-port P    Prometheus metrics port (default ${DEFAULT_LISTEN.metricsPort})
  -h, --help          this help`,
  options: {
    data: { type: 'string' },
    registry: { type: 'string' },
    'cluster-redis': { type: 'string' },
    'node-id': { type: 'string' },
    workers: { type: 'string' },
    host: { type: 'string' },
    'est-port': { type: 'string' },
    'mqtt-port': { type: 'string' },
    'admin-port': { type: 'string' },
    'metrics-port': { type: 'string' },
  },
  async run(values) {
    const { createLogger } = await import('../../logger.ts');
    const logger = createLogger();
    // A worker forked by the primary of `--workers N`: it runs what the primary resolved.
    const spec = workerSpec();
    if (spec) return (await import('../../cluster/worker.ts')).runWorker(spec, logger);
    const dataDir = resolveDataDir(values.data as string | undefined);
    const registryFlag = registryUrlOption(values);
    const redisFlag = clusterRedisOption(values);
    const nodeIdFlag = nodeIdOption(values);
    const listen = {
      host: (values.host as string | undefined) ?? DEFAULT_LISTEN.host,
      estPort: integerOption(values, 'est-port', DEFAULT_LISTEN.estPort, 0, 65535),
      mqttPort: integerOption(values, 'mqtt-port', DEFAULT_LISTEN.mqttPort, 0, 65535),
      adminPort: integerOption(values, 'admin-port', DEFAULT_LISTEN.adminPort, 0, 65535),
      metricsPort: integerOption(values, 'metrics-port', DEFAULT_LISTEN.metricsPort, 0, 65535),
    };
    const { DEFAULT_HEALTH, loadConfig } = await import('../../config/config.ts');
    const config = await loadConfig(dataLayout(dataDir).config);
    const workers = integerOption(values, 'workers', config.cluster?.workers ?? 1, 1, MAX_WORKERS);
    if (workers === 1) {
      // The server (aedes, the registry, the CA) is loaded only to run it, not for --help.
      const { startServer } = await import('../../server.ts');
      return serveUntilSignal(logger, dataDir, () => startServer({ dataDir, logger, registryUrl: registryFlag, clusterRedis: redisFlag, nodeId: nodeIdFlag, listen }));
    }
    const { sharedBackends, startWorkerPool } = await import('../../cluster/worker-pool.ts');
    // Refused before anything starts.
    const backends = sharedBackends(`${values.workers === undefined ? 'cluster.workers' : '--workers'} ${workers}`, registryFlag ?? config.registry?.url, redisFlag ?? config.cluster?.redis);
    const { defaultNodeId } = await import('../../cluster/redis-backends.ts');
    return serveUntilSignal(logger, dataDir, () =>
      startWorkerPool({
        workers,
        nodeId: nodeIdFlag ?? config.cluster?.nodeId ?? defaultNodeId(),
        dataDir,
        ...backends,
        listen,
        drainMs: (config.health ?? DEFAULT_HEALTH).shutdownDrainMs,
        logger,
      }),
    );
  },
};

/** What `serve` runs until a signal: one server, or the primary of a pool of workers. */
interface Served {
  readonly adminUrl: string;
  /** Rejects if it fails while running (a pool that gives up on a worker). */
  readonly failed?: Promise<never>;
  close(): Promise<void>;
}

/**
 * Starts, records the admin URL, and runs until SIGINT or SIGTERM (or a failure); then stops
 * gracefully and forgets the admin URL. Signals are taken from the start: the first listener
 * answers before the others are up, and a SIGTERM in between must still shut down cleanly (once
 * started), not kill the process.
 */
async function serveUntilSignal(logger: Logger, dataDir: string, start: () => Promise<Served>): Promise<number> {
  let signalled: NodeJS.Signals | undefined;
  let onSignal: (signal: NodeJS.Signals) => void = (signal) => {
    signalled ??= signal;
  };
  const handler = (signal: NodeJS.Signals): void => onSignal(signal);
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  try {
    const served = await start();
    // Admin commands on this machine find the server through the data directory (server-url.ts).
    const forget = await recordAdminUrl(dataDir, served.adminUrl);
    const stop = new Promise<NodeJS.Signals>((resolve) => {
      onSignal = resolve;
      if (signalled) resolve(signalled);
    });
    try {
      const signal = await (served.failed ? Promise.race([stop, served.failed]) : stop);
      logger.info({ signal }, 'shutting down');
    } finally {
      await served.close();
      await forget();
    }
  } finally {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  }
  return 0;
}
