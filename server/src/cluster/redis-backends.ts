import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';

/*
 * The Redis side of a cluster node: aedes' own engines, mqemitter-redis (message routing between
 * nodes, and aedes' `$SYS/<id>/new/clients` that closes a client id's session on every other node
 * when it connects to one) and aedes-persistence-redis (subscriptions of persistent sessions,
 * their QoS 1 offline queues, retained messages, wills). fleetgate makes the Redis connections
 * itself, so it owns their reconnection, their errors and their closing.
 */

const require = createRequire(import.meta.url);

/** The subset of mqemitter fleetgate uses (the module ships no types fleetgate can import without `any`). */
export interface MessageEmitter {
  on(topic: string, listener: (message: { topic: string; payload?: unknown }, done: () => void) => void, callback?: () => void): unknown;
  close(callback: () => void): void;
  /**
   * mqemitter-redis re-emits every error of its two connections here: an 'error' event without
   * a listener would throw, and a Redis restart would take the whole node down with it.
   */
  readonly state: EventEmitter;
}

/** An aedes persistence instance (aedes types it as `any`). */
export type AedesPersistence = object;

type MqEmitterRedisFactory = (options: { pubConn: Redis; subConn: Redis }) => MessageEmitter;
type PersistenceRedisFactory = (options: { conn: Redis; maxSessionDelivery?: number }) => AedesPersistence & { destroy(callback: () => void): void };

/** A node renews its "alive" key this often, with this lifetime. */
const NODE_HEARTBEAT_MS = 3_000;
const NODE_ALIVE_TTL_MS = 10_000;
/** How long a liveness look waits for Redis before it answers "alive" (it cannot tell). */
const NODE_ALIVE_WAIT_MS = 250;

/** How long closing waits for Redis to acknowledge before it drops the connections. */
const CLOSE_WAIT_MS = 2_000;

/** Settles with `work`, or after {@link CLOSE_WAIT_MS} (a Redis that is down answers nothing). */
function bounded(work: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, CLOSE_WAIT_MS);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** The default node id: host name and process id, unique on a machine and readable in `device show`. */
export function defaultNodeId(): string {
  return `${hostname()}-${process.pid}`;
}

/** What a node shares with the others through Redis. */
export interface ClusterBackends {
  readonly nodeId: string;
  readonly mq: MessageEmitter;
  readonly persistence: AedesPersistence;
  /** A general connection (cluster-wide rate limits). */
  readonly redis: Redis;
  /** Whether every connection is up (readiness). */
  connected(): boolean;
  /**
   * Whether a node is alive: it renews a key in Redis every few seconds while it runs. A node
   * killed (or whose machine was lost) never writes its devices' disconnections; what it last
   * wrote is stale once its key has expired.
   */
  nodeAlive(nodeId: string): Promise<boolean>;
  /**
   * Calls `listener` each time Redis comes back without what it held (restarted without
   * persistence, flushed), once routing is up again: see {@link connectCluster} for what that loses.
   */
  onDataLost(listener: () => void): void;
  /**
   * Settles with `stored` (aedes-persistence-redis storing a session's subscriptions), or once
   * routing has been up long enough that the broadcast it waits for must have been lost.
   */
  settleStore(stored: Promise<void>, clientId: string): Promise<void>;
  close(): Promise<void>;
}

/** Options of {@link connectCluster}. */
export interface ClusterOptions {
  readonly url: string;
  readonly nodeId: string;
  readonly logger: Logger;
  /** Offline messages delivered to a persistent session when it reconnects. */
  readonly maxSessionDelivery?: number;
}

/**
 * How long a store of subscriptions may wait, with routing up all that time, before the broadcast
 * it waits for counts as lost.
 */
export const STORE_ECHO_PATIENCE_MS = 5_000;

/**
 * aedes-persistence-redis stores a session's subscriptions, then broadcasts them to every node
 * (its topic trees) and waits until its own broadcast comes back through pub/sub. A broadcast
 * published while the node's subscriber connection is not subscribed again (after a Redis
 * restart) never comes back, and the SUBSCRIBE would wait for ever for its SUBACK. Settles with
 * `stored`, or once it has waited `patienceMs` and routing has been up for as long.
 */
export function storedOrEchoLost(stored: Promise<void>, routingUpForMs: () => number, onLost: () => void, patienceMs = STORE_ECHO_PATIENCE_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const started = performance.now();
  const lost = new Promise<void>((resolve) => {
    timer = setInterval(() => {
      if (performance.now() - started < patienceMs || routingUpForMs() < patienceMs) return;
      onLost();
      resolve();
    }, Math.max(10, patienceMs / 10));
    timer.unref();
  });
  return Promise.race([stored, lost]).finally(() => clearInterval(timer));
}

/** The key a node keeps in Redis to tell, when a connection comes back, whether Redis lost its data. */
export function dataMarkerKey(nodeId: string): string {
  return `fleetgate:node:${nodeId}:data`;
}

/**
 * Connects a node to Redis: four connections (publish, subscribe, persistence, general), each
 * reconnecting by itself with a capped backoff while Redis is away. Resolves once all answer.
 *
 * A Redis restart without persistence comes back empty. The node rides it out: the connections
 * come back by themselves, ioredis subscribes the routing connection again (autoResubscribe), and
 * the node's memory still holds its clients' live subscriptions, so routing between nodes resumes
 * by itself. Lost for good are what only Redis held: retained messages, the QoS 1 messages queued
 * for offline persistent sessions, the stored subscriptions of the sessions offline at the time,
 * and whatever was in flight through pub/sub (and what is published before the receiving node's
 * subscriber connection is back: QoS 0 gone, QoS 1 still in a persistent session's new queue).
 * The node notices the loss by a marker key of its own missing when its general connection comes
 * back, and tells {@link ClusterBackends.onDataLost} listeners (the broker stores the sessions
 * connected to this node again).
 */
export async function connectCluster(options: ClusterOptions): Promise<ClusterBackends> {
  const { url, logger } = options;
  const connections: Redis[] = [];
  const open = (role: string): Redis => {
    // Until it has been up once, a failure is the caller's (serve exits with a clear code); after
    // that it reconnects forever, 50 ms doubling to 2 s: a Redis restart is ridden out, not fatal.
    let started = false;
    const connection = new Redis(url, {
      connectionName: `fleetgate:${options.nodeId}:${role}`,
      retryStrategy: (attempt) => (started ? Math.min(50 * 2 ** Math.min(attempt, 6), 2_000) : null),
      maxRetriesPerRequest: null,
      lazyConnect: true,
    });
    let down = false;
    connection.on('error', (error: Error) => {
      if (!started || down) return;
      down = true;
      logger.warn({ err: error, role }, 'cluster Redis connection failed; reconnecting');
    });
    connection.on('ready', () => {
      if (down) logger.info({ role }, 'cluster Redis connection back');
      started = true;
      down = false;
    });
    connections.push(connection);
    return connection;
  };
  const pub = open('publish');
  const sub = open('subscribe');
  const store = open('persistence');
  const redis = open('general');
  try {
    await Promise.all(connections.map((connection) => connection.connect()));
  } catch (error) {
    connections.forEach((connection) => connection.disconnect());
    throw error;
  }
  // Routing is up when every connection is ready and the subscriber connection has subscribed
  // again: ioredis sends its SUBSCRIBEs right after 'ready', and a PING answered after them says
  // Redis has them.
  let subscribed = true;
  let upSince: number | undefined = performance.now();
  const routingWaiters = new Set<() => void>();
  const routingChanged = (): void => {
    if (!subscribed || !connections.every((connection) => connection.status === 'ready')) {
      upSince = undefined;
      return;
    }
    upSince ??= performance.now();
    for (const resolve of routingWaiters) resolve();
    routingWaiters.clear();
  };
  for (const connection of connections) {
    connection.on('ready', routingChanged);
    connection.on('close', routingChanged);
  }
  sub.on('close', () => {
    subscribed = false;
    routingChanged();
  });
  sub.on('ready', () => {
    setImmediate(() => {
      sub.ping().then(
        () => {
          subscribed = true;
          routingChanged();
        },
        () => undefined, // closed again: the next 'ready' tries again
      );
    });
  });
  const routingUp = (): Promise<void> => (upSince !== undefined ? Promise.resolve() : new Promise((resolve) => routingWaiters.add(resolve)));
  const mqemitterRedis = require('mqemitter-redis') as MqEmitterRedisFactory;
  const persistenceRedis = require('aedes-persistence-redis') as PersistenceRedisFactory;
  // Set once connected; when the general connection is back after a failure and the marker is
  // gone, Redis lost what it held.
  const marker = dataMarkerKey(options.nodeId);
  const dataLost = new Set<() => void>();
  await redis.set(marker, new Date().toISOString());
  let checking = false;
  redis.on('ready', () => {
    if (checking) return;
    checking = true;
    redis
      .set(marker, new Date().toISOString(), 'NX')
      .then(async (created) => {
        if (created !== 'OK') return;
        logger.warn({ marker }, 'cluster Redis came back without its data (restarted empty): retained messages and the queues of offline persistent sessions are gone');
        // Storing sessions again broadcasts them: not before this node listens again.
        await routingUp();
        for (const listener of dataLost) listener();
      })
      .catch((error: unknown) => logger.warn({ err: error }, 'cluster Redis: checking for lost data failed'))
      .finally(() => {
        checking = false;
      });
  });
  const mq = mqemitterRedis({ pubConn: pub, subConn: sub });
  const aliveKey = (nodeId: string): string => `fleetgate:node:${nodeId}:alive`;
  const beat = (): void => {
    redis.set(aliveKey(options.nodeId), String(Date.now()), 'PX', NODE_ALIVE_TTL_MS).catch(() => undefined);
  };
  beat();
  const heartbeat = setInterval(beat, NODE_HEARTBEAT_MS);
  heartbeat.unref();
  // The connections' own listeners above report the outage once; these are the same errors.
  mq.state.on('error', (error: Error) => logger.debug({ err: error }, 'cluster routing: Redis error'));
  const persistence = persistenceRedis({ conn: store, ...(options.maxSessionDelivery ? { maxSessionDelivery: options.maxSessionDelivery } : {}) });
  return {
    nodeId: options.nodeId,
    mq,
    persistence,
    redis,
    connected: () => connections.every((connection) => connection.status === 'ready'),
    // While Redis does not answer, a node cannot tell: it says alive rather than hide presence.
    nodeAlive: async (nodeId) => {
      let timer: NodeJS.Timeout | undefined;
      const unknown = new Promise<number>((resolve) => {
        timer = setTimeout(() => resolve(1), NODE_ALIVE_WAIT_MS);
      });
      try {
        return (await Promise.race([redis.exists(aliveKey(nodeId)), unknown])) > 0;
      } catch {
        return true;
      } finally {
        clearTimeout(timer);
      }
    },
    onDataLost: (listener) => void dataLost.add(listener),
    settleStore: (stored, clientId) =>
      storedOrEchoLost(
        stored,
        () => (upSince === undefined ? 0 : performance.now() - upSince),
        () => logger.warn({ clientId }, 'cluster: the broadcast of a subscription store never came back; answering the SUBSCRIBE anyway (other nodes learn the subscription when the client connects to them)'),
      ),
    async close() {
      clearInterval(heartbeat);
      await bounded(redis.del(aliveKey(options.nodeId)).then(() => undefined)).catch(() => undefined);
      // aedes' close has closed the emitter (and its two connections) already; this is idempotent.
      await new Promise<void>((resolve) => mq.close(resolve));
      // A node that is gone has no data to miss (a node killed leaves its few bytes behind).
      if (redis.status === 'ready') await bounded(redis.del(marker).then(() => undefined)).catch(() => undefined);
      await bounded(new Promise<void>((resolve) => persistence.destroy(resolve)));
      // A QUIT sent on a connection that has ended would wait in the offline queue for ever.
      await Promise.all(
        connections.map(async (connection) => {
          if (connection.status === 'end') return;
          await bounded(connection.quit().then(() => undefined)).catch(() => undefined);
          connection.disconnect();
        }),
      );
    },
  };
}
