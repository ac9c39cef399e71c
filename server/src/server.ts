import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:https';
import { DEFAULT_PORTS } from '@fleetgate/device-sdk/protocol';
import { EnrollmentAuthority } from './authority/enrollment-authority.ts';
import { CaBootstrapProvisioner } from './authority/provisioners.ts';
import { loadConfig, type ServerConfig } from './config/config.ts';
import { loadAuthorityFromDataDir, readCertificateFile } from './datadir/authorities.ts';
import { dataLayout } from './datadir/layout.ts';
import { createEstServer } from './enrollment/est-server.ts';
import { toPem } from './pki/pem.ts';
import { LevelRegistry } from './registry/level/level-registry.ts';
import type { Registry } from './registry/types.ts';
import { createLogger, type Logger } from './logger.ts';
import { X509Certificate } from 'node:crypto';

/** Where the listeners bind. Port 0 picks a free port (tests). */
export interface ListenOptions {
  readonly host: string;
  readonly estPort: number;
  /** Reserved for the MQTT broker listener. */
  readonly mqttPort: number;
  /** Reserved for the admin API listener. */
  readonly adminPort: number;
  /** Reserved for the Prometheus metrics listener. */
  readonly metricsPort: number;
}

export const DEFAULT_LISTEN: ListenOptions = {
  host: '127.0.0.1',
  estPort: DEFAULT_PORTS.est,
  mqttPort: DEFAULT_PORTS.mqtt,
  adminPort: DEFAULT_PORTS.admin,
  metricsPort: DEFAULT_PORTS.metrics,
};

export interface StartOptions {
  readonly dataDir: string;
  readonly listen?: Partial<ListenOptions>;
  readonly logger?: Logger;
  /** Overrides `<data>/config.json` (tests). */
  readonly config?: ServerConfig;
  readonly now?: () => Date;
}

/** A running fleetgate server. */
export interface RunningServer {
  readonly registry: Registry;
  readonly authority: EnrollmentAuthority;
  readonly config: ServerConfig;
  /** Base URL of the EST listener, e.g. https://127.0.0.1:8443 */
  readonly estUrl: string;
  readonly estPort: number;
  /** Stops accepting, lets in-flight requests finish, closes the registry. */
  close(): Promise<void>;
}

/** How long shutdown waits for in-flight requests. */
export const SHUTDOWN_GRACE_MS = 5_000;

/** The listen backlog of every listener: connection storms must queue, not be refused. */
export const LISTEN_BACKLOG = 4096;

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Starts fleetgate from a data directory made by `fleetgate init`. */
export async function startServer(options: StartOptions): Promise<RunningServer> {
  const listenOptions = { ...DEFAULT_LISTEN, ...options.listen };
  const logger = options.logger ?? createLogger();
  const layout = dataLayout(options.dataDir);
  const config = options.config ?? (await loadConfig(layout.config));
  const issuing = await loadAuthorityFromDataDir(options.dataDir, 'issuing');
  const root = await readCertificateFile(layout.rootCert);
  const factory = new X509Certificate(await readCertificateFile(layout.authorityCert('factory')));
  const registry = await LevelRegistry.open(layout.registry, { now: options.now });
  try {
    const authority = new EnrollmentAuthority({
      issuing,
      registry,
      policy: config.enrollment,
      provisioners: [new CaBootstrapProvisioner('fleetgate-factory', factory)],
      now: options.now,
    });
    const est = createEstServer({
      authority,
      limits: config.est,
      logger: logger.child({ component: 'est' }),
      caCertificates: [issuing.certificate, root],
      tls: {
        key: await readFile(layout.serverKey, 'utf8'),
        cert: await readFile(layout.serverCert, 'utf8'),
        clientCas: [toPem('CERTIFICATE', root), toPem('CERTIFICATE', issuing.certificate), toPem('CERTIFICATE', factory.raw)],
      },
    });
    const estPort = await listen(est, listenOptions.estPort, listenOptions.host);
    const hostForUrl = listenOptions.host.includes(':') ? `[${listenOptions.host}]` : listenOptions.host;
    const estUrl = `https://${hostForUrl}:${estPort}`;
    logger.info({ estUrl, dataDir: options.dataDir }, 'fleetgate listening');
    let closing: Promise<void> | undefined;
    return {
      registry,
      authority,
      config,
      estUrl,
      estPort,
      close() {
        closing ??= (async () => {
          await new Promise<void>((resolve) => {
            // In-flight requests finish; a client that holds a connection open past the grace
            // period is cut so shutdown always ends.
            const force = setTimeout(() => est.closeAllConnections(), SHUTDOWN_GRACE_MS);
            est.close(() => {
              clearTimeout(force);
              resolve();
            });
            est.closeIdleConnections();
          });
          await registry.close();
          logger.info('fleetgate stopped');
        })();
        return closing;
      },
    };
  } catch (error) {
    await registry.close();
    throw error;
  }
}
