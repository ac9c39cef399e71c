import { readFile } from 'node:fs/promises';
import type { Server } from 'node:https';
import { EnrollmentAuthority } from './authority/enrollment-authority.ts';
import { CaBootstrapProvisioner, trustProvisioner } from './authority/provisioners.ts';
import { DEFAULT_HEALTH, DEFAULT_REGISTRY, loadConfig, type ServerConfig } from './config/config.ts';
import { loadAuthorityFromDataDir, readCertificateFile } from './datadir/authorities.ts';
import { dataLayout } from './datadir/layout.ts';
import { createEstServer } from './enrollment/est-server.ts';
import { toPem } from './pki/pem.ts';
import { openRegistry } from './registry/open-registry.ts';
import { redactUrl } from './registry/registry-url.ts';
import { connectCluster, defaultNodeId } from './cluster/redis-backends.ts';
import { ClusterError } from './cluster/errors.ts';
import { SharedRateLimiter } from './cluster/shared-rate-limiter.ts';
import type { Registry } from './registry/types.ts';
import { createLogger, type Logger } from './logger.ts';
import { X509Certificate } from 'node:crypto';
import { createBroker } from './broker/broker-server.ts';
import { Metrics } from './metrics/metrics.ts';
import { createAdminServer } from './admin/admin-server.ts';
import { importBatchFiles } from './factory/batch-files.ts';
import { FACTORY_TRUST } from './authority/trust-registration.ts';
import { OperatorAuthority } from './authority/operator-authority.ts';
import { CrlPublisher } from './crl/crl-publisher.ts';
import { TLS_SERVER_DEFAULTS } from './tls/defaults.ts';
import { createMetricsServer } from './metrics/metrics-server.ts';
import { ExpiringCertificates } from './metrics/expiring-certificates.ts';
import { followDevices } from './registry/follow-devices.ts';
import { DeviceCensus } from './metrics/device-census.ts';
import { DeviceOrder } from './admin/device-order.ts';
import { LiveEvents } from './live-events.ts';
import { HealthState, listenerCheck } from './metrics/health.ts';
import { setTimeout as delay } from 'node:timers/promises';
import { listenerReporting } from './metrics/listener-reporting.ts';
import { guardNamedListener, type ListenerGuard } from './tls/listener-guard.ts';
import { EventLoopDelaySampler, loadShedder } from './tls/load-shed.ts';
import { ensureTicketSecret, TicketKeyRotation } from './tls/ticket-keys.ts';

import { DEFAULT_LISTEN, LISTEN_BACKLOG, listen, urlHost, type ListenOptions } from './listen.ts';

export { DEFAULT_LISTEN, LISTEN_BACKLOG, type ListenOptions };

export interface StartOptions {
  readonly dataDir: string;
  readonly listen?: Partial<ListenOptions>;
  readonly logger?: Logger;
  /** Overrides `<data>/config.json` (tests). */
  readonly config?: ServerConfig;
  /** A PostgreSQL registry URL (`--registry`, FLEETGATE_REGISTRY_URL); overrides config.json `registry.url`. */
  readonly registryUrl?: string;
  /** Cluster mode: the Redis URL (`--cluster-redis`); overrides config.json `cluster.redis`. */
  readonly clusterRedis?: string;
  /** This node's name in the cluster (`--node-id`); overrides config.json `cluster.nodeId`. */
  readonly nodeId?: string;
  readonly now?: () => Date;
  /**
   * The registry to use instead of opening `<data>/registry` (tests: a registry that fails on
   * demand). The server owns it from then on and closes it at shutdown.
   */
  readonly registry?: Registry;
}

/**
 * A running fleetgate node: EST, MQTT and the admin API, without the metrics listener. A worker
 * of `fleetgate serve --workers N` is one (the primary serves the metrics of all).
 */
export interface RunningNode {
  readonly registry: Registry;
  readonly authority: EnrollmentAuthority;
  readonly config: ServerConfig;
  readonly metrics: Metrics;
  /** Base URL of the EST listener, e.g. https://127.0.0.1:8443 */
  readonly estUrl: string;
  readonly estPort: number;
  /** URL of the MQTT listener, e.g. mqtts://127.0.0.1:8883 */
  readonly mqttUrl: string;
  readonly mqttPort: number;
  /** Base URL of the admin API, e.g. https://127.0.0.1:9443 */
  readonly adminUrl: string;
  readonly adminPort: number;
  /** Liveness and readiness as `/readyz` reports them. */
  readonly health: HealthState;
  readonly crl: CrlPublisher;
  /** The node's name in the cluster (presence, `device show`): `--node-id`, else host name and process id. */
  readonly nodeId: string;
  /**
   * Stops: readiness turns to not ready at once, then the listeners stop accepting and let
   * in-flight requests finish, and the registry closes.
   */
  close(): Promise<void>;
}

/** A running fleetgate server: a node and its metrics listener. */
export interface RunningServer extends RunningNode {
  /** URL of the Prometheus endpoint, e.g. http://127.0.0.1:9464/metrics (`/healthz` and `/readyz` beside it). */
  readonly metricsUrl: string;
  /**
   * Stops: `/readyz` answers 503 at once (for `health.shutdownDrainMs` before anything else
   * happens), then the listeners stop accepting and let in-flight requests finish, the registry
   * closes, and the metrics listener closes last.
   */
  close(): Promise<void>;
}

/** How long shutdown waits for in-flight requests. */
export const SHUTDOWN_GRACE_MS = 5_000;


/**
 * Stops an HTTP(S) server: in-flight requests finish, a connection held past the grace is cut.
 * Connections still in their TLS handshake carry no request: they are closed at once (the HTTP
 * layer does not know them, so `closeAllConnections` would not reach them and one silent socket
 * would hold the process open).
 */
function closeHttpServer(server: Server, guard: ListenerGuard): Promise<void> {
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      server.closeAllConnections();
      guard.closeAll();
    }, SHUTDOWN_GRACE_MS);
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    guard.closePending();
    server.closeIdleConnections();
  });
}

/** Starts fleetgate from a data directory made by `fleetgate init`: every listener, metrics included. */
export async function startServer(options: StartOptions): Promise<RunningServer> {
  const logger = options.logger ?? createLogger();
  const node = await startNode({ ...options, logger });
  const listenOptions = { ...DEFAULT_LISTEN, ...options.listen };
  const metricsServer = createMetricsServer(node.metrics.registry, logger.child({ component: 'metrics' }), node.health);
  const metricsHost = listenOptions.metricsHost ?? listenOptions.host;
  let metricsPort: number;
  try {
    metricsPort = await listen(metricsServer.server, listenOptions.metricsPort, metricsHost);
  } catch (error) {
    await node.close();
    throw error;
  }
  const metricsUrl = `http://${urlHost(metricsHost)}:${metricsPort}/metrics`;
  logger.info({ estUrl: node.estUrl, mqttUrl: node.mqttUrl, adminUrl: node.adminUrl, metricsUrl, dataDir: options.dataDir }, 'fleetgate listening');
  const drainMs = (node.config.health ?? DEFAULT_HEALTH).shutdownDrainMs;
  let closing: Promise<void> | undefined;
  return {
    ...node,
    metricsUrl,
    close() {
      closing ??= (async () => {
        node.health.beginShutdown();
        if (drainMs > 0) {
          logger.info({ drainMs }, 'not ready: draining before the listeners close');
          await delay(drainMs);
        }
        await node.close();
        // Last: /readyz keeps answering (503) while everything else stops.
        await metricsServer.close();
      })();
      return closing;
    },
  };
}

/**
 * Starts a node from a data directory made by `fleetgate init`: EST, MQTT and the admin API
 * (`options.listen` metrics settings are not used). {@link startServer} adds the metrics listener.
 */
export async function startNode(options: StartOptions): Promise<RunningNode> {
  const listenOptions = { ...DEFAULT_LISTEN, ...options.listen };
  const logger = options.logger ?? createLogger();
  const layout = dataLayout(options.dataDir);
  const config = options.config ?? (await loadConfig(layout.config));
  const issuing = await loadAuthorityFromDataDir(options.dataDir, 'issuing');
  const root = await readCertificateFile(layout.rootCert);
  const factory = new X509Certificate(await readCertificateFile(layout.authorityCert('factory')));
  const metrics = new Metrics();
  const registryUrl = options.registryUrl ?? config.registry?.url;
  const clusterRedis = options.clusterRedis ?? config.cluster?.redis;
  const nodeId = options.nodeId ?? config.cluster?.nodeId ?? defaultNodeId();
  // A node of a cluster shares its registry with the others: LevelDB is held by one process.
  if (clusterRedis !== undefined && registryUrl === undefined && options.registry === undefined) {
    throw new ClusterError('SERVE_CLUSTER_INVALID', 'cluster mode (--cluster-redis) needs the registry on PostgreSQL, shared by every node: give --registry postgres://... (docs/cluster.md)');
  }
  const cluster =
    clusterRedis === undefined
      ? undefined
      : await connectCluster({ url: clusterRedis, nodeId, logger: logger.child({ component: 'cluster' }), maxSessionDelivery: config.cluster?.maxSessionDelivery }).catch((error: unknown) => {
          throw new ClusterError('SERVE_CLUSTER_UNREACHABLE', `Redis does not answer at ${redactUrl(clusterRedis)}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
        });
  const registry =
    options.registry ??
    (await openRegistry({
    url: registryUrl,
    levelPath: layout.registry,
    settings: config.registry ?? DEFAULT_REGISTRY,
    now: options.now,
    logger: logger.child({ component: 'registry' }),
    onBatchWritten: (seconds) => metrics.registryWrite.observe(seconds),
  }));
  logger.info({ registry: registryUrl === undefined ? layout.registry : redactUrl(registryUrl), engine: registryUrl === undefined ? 'leveldb' : 'postgres' }, 'registry open');
  const closers: (() => Promise<void>)[] = [];
  const reporting = listenerReporting(metrics, logger);
  const health = new HealthState();
  health.add({ name: 'registry', check: async () => (await registry.ping(), 'ok') });
  if (cluster) {
    health.add({
      name: 'redis',
      check: async () => {
        if (!cluster.connected()) throw new Error('a Redis connection is down');
        return 'ok';
      },
    });
    logger.info({ nodeId, redis: redactUrl(clusterRedis ?? '') }, 'cluster node');
  }
  try {
    // The gauges that count the fleet follow the registry's devices: one read at start, then
    // each change; neither reads the registry again.
    const census = new DeviceCensus(metrics.devices);
    const expiring = new ExpiringCertificates(metrics.certificatesExpiringSoon);
    const unfollowDevices = await followDevices(registry, (device) => {
      census.place(device);
      expiring.place(device);
    });
    expiring.start();
    closers.push(async () => {
      unfollowDevices();
      expiring.close();
    });
    const serverKey = await readFile(layout.serverKey, 'utf8');
    const serverCert = await readFile(layout.serverCert, 'utf8');
    // Data directories made before the secret existed get it on their first serve.
    const ticketSecret = await ensureTicketSecret(layout.ticketSecret);
    if (ticketSecret.created) logger.info({ file: layout.ticketSecret }, 'TLS ticket secret created');
    const tickets = new TicketKeyRotation({
      secret: ticketSecret.secret,
      windowSeconds: config.tls.ticketKeyWindowSeconds,
      sessionTimeoutSeconds: config.tls.sessionTimeoutSeconds,
      onRotate: (window) => logger.info({ window }, 'TLS ticket keys rotated: tickets of the previous window still resume once, older ones get a full handshake'),
      onSingleWindow: (listener) => logger.warn({ listener }, 'this Node has no TLS ticket key callback: the listener holds only the current window\'s ticket key, so tickets end at each window boundary (a full handshake after it)'),
    });
    closers.push(async () => tickets.close());
    const eventLoop = new EventLoopDelaySampler();
    closers.push(async () => eventLoop.close());
    const shedWhen = loadShedder(config.listeners, eventLoop);
    const factoryProvisioner = new CaBootstrapProvisioner(FACTORY_TRUST, factory);
    // Offline issuance since the last start: batches become provisioned devices, operator and
    // service certificates are recorded (factory/batch-files.ts). Before the listeners accept.
    const importBatches = async (actor: string) => {
      const report = await importBatchFiles(options.dataDir, registry, actor);
      for (const skipped of report.invalid) logger.warn({ code: skipped.code, file: skipped.file }, skipped.message);
      return report;
    };
    const imported = await importBatches('system');
    logger.info({ batches: imported.batches.length, credentials: imported.credentials.length }, 'record files imported');
    const authority = new EnrollmentAuthority({
      issuing,
      registry,
      policy: config.enrollment,
      provisioners: [factoryProvisioner],
      now: options.now,
    });
    const crl = new CrlPublisher(issuing, registry, logger.child({ component: 'crl' }));
    closers.push(async () => crl.close());
    const baseClientCas = [toPem('CERTIFICATE', root), toPem('CERTIFICATE', issuing.certificate), toPem('CERTIFICATE', factory.raw)];
    const estTls = { key: serverKey, cert: serverCert, clientCas: baseClientCas };
    const est = createEstServer({
      authority,
      limits: config.est,
      logger: logger.child({ component: 'est' }),
      metrics,
      crl,
      caCertificates: [issuing.certificate, root],
      tls: estTls,
      resumption: tickets.resumptionOptions('est'),
      // Per identity across the cluster; every other EST limit is per node (docs/cluster.md).
      ...(cluster ? { identityLimiter: new SharedRateLimiter(cluster.redis, 'est-identity', config.est.perIdentityPerMinute, logger.child({ component: 'est' })) } : {}),
    });
    // Trusted manufacturer CAs: provisioners for the authority, CA chains for the TLS layer.
    const loadTrusts = async (): Promise<void> => {
      const trusts = await registry.listTrusts();
      authority.setProvisioners([factoryProvisioner, ...trusts.map(trustProvisioner)]);
      // A new secure context starts with Node's defaults: the shared session settings go in again.
      est.setSecureContext({ ...TLS_SERVER_DEFAULTS, ...tickets.resumptionOptions('est'), key: serverKey, cert: serverCert, ca: [...baseClientCas, ...trusts.map((trust) => trust.caPem)] });
      tickets.register(est, 'est');
      logger.info({ trusts: trusts.map((trust) => trust.name) }, 'bootstrap trusts loaded');
      // Stored before trusts had scopes (issue #8): they admit nobody until registered again.
      const unscoped = trusts.filter((trust) => trust.namespace === undefined && trust.allowList === undefined).map((trust) => trust.name);
      if (unscoped.length > 0) logger.warn({ trusts: unscoped }, 'bootstrap trusts without a namespace or an allow-list refuse every enrollment (ENROLL_TRUST_UNSCOPED): register them again with --namespace or --allowlist');
    };
    await loadTrusts();
    const stopTrusts = registry.onTrustChange(() => {
      loadTrusts().catch((error: unknown) => logger.error({ err: error }, 'reloading bootstrap trusts failed'));
    });
    closers.push(async () => stopTrusts());
    const estGuard = guardNamedListener(est, 'est', config.listeners, 'first-request', reporting, shedWhen);
    const estPort = await listen(est, listenOptions.estPort, listenOptions.host);
    closers.unshift(() => closeHttpServer(est, estGuard));
    health.add(listenerCheck('est', est));

    const live = new LiveEvents();
    const broker = await createBroker({
      registry,
      issuing: issuing.x509,
      config: config.broker,
      listeners: config.listeners,
      listenerReporting: reporting,
      shutdownGraceMs: SHUTDOWN_GRACE_MS,
      logger: logger.child({ component: 'broker' }),
      metrics,
      tls: { key: serverKey, cert: serverCert, clientCas: [toPem('CERTIFICATE', root), toPem('CERTIFICATE', issuing.certificate)] },
      resumption: tickets.resumptionOptions('mqtt'),
      shedWhen,
      nodeId,
      sharedRegistry: registryUrl !== undefined,
      live: live.publish,
      ...(cluster ? { cluster } : {}),
    });
    tickets.register(broker.server, 'mqtt');
    closers.unshift(() => broker.close());
    const mqttPort = await listen(broker.server, listenOptions.mqttPort, listenOptions.host);
    health.add(listenerCheck('mqtt', broker.server));

    const adminLogger = logger.child({ component: 'admin' });
    // Made on the first request sorted by state, model or expiry (it reads every device once).
    let deviceOrder: Promise<DeviceOrder> | undefined;
    closers.push(async () => (await deviceOrder?.catch(() => undefined))?.close());
    const operatorAuthority = new OperatorAuthority({ store: registry, crl, importBatches, logger: adminLogger, now: options.now });
    const admin = createAdminServer({
      context: {
        authority: operatorAuthority,
        store: registry,
        crl,
        logger: adminLogger,
        fleet: { census: () => census.byStateAndModel(), connectedDevices: () => broker.connectedDevices(), live },
        deviceOrder: () =>
          (deviceOrder ??= DeviceOrder.start(registry).catch((error: unknown) => {
            // A registry that did not answer: the next request tries again.
            deviceOrder = undefined;
            throw error;
          })),
        ...(cluster ? { nodeAlive: (id: string) => cluster.nodeAlive(id) } : {}),
      },
      credentials: registry,
      issuing: issuing.x509,
      tls: { key: serverKey, cert: serverCert, clientCas: [toPem('CERTIFICATE', root), toPem('CERTIFICATE', issuing.certificate)] },
    });
    const adminGuard = guardNamedListener(admin, 'admin', config.listeners, 'first-request', reporting);
    const adminPort = await listen(admin, listenOptions.adminPort, listenOptions.host);
    closers.unshift(() => closeHttpServer(admin, adminGuard));
    // Open event streams end first, so the admin listener's close does not wait for them.
    closers.unshift(async () => live.close());
    health.add(listenerCheck('admin', admin));

    const estUrl = `https://${urlHost(listenOptions.host)}:${estPort}`;
    const mqttUrl = `mqtts://${urlHost(listenOptions.host)}:${mqttPort}`;
    const adminUrl = `https://${urlHost(listenOptions.host)}:${adminPort}`;
    let closing: Promise<void> | undefined;
    return {
      registry,
      authority,
      config,
      metrics,
      estUrl,
      estPort,
      mqttUrl,
      mqttPort,
      adminUrl,
      adminPort,
      health,
      crl,
      nodeId,
      close() {
        closing ??= (async () => {
          health.beginShutdown();
          for (const close of closers) await close();
          await cluster?.close();
          await registry.close();
          logger.info('fleetgate stopped');
        })();
        return closing;
      },
    };
  } catch (error) {
    for (const close of closers) await close().catch(() => undefined);
    await cluster?.close().catch(() => undefined);
    await registry.close();
    throw error;
  }
}
