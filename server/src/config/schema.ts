/**
 * The JSON Schema of `<data>/config.json`: every setting with its type, bounds, default and
 * meaning. It is the one source of the defaults (DEFAULT_CONFIG is read from it), of the
 * validation (config.ts compiles it with ajv) and of docs/configuration.md (`npm run
 * docs:config`). Plain data, no validator: importing it costs nothing, so `fleetgate init` and
 * `fleetgate service issue` read the defaults and the service-name rule without loading ajv.
 */

/** The subset of JSON Schema (draft-07) this file uses. */
export interface SchemaNode {
  readonly type: 'object' | 'array' | 'string' | 'integer' | 'number';
  readonly description: string;
  readonly default?: unknown;
  readonly minimum?: number;
  readonly exclusiveMinimum?: number;
  readonly maximum?: number;
  readonly enum?: readonly string[];
  readonly pattern?: string;
  readonly minLength?: number;
  readonly items?: SchemaNode;
  readonly minItems?: number;
  readonly uniqueItems?: boolean;
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly required?: readonly string[];
  /** `false` for a section (unknown keys refused); a schema for a map keyed by name. */
  readonly additionalProperties?: false | SchemaNode;
  readonly propertyNames?: { readonly pattern: string };
}

import { MAX_WORKERS } from '../cluster/worker-protocol.ts';
import { POSTGRES_DEFAULTS } from '../registry/postgres/defaults.ts';
import { POSTGRES_URL } from '../registry/registry-url.ts';

const DAY = 86_400;
/** Node's timers hold at most 2^31-1 ms; a longer delay fires after 1 ms instead (with a warning). */
const MAX_TIMER_MS = 2_147_483_647;

/** Syntax of a backend service name (also the prefix of its MQTT client ids). */
export const SERVICE_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/** Syntax of a cluster node id (`--node-id`, `cluster.nodeId`). */
export const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** What the cluster's Redis URL starts with (`--cluster-redis`, `cluster.redis`). */
export const REDIS_URL = /^rediss?:\/\//;

/*
 * The helpers below return their node's exact type (`as const`), not just SchemaNode: the types
 * of the configuration (ConfigOf, config.ts) are derived from the schema, so a setting exists
 * once, here, with its type, bounds, default and description.
 */

/** A section: fixed keys, each required once defaults are filled, unknown keys refused. */
function section<const P extends Readonly<Record<string, SchemaNode>>>(description: string, properties: P) {
  return { type: 'object', description, default: {}, properties, required: Object.keys(properties) as (keyof P & string)[], additionalProperties: false } as const satisfies SchemaNode;
}

function integer(description: string, defaultValue: number, minimum: number, maximum?: number) {
  return { type: 'integer', description, default: defaultValue, minimum, ...(maximum === undefined ? {} : { maximum }) } as const satisfies SchemaNode;
}

/** A duration in milliseconds that becomes a Node timer. */
function milliseconds(description: string, defaultValue: number) {
  return integer(description, defaultValue, 1, MAX_TIMER_MS);
}

/** A rate: any positive number (0.5 per second is one every two seconds). */
function rate(description: string, defaultValue: number) {
  return { type: 'number', description, default: defaultValue, exclusiveMinimum: 0 } as const satisfies SchemaNode;
}

/**
 * A topic filter template (MQTT 3.1.1 §4.7.1): `+` and `#` only as whole levels, `#` only last,
 * `{id}` and `{model}` only as whole levels; no other braces.
 */
const LEVEL = String.raw`(?:\+|\{id\}|\{model\}|[^/#+{}]*)`;
const TOPIC_TEMPLATE = `^(?:${LEVEL}/)*(?:${LEVEL}|#)$`;

function topicList(description: string, defaultValue?: readonly string[]) {
  return {
    type: 'array',
    description,
    ...(defaultValue === undefined ? {} : { default: defaultValue }),
    items: {
      type: 'string',
      description: "a topic filter template: '+' and '#' as whole levels, '#' last, {id} and {model} as whole levels",
      minLength: 1,
      pattern: TOPIC_TEMPLATE,
    },
  } as const satisfies SchemaNode;
}

const modelPolicy = (description: string, lifetime?: number) => ({
  type: 'object',
  description,
  ...(lifetime === undefined ? {} : { default: {} }),
  properties: {
    certificateLifetimeSeconds: {
      type: 'integer',
      description: 'Lifetime of operational certificates, in seconds.',
      ...(lifetime === undefined ? {} : { default: lifetime }),
      minimum: 1,
    },
  },
  required: ['certificateLifetimeSeconds'],
  additionalProperties: false,
}) as const satisfies SchemaNode;

const topicRules = (description: string) => ({
  type: 'object',
  description,
  properties: {
    publish: topicList('Topic filters the client may publish to.', []),
    subscribe: topicList('Topic filters the client may subscribe to.', []),
  },
  required: ['publish', 'subscribe'],
  additionalProperties: false,
}) as const satisfies SchemaNode;

/** The whole configuration file. Sections and settings left out take their default. */
export const CONFIG_SCHEMA = {
  type: 'object',
  description: 'Server configuration, `<data>/config.json`. Every setting has a default; a file sets only what it changes.',
  properties: {
    enrollment: section('The enrollment policy: what a CSR may contain and what the certificate gets (server/src/authority).', {
      keyKinds: {
        type: 'array',
        description: 'Key kinds accepted in CSRs. RSA only when listed, and then at least `rsaMinBits`.',
        default: ['ec-p256', 'ec-p384'],
        items: { type: 'string', description: 'a key kind', enum: ['ec-p256', 'ec-p384', 'ec-p521', 'ed25519', 'rsa'] },
        minItems: 1,
        uniqueItems: true,
      },
      rsaMinBits: integer('Smallest RSA modulus accepted when `rsa` is in `keyKinds`.', 2048, 2048, 16_384),
      defaultModel: modelPolicy('Policy for models not listed in `models`.', 30 * DAY),
      models: {
        type: 'object',
        description:
          'Policy per device model. The models listed here are added to the default ones (a listed default model is replaced); a model not listed gets `defaultModel`.',
        default: {
          thermostat: { certificateLifetimeSeconds: 30 * DAY },
          camera: { certificateLifetimeSeconds: 30 * DAY },
          car: { certificateLifetimeSeconds: 90 * DAY },
        },
        additionalProperties: modelPolicy('Policy for this model.'),
      },
      renewalGraceSeconds: integer('How long after expiry an operational certificate may still renew itself, in seconds.', 3 * DAY, 0),
      bootstrapReenroll: {
        type: 'string',
        description:
          'When a bootstrap identity may enroll again: `never`; `after-expiry` (once the operational certificate has expired beyond the grace: the SDK falls back to bootstrap then); `always`. An operator reset always allows one more.',
        default: 'after-expiry',
        enum: ['never', 'after-expiry', 'always'],
      },
      clockSkewSeconds: integer('notBefore is back-dated by this much for devices with slow clocks, in seconds.', 300, 0, DAY),
    }),
    est: section('Limits of the EST enrollment listener (server/src/enrollment).', {
      maxBodyBytes: integer('Largest request body accepted (413 beyond).', 16 * 1024, 1),
      ratePerSecond: rate('Token bucket over all enrollments: enrollments per second.', 1000),
      rateBurst: integer('Token bucket over all enrollments: burst size.', 2000, 1),
      perIdentityPerMinute: rate('Enrollment attempts allowed per identity per minute (a looping device gets 429). In cluster mode this one limit holds across every node (kept in Redis); the other EST limits are per node.', 10),
      maxConcurrent: integer(
        'Requests being processed at once before new ones get 503. A request takes a slot only once its body has arrived, so clients that send slowly cannot hold slots.',
        512,
        1,
      ),
      requestTimeoutMs: milliseconds('Time allowed for a whole request, in milliseconds.', 15_000),
      bodyTimeoutMs: milliseconds('Time allowed for a request body to arrive once the headers are in, in milliseconds (408 ENROLL_BODY_TIMEOUT).', 5_000),
      maxInProgressPerSource: integer('Requests from one remote address in progress at once (reading the body included); more get 429.', 128, 1),
      auditRefusalsPerSourcePerMinute: rate('Refusals of verified devices written to the audit log per remote address per minute; more go to the logs only.', 60),
      refusalLogsPerSecond: rate('Refusal log lines per second; the rest are counted and summarised in the next line.', 20),
    }),
    broker: section('The MQTT broker (server/src/broker).', {
      topics: section('Topic permissions of devices: the default for every device, plus what each model adds.', {
        default: {
          type: 'object',
          description: "Topic filters every device may use; `{id}` and `{model}` stand for the device's own.",
          default: {},
          properties: {
            publish: topicList('Topic filters every device may publish to.', ['devices/{id}/#']),
            subscribe: topicList('Topic filters every device may subscribe to.', ['devices/{id}/#']),
          },
          required: ['publish', 'subscribe'],
          additionalProperties: false,
        },
        models: {
          type: 'object',
          description: 'What each model adds to `default`. The models listed here are added to the default ones (a listed default model is replaced).',
          default: {
            thermostat: { subscribe: ['fleet/thermostat/commands'] },
            camera: { publish: ['devices/{id}/events/#'] },
            car: {},
          },
          additionalProperties: {
            type: 'object',
            description: 'Topic filters this model adds.',
            properties: {
              publish: topicList('Topic filters devices of this model may also publish to.'),
              subscribe: topicList('Topic filters devices of this model may also subscribe to.'),
            },
            additionalProperties: false,
          },
        },
      }),
      services: {
        type: 'object',
        description:
          'Backend services allowed to connect (certificates made by `fleetgate service issue`), by name, with their topic filters (literal: no `{id}`). A service whose name is not listed cannot connect: removing a name cuts it off. This map replaces the default one.',
        default: { backend: { publish: ['devices/+/commands/#', 'fleet/#'], subscribe: ['devices/#'] } },
        propertyNames: { pattern: SERVICE_NAME.source },
        additionalProperties: topicRules('Topic filters of this service.'),
      },
      limits: section('Limits of the MQTT listener and of each client.', {
        maxConnections: integer('Connected clients at once.', 50_000, 1),
        connectionsPerSecond: rate('New TCP connections per second on the listener (excess is closed before the TLS handshake).', 2000),
        connectionBurst: integer('Burst of new TCP connections above `connectionsPerSecond`.', 4000, 1),
        // MQTT 3.1.1 §2.2.3: the Remaining Length field ends at 268,435,455 bytes.
        maxPacketBytes: integer('Largest MQTT packet accepted; a larger one closes the connection.', 256 * 1024, 1, 268_435_455),
        // MQTT 3.1.1 §3.1.2.10: the Keep Alive is a 16-bit number of seconds; 0 turns it off.
        keepaliveMinSeconds: integer('Smallest keepalive a client may ask for, in seconds (0: a client may turn keepalive off). At most `keepaliveMaxSeconds`.', 1, 0, 65_535),
        keepaliveMaxSeconds: integer('Largest keepalive a client may ask for, in seconds.', 1200, 1, 65_535),
        maxInflight: integer('QoS 2 messages a client may have in flight towards the broker.', 100, 1),
        maxTopicLevels: integer('Levels in a topic name or filter.', 16, 1),
        messagesPerSecond: rate('Messages per second one client may publish; beyond it the broker stops reading (backpressure).', 500),
        messageBurst: integer('Burst of messages above `messagesPerSecond`.', 1000, 1),
        connectTimeoutMs: milliseconds('Time allowed between TCP accept and CONNECT, in milliseconds.', 10_000),
        presenceFlushMs: milliseconds('How often presence is written to the registry, in milliseconds.', 1000),
        maxRetainedPerDevice: integer('Retained messages one device (or one service, all instances together) may hold in the broker.', 100, 1),
        maxRetainedBytesPerDevice: integer('Bytes (topic + payload) of the retained messages one device may hold.', 1024 * 1024, 1),
        maxRetainedBytes: integer('Bytes of all retained messages together.', 256 * 1024 * 1024, 1),
        maxSubscriptionsPerClient: integer('Subscriptions one client session may hold; more get SUBACK 0x80.', 100, 1),
        historyPerDevice: integer('Broker history entries (refused connections, dropped sessions) kept per device in the registry; never in the audit chain.', 50, 1, 10_000),
        historySummaryWindowMs: milliseconds('Identical history events of one device within this window become one entry with a count, in milliseconds.', 60_000),
        historyMaxOpen: integer('History entries held in memory before they are written; beyond it events are only counted (fleetgate_device_history_events_total{outcome="dropped"}).', 10_000, 1),
      }),
    }),
    listeners: section('Bounds on unfinished connections, applied to each TLS listener (MQTT, EST, admin API) on its own.', {
      handshakeTimeoutMs: milliseconds(
        'Time from TCP accept to the end of the TLS handshake (MQTT: to the answered CONNECT; HTTPS: to the first request), in milliseconds.',
        10_000,
      ),
      maxPendingConnections: integer('Unfinished connections on one listener, in total. Beyond it new sockets are closed at once.', 1024, 1),
      shedPendingConnections: integer(
        'Load shedding on the MQTT and EST listeners: at this many TLS handshakes in progress (accepted, not finished) a new socket is closed at once, before its handshake (`TLS_LOAD_SHED`; MQTT also `BROKER_LOAD_SHED`), and the client retries later. A connection whose handshake is done and that waits for its client (the CONNECT, the first request) does not count. A handshake is in progress for at least one round trip, so this also caps handshakes at about this number / RTT per second however idle the node is (256 at 300 ms: about 850/s): raise it for long links (docs/broker.md, "Load shedding"). The admin API only has `maxPendingConnections`.',
        256,
        1,
      ),
      shedEventLoopDelayMs: integer(
        'Load shedding on the MQTT and EST listeners: while the event-loop delay stays above this (p99 of each of the last two 250 ms samples), new sockets are closed before the TLS handshake, whatever made the process busy. The default is the latency target of an admitted CONNACK: a loop that late cannot meet it. 0: not used.',
        500,
        0,
        60_000,
      ),
      // Last of the section: config.json lists it last in `listeners` (docs/cluster.md shows that line).
      maxPendingPerAddress: integer('Unfinished connections from one source address on one listener.', 128, 1),
    }),
    tls: section('TLS session resumption on the MQTT and EST listeners (docs/broker.md, "TLS session resumption"). Ticket keys are derived from `<data>/tls/ticket.secret` and the current window, so every process and node sharing the data directory accepts the same tickets.', {
      ticketKeyWindowSeconds: integer(
        'Length of a ticket-key window, in seconds; windows are aligned to the Unix epoch. At each boundary every node changes its key at once; a ticket of the previous window still resumes, and is renewed with one of the new window, and an older one gets a full handshake. Shorter limits what a key taken from memory opens; longer saves full handshakes.',
        DAY,
        1,
        7 * DAY,
      ),
      // RFC 8446 §4.6.1: a TLS 1.3 ticket lives at most 7 days.
      sessionTimeoutSeconds: integer('Lifetime of a TLS session ticket, in seconds (a ticket also ends with the window after the one it was issued in).', DAY, 1, 7 * DAY),
    }),
    registry: {
      type: 'object',
      description: 'Where the registry lives: LevelDB in `<data>/registry` (the default), or PostgreSQL when `url` is set (docs/postgres.md). `--registry` and `FLEETGATE_REGISTRY_URL` override `url`.',
      default: {},
      properties: {
        url: {
          type: 'string',
          description: 'a PostgreSQL connection URL, `postgres://user@host:port/database` (a password is better given as PGPASSWORD or in ~/.pgpass than written here)',
          pattern: POSTGRES_URL.source,
        },
        poolSize: integer('PostgreSQL connections of one fleetgate process (one more listens for changes).', POSTGRES_DEFAULTS.poolSize, 1, 1000),
        connectTimeoutMs: milliseconds('How long to wait for a PostgreSQL connection before answering "unavailable" (EST 503, admin API 503), in milliseconds.', POSTGRES_DEFAULTS.connectTimeoutMs),
        queryTimeoutMs: milliseconds('How long one PostgreSQL statement may take before it fails as "unavailable", in milliseconds.', POSTGRES_DEFAULTS.queryTimeoutMs),
        changeRetentionHours: { type: 'number', description: 'Registry changes kept for processes that were away (a process away longer replays the whole registry), in hours.', default: POSTGRES_DEFAULTS.changeRetentionHours, exclusiveMinimum: 0 },
      },
      required: ['poolSize', 'connectTimeoutMs', 'queryTimeoutMs', 'changeRetentionHours'],
      additionalProperties: false,
    },
    cluster: {
      type: 'object',
      description: 'Cluster mode (docs/cluster.md): several fleetgate nodes share MQTT routing, persistent sessions and retained messages through Redis, and the registry through PostgreSQL (`registry.url`). `--cluster-redis`, `--node-id` and `--workers` override these.',
      default: {},
      properties: {
        redis: { type: 'string', description: 'the Redis URL every node of the cluster uses, `redis://host:port` (or `rediss://` for TLS)', pattern: REDIS_URL.source },
        nodeId: { type: 'string', description: "this node's name in the cluster (presence, `device show`, logs); default: host name and process id", pattern: NODE_ID.source },
        maxSessionDelivery: integer('Offline QoS 1 messages delivered to a persistent session when it reconnects (aedes-persistence-redis).', 1000, 1, 1_000_000),
        workers: {
          type: 'integer',
          description:
            'Worker processes `fleetgate serve` runs on the same listening ports (node:cluster), each a cluster node named `<nodeId>-w<i>`. Above 1 needs `registry.url` and `redis`. The limits of this file apply to each worker. `--workers` overrides it; absent: 1 (one process).',
          minimum: 1,
          maximum: MAX_WORKERS,
        },
      },
      required: ['maxSessionDelivery'],
      additionalProperties: false,
    },
    health: section('Health checks on the metrics listener (`/healthz`, `/readyz`).', {
      shutdownDrainMs: integer('At shutdown, how long `/readyz` answers 503 before the listeners stop accepting, so a load balancer stops sending new connections first, in milliseconds (0: close at once).', 0, 0, 300_000),
    }),
  },
  required: ['enrollment', 'est', 'broker', 'listeners', 'tls'],
  additionalProperties: false,
} as const satisfies SchemaNode;

/**
 * The TypeScript type of the values a schema node admits (what ajv lets through, with defaults
 * filled): the configuration's types are this of {@link CONFIG_SCHEMA}, never written twice.
 * Object keys listed in `required` are required, the others optional; a map
 * (`additionalProperties` with a schema) is a record.
 */
export type ConfigOf<S> = S extends { readonly enum: readonly (infer E)[] }
  ? E
  : S extends { readonly type: 'integer' | 'number' }
    ? number
    : S extends { readonly type: 'string' }
      ? string
      : S extends { readonly type: 'array'; readonly items: infer I }
        ? readonly ConfigOf<I>[]
        : S extends { readonly type: 'object'; readonly properties: infer P }
          ? ObjectOf<P, S extends { readonly required: readonly (infer R)[] } ? R : never>
          : S extends { readonly type: 'object'; readonly additionalProperties: infer A }
            ? Readonly<Record<string, ConfigOf<A>>>
            : never;

/** An object of fixed properties: the `Required` keys required, the others optional. */
type ObjectOf<P, Required> = Flatten<{ readonly [K in keyof P & Required]: ConfigOf<P[K]> } & { readonly [K in Exclude<keyof P, Required>]?: ConfigOf<P[K]> }>;

/** Shows an intersection as one object type (in editor hovers and error messages). */
type Flatten<T> = { readonly [K in keyof T]: T[K] };

/**
 * The value a schema gives when nothing is set: its `default`, with the defaults of its
 * properties filled in (the same rule ajv's `useDefaults` applies, without loading ajv).
 */
export function schemaDefaults(node: SchemaNode): unknown {
  const value = structuredClone(node.default);
  if (node.type !== 'object' || node.properties === undefined || typeof value !== 'object' || value === null) return value;
  const record = value as Record<string, unknown>;
  for (const [key, child] of Object.entries(node.properties)) {
    if (record[key] === undefined && child.default !== undefined) record[key] = schemaDefaults(child);
  }
  return record;
}
