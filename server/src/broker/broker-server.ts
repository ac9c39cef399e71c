import { Aedes, type Client } from 'aedes';
import type { X509Certificate } from 'node:crypto';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { BrokerConfig } from '../config/config.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { TokenBucket } from '../rate-limiter.ts';
import type { DeviceChange } from '../registry/types.ts';
import { mutualTlsServerOptions } from '../tls/defaults.ts';
import { guardNamedListener, type ListenerGuardReporting, type ListenerLimits } from '../tls/listener-guard.ts';
import type { ResumptionOptions } from '../tls/ticket-keys.ts';
import { DeviceAccess, type DeviceAccessStore } from './device-access.ts';
import { DeviceHistoryRecorder, type DeviceHistoryStore, type DropReason } from './device-history.ts';
import type { BrokerErrorCode } from './errors.ts';
import { createAuthenticate } from './hooks/authenticate.ts';
import { createAuthorizePublish } from './hooks/authorize-publish.ts';
import { createAuthorizeSubscribe } from './hooks/authorize-subscribe.ts';
import type { HookContext } from './hooks/context.ts';
import { TopicGrantTable } from './topic-acl.ts';
import { createPreConnect } from './hooks/pre-connect.ts';
import { dedupeExactly } from './delivery-dedupe.ts';
import { createPacketGuard } from './packet-guard.ts';
import { forgetConnectPacket, slimParser } from './parser-memory.ts';
import { ownInflight, ownSubscriptionTables, shareEmptyTables } from './client-tables.ts';
import { closeOnSocketClose } from './socket-end.ts';
import { announcementsSubscribable, skipClientAnnouncements } from './client-announcements.ts';
import { PresenceRecorder, type PresenceStore } from './presence.ts';
import type { LiveEventSink } from '../live-events.ts';
import { issuingCaOf } from './peer-identity.ts';
import { persistGrantedOnly, restoreSessions } from './persisted-subscriptions.ts';
import { publishBeforePuback } from './publish-before-puback.ts';
import { RetainedQuota } from './retained-quota.ts';
import { SessionTable } from './sessions.ts';
import type { AedesPersistence, MessageEmitter } from '../cluster/redis-backends.ts';

/** What the broker needs of the registry: its in-memory view's sources, presence and device history. */
type BrokerStore = DeviceAccessStore & PresenceStore & DeviceHistoryStore;

export interface BrokerOptions {
  readonly registry: BrokerStore;
  /** The device-issuing CA: only its certificates may connect. */
  readonly issuing: X509Certificate;
  readonly config: BrokerConfig;
  /** Bounds on connections that have not finished the TLS handshake and the CONNECT. */
  readonly listeners: ListenerLimits;
  readonly listenerReporting: ListenerGuardReporting;
  /** How long close() lets sessions end before it cuts every socket. */
  readonly shutdownGraceMs: number;
  readonly tls: { readonly key: string; readonly cert: string; readonly clientCas: readonly string[] };
  /** Shared TLS session ticket keys (tls/ticket-keys.ts); absent: Node's random per-process keys. */
  readonly resumption?: ResumptionOptions;
  /** Load shedding before the handshake (tls/load-shed.ts), given the unfinished connections now. */
  readonly shedWhen?: (handshakes: number) => boolean;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** This node's name: aedes' broker id, and where presence says a device is connected. */
  readonly nodeId: string;
  /**
   * Whether other processes share the registry (PostgreSQL): presence then names this node, so a
   * disconnect here never undoes a connection recorded by another. A process alone leaves it out.
   */
  readonly sharedRegistry?: boolean;
  /** Where sessions starting and ending, and refused connections, are reported as they happen (the admin API's live feed). */
  readonly live?: LiveEventSink;
  /** Cluster mode: MQTT routing, sessions and retained messages shared through Redis. */
  readonly cluster?: {
    readonly mq: MessageEmitter;
    readonly persistence: AedesPersistence;
    readonly onDataLost?: (listener: () => void) => void;
    readonly settleStore?: (stored: Promise<void>, clientId: string) => Promise<void>;
  };
}

/** The MQTT broker: aedes behind a TLS listener, with fleetgate's hooks. */
export interface Broker {
  readonly server: Server;
  readonly aedes: Aedes;
  /** Devices with a session on this process now. */
  connectedDevices(): number;
  /** Closes the listener and every session, flushes presence. */
  close(): Promise<void>;
}

/** How often sessions whose certificate has expired meanwhile are closed. */
const EXPIRY_SWEEP_MS = 30_000;

/** Builds the broker; the caller makes `server` listen. */
export async function createBroker(options: BrokerOptions): Promise<Broker> {
  const { config, logger, metrics } = options;
  const sessions = new SessionTable();
  const presence = new PresenceRecorder(options.registry, config.limits.presenceFlushMs, logger, options.sharedRegistry || options.cluster ? options.nodeId : undefined);
  const history = new DeviceHistoryRecorder(
    options.registry,
    { keepPerDevice: config.limits.historyPerDevice, summaryWindowMs: config.limits.historySummaryWindowMs, maxOpen: config.limits.historyMaxOpen, flushMs: config.limits.presenceFlushMs },
    logger,
    (outcome) => metrics.deviceHistoryEvents.inc({ outcome }),
  );
  let aedes: Aedes | undefined;
  let shuttingDown = false;
  /** Closes a client for a reason its device history will show. */
  const drop = (client: Client, reason: DropReason): void => {
    sessions.closing(client, reason);
    client.close();
  };

  // Revocation and disabling take effect on live sessions as soon as the registry has them.
  const enforce = (change: DeviceChange): void => {
    const client = sessions.clientOf(change.device.id);
    const session = client ? sessions.get(client) : undefined;
    if (!client || !session) return;
    const serialRevoked = change.revokedSerials.includes(session.identity.serial);
    if (change.device.state !== 'enrolled' || serialRevoked) {
      const code: BrokerErrorCode = change.device.state === 'disabled' ? 'BROKER_DEVICE_DISABLED' : change.device.state === 'revoked' ? 'BROKER_DEVICE_REVOKED' : 'BROKER_CERT_REVOKED';
      metrics.mqttRefusals.inc({ code });
      logger.info({ code, deviceId: change.device.id }, 'live session closed');
      drop(client, code);
    }
  };
  // A revoked service certificate: every live session using it (all instances) goes at once.
  const dropService = (serial: string): void => {
    for (const [client, session] of sessions.live()) {
      if (session.identity.kind !== 'service' || session.identity.serial !== serial) continue;
      metrics.mqttRefusals.inc({ code: 'BROKER_CERT_REVOKED' });
      logger.info({ code: 'BROKER_CERT_REVOKED', clientId: client.id, serial }, 'live service session closed');
      client.close();
    }
  };
  const access = await DeviceAccess.load(options.registry, enforce, dropService);
  const retained = new RetainedQuota(config.limits);

  const context: HookContext = {
    issuing: issuingCaOf(options.issuing),
    access,
    sessions,
    config,
    grants: new TopicGrantTable(config.topics, config.services),
    logger,
    refused: (code) => metrics.mqttRefusals.inc({ code }),
    history,
    ...(options.live ? { live: options.live } : {}),
    connectedClients: () => aedes?.connectedClients ?? 0,
    retained,
    retainedChanged: () => {
      metrics.mqttRetainedMessages.set(retained.count);
      metrics.mqttRetainedBytes.set(retained.totalBytes);
    },
  };
  if (options.cluster) {
    // A client id that connects on another node takes its session over (aedes closes the local
    // one on this message): mark it first, so the session's history says why it ended. Registered
    // before aedes registers its own listener in createBroker.
    options.cluster.mq.on('$SYS/+/new/clients', (message, done) => {
      const node = message.topic.split('/')[1];
      const clientId = Buffer.isBuffer(message.payload) ? message.payload.toString('utf8') : String(message.payload);
      const client = node === options.nodeId ? undefined : sessions.clientOf(clientId);
      if (client) sessions.closing(client, 'takeover');
      done();
    });
  }
  const ordering = publishBeforePuback(createAuthorizePublish(context));
  const authorizeSubscribe = createAuthorizeSubscribe(context);
  const preConnect = createPreConnect(context);
  aedes = await Aedes.createBroker({
    id: options.nodeId,
    ...(options.cluster ? { mq: options.cluster.mq, persistence: options.cluster.persistence } : {}),
    connectTimeout: config.limits.connectTimeoutMs,
    maxInflightInbound: config.limits.maxInflight,
    // A subscriber that stops reading must not stall delivery to everyone else.
    drainTimeout: 30_000,
    preConnect: (client, packet, callback) => {
      forgetConnectPacket(client, packet);
      preConnect(client, packet, callback);
    },
    authenticate: createAuthenticate(context),
    authorizePublish: (client, packet, callback) => {
      // aedes adds a QoS 2 message to the client's inflight set once this hook has answered.
      if (client && packet.qos === 2) ownInflight(client);
      ordering.authorizePublish(client, packet, callback);
    },
    authorizeSubscribe: (client, subscription, callback) => {
      // Before aedes adds this subscription, new or restored, and takes the client's delivery
      // functions for it.
      ownSubscriptionTables(client);
      dedupeExactly(client);
      authorizeSubscribe(client, subscription, callback);
    },
    // Delivery is checked too (a message for an offline persistent session is queued by aedes'
    // persistence, outside the subscribe hook): a client only ever receives topics its subscribe
    // rules cover. Returning null drops the message for this client (and clears it from its queue).
    authorizeForward: (client, packet) => {
      const session = sessions.get(client);
      if (!session?.grants.mayReceive(packet.topic, session.subject)) {
        metrics.mqttRefusals.inc({ code: 'BROKER_DELIVERY_DENIED' });
        logger.warn({ code: 'BROKER_DELIVERY_DENIED', clientId: client.id, topic: packet.topic }, 'delivery refused');
        return null;
      }
      metrics.mqttMessagesOut.inc();
      return packet;
    },
  });
  const broker = aedes;
  ordering.install(broker);
  // A process alone announces every CONNECT and disconnect on $SYS for nobody (client-announcements.ts).
  if (!options.cluster && !announcementsSubscribable(config) && !skipClientAnnouncements(broker)) {
    logger.warn('aedes internals differ from the version fleetgate was measured with: $SYS client announcements stay on');
  }
  persistGrantedOnly(broker, (client, filter) => sessions.get(client)?.subscriptions?.has(filter) ?? false, options.cluster?.settleStore);

  // Redis came back empty: the sessions connected here still hold their subscriptions, Redis no
  // longer does. Stored again, they survive their client's next connection (anywhere in the
  // cluster) instead of coming back without a session. The retained messages are gone: so are
  // their charges.
  options.cluster?.onDataLost?.(() => {
    retained.clear();
    context.retainedChanged();
    void restoreSessions(broker, logger);
  });

  const setConnectedGauges = (): void => {
    const counts = sessions.counts();
    metrics.mqttConnected.set(counts.devices);
    metrics.mqttConnectedServices.set(counts.services);
  };
  broker.on('client', (client: Client) => sessions.registered(client));
  broker.on('clientReady', (client: Client) => {
    // CONNECT answered: the connection no longer counts against the unfinished-connection bounds.
    guard.settle(client.conn as TLSSocket);
    const session = sessions.get(client);
    metrics.mqttConnects.inc();
    setConnectedGauges();
    if (session?.identity.kind === 'device') {
      presence.connected(session.identity.deviceId, session.peer);
      options.live?.({ type: 'connected', deviceId: session.identity.deviceId, time: new Date().toISOString(), ...(session.peer ? { peer: session.peer } : {}) });
    }
    if (session?.identity.kind === 'service') {
      const { service, serial, notAfter, notBefore } = session.identity;
      access.serviceConnected(service, serial, notAfter, notBefore).catch((error: unknown) => logger.warn({ err: error, service, serial }, 'recording a service certificate failed'));
    }
  });
  broker.on('clientDisconnect', (client: Client) => {
    const session = sessions.delete(client);
    setConnectedGauges();
    if (session?.identity.kind !== 'device') return;
    if (!sessions.clientOf(session.key)) presence.disconnected(session.identity.deviceId);
    const reason = dropReason(client);
    history.dropped(session.identity.deviceId, reason, session.peer);
    options.live?.({ type: 'disconnected', deviceId: session.identity.deviceId, time: new Date().toISOString(), reason });
  });
  // aedes sets _disconnected when the client sent DISCONNECT (MQTT-3.14.4-3); it has no event for it.
  const dropReason = (client: Client): DropReason =>
    sessions.closedFor(client) ?? ((client as Client & { _disconnected?: boolean })._disconnected ? 'client-disconnect' : shuttingDown ? 'server-shutdown' : 'connection-lost');
  broker.on('keepaliveTimeout', (client: Client) => sessions.closing(client, 'keepalive-timeout'));
  broker.on('unsubscribe', (filters: string[], client: Client) => {
    const held = sessions.get(client)?.subscriptions;
    if (held) for (const filter of filters) held.delete(filter);
    markUsed(client);
  });
  // The first packet a device sends after its CONNACK proves it got the CONNACK: from then on a
  // certificate its last renewal replaced is superseded (DeviceAccess.standing). Not what aedes
  // does while closing a client (its will, the unsubscriptions of a clean session).
  const used = new WeakSet<Client>();
  const markUsed = (client: Client): void => {
    if (client.closed || used.has(client)) return;
    const identity = sessions.get(client)?.identity;
    if (identity?.kind !== 'device') return;
    used.add(client);
    access.currentUsed(identity.deviceId, identity.serial);
  };
  broker.on('publish', (_packet, client) => {
    if (!client) return;
    metrics.mqttMessagesIn.inc();
    const identity = sessions.get(client)?.identity;
    if (identity?.kind === 'device') presence.seen(identity.deviceId);
    markUsed(client);
  });
  broker.on('ping', (_packet, client) => {
    const identity = sessions.get(client)?.identity;
    if (identity?.kind === 'device') presence.seen(identity.deviceId);
    markUsed(client);
  });
  broker.on('subscribe', (_subscriptions, client) => markUsed(client));
  broker.on('clientError', (client: Client, error: Error) => {
    logger.debug({ clientId: client.id, err: error }, 'client error');
  });
  broker.on('connectionError', (client: Client, error: Error) => {
    logger.debug({ clientId: client.id, err: error }, 'connection error');
  });

  const connectionRate = new TokenBucket(config.limits.connectionsPerSecond, config.limits.connectionBurst);
  // Decided in authenticate, where a refusal becomes CONNACK 5 instead of a reset the client
  // would retry for ever (see DESIGN pitfalls).
  const server = createServer(mutualTlsServerOptions(options.tls, options.resumption));
  // A hard ceiling above the MQTT limit, so a flood of half-open sockets cannot exhaust file
  // descriptors; between the two, refusals are polite CONNACK 3. It leaves room for every
  // unfinished connection the guard admits, so those alone can never lock a device out.
  server.maxConnections = config.limits.maxConnections + Math.max(100, Math.ceil(config.limits.maxConnections / 10), options.listeners.maxPendingConnections);
  server.on('connection', (socket) => {
    // Shed excess connection attempts before the TLS handshake, where they are cheapest.
    if (connectionRate.take() > 0) {
      metrics.mqttRefusals.inc({ code: 'BROKER_RATE_SHED' });
      socket.destroy();
    }
  });
  // After the rate shed: a socket shed there is not counted. Unfinished = until CONNACK, so a
  // client that completes TLS and then sends nothing still counts and is still timed out.
  const reporting: ListenerGuardReporting = {
    ...options.listenerReporting,
    closed: (listener, code) => {
      options.listenerReporting.closed(listener, code);
      // A load shed is an MQTT refusal too, next to BROKER_RATE_SHED.
      if (code === 'TLS_LOAD_SHED') metrics.mqttRefusals.inc({ code: 'BROKER_LOAD_SHED' });
    },
  };
  const guard = guardNamedListener(server, 'mqtt', options.listeners, 'manual', reporting, options.shedWhen);
  const guardPacketSize = createPacketGuard(config.limits.maxPacketBytes, (client, size) => {
    sessions.closing(client, 'BROKER_PACKET_TOO_LARGE');
    metrics.mqttRefusals.inc({ code: 'BROKER_PACKET_TOO_LARGE' });
    logger.info({ code: 'BROKER_PACKET_TOO_LARGE', clientId: client.id, size }, 'connection closed');
  });
  let memorySavingsWarned = false;
  server.on('secureConnection', (socket: TLSSocket) => {
    const client = broker.handle(socket);
    // Memory savings that reach into aedes 1.2 and mqtt-packet 9: skipped, and said once, when
    // the installed versions differ (the package pins aedes; see docs/benchmarks.md).
    const slimmed = [slimParser(client), shareEmptyTables(client), closeOnSocketClose(client)];
    if (slimmed.includes(false) && !memorySavingsWarned) {
      memorySavingsWarned = true;
      logger.warn('aedes or mqtt-packet internals differ from the versions fleetgate was measured with: per-connection memory savings are off');
    }
    guardPacketSize(client);
  });

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [client, session] of sessions.live()) {
      if (session.identity.notAfter <= now) {
        metrics.mqttRefusals.inc({ code: 'BROKER_CERT_EXPIRED' });
        drop(client, 'BROKER_CERT_EXPIRED');
      }
    }
  }, EXPIRY_SWEEP_MS);
  sweep.unref();

  let closing: Promise<void> | undefined;
  return {
    server,
    aedes: broker,
    connectedDevices: () => sessions.counts().devices,
    close() {
      closing ??= (async () => {
        shuttingDown = true;
        clearInterval(sweep);
        access.close();
        const listenerClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Sockets without a session hold nothing worth waiting for; sessions get the grace.
        guard.closePending();
        const force = setTimeout(() => guard.closeAll(), options.shutdownGraceMs);
        await new Promise<void>((resolve) => broker.close(() => resolve()));
        await listenerClosed;
        clearTimeout(force);
        await presence.close();
        await history.close();
      })();
      return closing;
    },
  };
}
