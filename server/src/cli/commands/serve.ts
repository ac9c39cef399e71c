import { resolveDataDir } from '../../datadir/layout.ts';
import { DEFAULT_LISTEN } from '../../listen.ts';
import { integerOption, type Command } from '../args.ts';
import { clusterRedisOption, nodeIdOption, registryUrlOption } from '../registry-option.ts';
import { recordAdminUrl } from '../server-url.ts';

export const serveCommand: Command = {
  path: ['serve'],
  help: `Usage: fleetgate serve [--data DIR] [--registry URL] [--cluster-redis URL] [--node-id ID] [--host H] [--est-port P] [--mqtt-port P] [--admin-port P] [--metrics-port P]

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
    host: { type: 'string' },
    'est-port': { type: 'string' },
    'mqtt-port': { type: 'string' },
    'admin-port': { type: 'string' },
    'metrics-port': { type: 'string' },
  },
  async run(values) {
    // The server (aedes, LevelDB, the CA) is loaded only to run it, not for --help.
    const [{ createLogger }, { startServer }] = await Promise.all([import('../../logger.ts'), import('../../server.ts')]);
    const logger = createLogger();
    const dataDir = resolveDataDir(values.data as string | undefined);
    const registryUrl = registryUrlOption(values);
    // Signals are taken from the start: the first listener answers before the others are up, and
    // a SIGTERM in between must still shut down cleanly (once started), not kill the process.
    let signalled: NodeJS.Signals | undefined;
    let onSignal: (signal: NodeJS.Signals) => void = (signal) => {
      signalled ??= signal;
    };
    const handler = (signal: NodeJS.Signals): void => onSignal(signal);
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    try {
      const server = await startServer({
        dataDir,
        logger,
        registryUrl,
        clusterRedis: clusterRedisOption(values),
        nodeId: nodeIdOption(values),
        listen: {
          host: (values.host as string | undefined) ?? DEFAULT_LISTEN.host,
          estPort: integerOption(values, 'est-port', DEFAULT_LISTEN.estPort, 0, 65535),
          mqttPort: integerOption(values, 'mqtt-port', DEFAULT_LISTEN.mqttPort, 0, 65535),
          adminPort: integerOption(values, 'admin-port', DEFAULT_LISTEN.adminPort, 0, 65535),
          metricsPort: integerOption(values, 'metrics-port', DEFAULT_LISTEN.metricsPort, 0, 65535),
        },
      });
      // Admin commands on this machine find the server through the data directory (server-url.ts).
      const forget = await recordAdminUrl(dataDir, server.adminUrl);
      await new Promise<void>((resolve) => {
        let stopping = false;
        onSignal = (signal) => {
          if (stopping) return;
          stopping = true;
          logger.info({ signal }, 'shutting down');
          void server
            .close()
            .then(forget)
            .then(resolve);
        };
        if (signalled) onSignal(signalled);
      });
    } finally {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    }
    return 0;
  },
};
