import { readFile } from 'node:fs/promises';
import type { KeyKind } from '../pki/algorithms.ts';
import { FleetgateError } from '@fleetgate/device-sdk/errors';
import type { OperatorCode } from '../cli/errors.ts';
import type { ListenerLimits } from '../tls/listener-guard.ts';

/** Policy for one device model. */
export interface ModelPolicy {
  /** Lifetime of operational certificates, in seconds. */
  readonly certificateLifetimeSeconds: number;
}

/** When a device may enroll again with its bootstrap credential. */
export type BootstrapReenrollPolicy = 'never' | 'after-expiry' | 'always';

/** The enrollment policy. */
export interface EnrollmentPolicy {
  /** Key kinds accepted in CSRs. RSA only when listed, and then at least `rsaMinBits`. */
  readonly keyKinds: readonly KeyKind[];
  readonly rsaMinBits: number;
  /** Policy for models not listed in `models`. */
  readonly defaultModel: ModelPolicy;
  readonly models: Readonly<Record<string, ModelPolicy>>;
  /** How long after expiry an operational certificate may still renew itself. */
  readonly renewalGraceSeconds: number;
  /**
   * A bootstrap identity enrolls once. `after-expiry` also allows it again once the device's
   * operational certificate has expired beyond the grace (the SDK falls back to bootstrap then);
   * an operator reset always allows one more.
   */
  readonly bootstrapReenroll: BootstrapReenrollPolicy;
  /** notBefore is back-dated by this much for devices with slow clocks. */
  readonly clockSkewSeconds: number;
}

/** Limits of the EST listener. */
export interface EstLimits {
  readonly maxBodyBytes: number;
  /** Token bucket over all enrollments. */
  readonly ratePerSecond: number;
  readonly rateBurst: number;
  /** Enrollment attempts allowed per identity per minute (a looping device gets 429). */
  readonly perIdentityPerMinute: number;
  /**
   * Requests being processed at once before new ones get 503. A request takes a slot only once
   * its body has arrived, so clients that send slowly cannot hold slots.
   */
  readonly maxConcurrent: number;
  readonly requestTimeoutMs: number;
  /** Time allowed for a request body to arrive once the headers are in (408 ENROLL_BODY_TIMEOUT). */
  readonly bodyTimeoutMs: number;
  /** Requests from one remote address in progress at once (reading the body included); more get 429. */
  readonly maxInProgressPerSource: number;
  /** Refusals of verified devices written to the audit log per remote address per minute; more go to the logs only. */
  readonly auditRefusalsPerSourcePerMinute: number;
  /** Refusal log lines per second; the rest are counted and summarised in the next line. */
  readonly refusalLogsPerSecond: number;
}

/** Topic filters a device may publish or subscribe to; `{id}` and `{model}` are substituted. */
export interface TopicRules {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

/** Topic permissions: the default for every device, plus what each model adds. */
export interface TopicPolicy {
  readonly default: TopicRules;
  readonly models: Readonly<Record<string, Partial<TopicRules>>>;
}

/** Limits of the MQTT broker. */
export interface BrokerLimits {
  readonly maxConnections: number;
  /** New TCP connections per second on the listener (excess is closed before the TLS handshake). */
  readonly connectionsPerSecond: number;
  readonly connectionBurst: number;
  /** Largest MQTT packet accepted; a larger one closes the connection. */
  readonly maxPacketBytes: number;
  readonly keepaliveMinSeconds: number;
  readonly keepaliveMaxSeconds: number;
  /** QoS 2 messages a client may have in flight towards the broker. */
  readonly maxInflight: number;
  readonly maxTopicLevels: number;
  /** Messages per second one client may publish; beyond it the broker stops reading (backpressure). */
  readonly messagesPerSecond: number;
  readonly messageBurst: number;
  /** Time allowed between TCP accept and CONNECT. */
  readonly connectTimeoutMs: number;
  /** How often presence is written to the registry. */
  readonly presenceFlushMs: number;
  /** Retained messages one device (or one service, all instances together) may hold in the broker. */
  readonly maxRetainedPerDevice: number;
  /** Bytes (topic + payload) of the retained messages one device may hold. */
  readonly maxRetainedBytesPerDevice: number;
  /** Bytes of all retained messages together. */
  readonly maxRetainedBytes: number;
  /** Subscriptions one client session may hold; more get SUBACK 0x80. */
  readonly maxSubscriptionsPerClient: number;
  /** Device history (refusals, session drops) entries kept per device in the registry. */
  readonly historyPerDevice: number;
  /** Identical history events of a device within this window are one entry with a count. */
  readonly historySummaryWindowMs: number;
  /** History entries open in memory, all devices together; beyond it events are counted, not recorded. */
  readonly historyMaxOpen: number;
}

/**
 * Broker configuration. `services` allow-lists backend clients (certificates made by
 * `fleetgate service issue`): a service certificate whose name is not listed cannot connect, so
 * removing a name is how a service is cut off.
 */
export interface BrokerConfig {
  readonly topics: TopicPolicy;
  readonly services: Readonly<Record<string, TopicRules>>;
  readonly limits: BrokerLimits;
}

/** Server configuration, `<data>/config.json`. Every field has a default. */
export interface ServerConfig {
  readonly enrollment: EnrollmentPolicy;
  readonly est: EstLimits;
  readonly broker: BrokerConfig;
  /** Bounds on unfinished connections, applied to each TLS listener (MQTT, EST, admin) on its own. */
  readonly listeners: ListenerLimits;
  /** Health checks (`/healthz`, `/readyz`); absent: {@link DEFAULT_HEALTH}. */
  readonly health?: HealthConfig;
}

/** Health check settings. */
export interface HealthConfig {
  /**
   * At shutdown, how long `/readyz` answers 503 before the listeners stop accepting, so a load
   * balancer that polls it stops sending new connections first (0: close at once).
   */
  readonly shutdownDrainMs: number;
}

export const DEFAULT_HEALTH: HealthConfig = { shutdownDrainMs: 0 };

const DAY = 86_400;

export const DEFAULT_CONFIG: ServerConfig = {
  enrollment: {
    keyKinds: ['ec-p256', 'ec-p384'],
    rsaMinBits: 2048,
    defaultModel: { certificateLifetimeSeconds: 30 * DAY },
    models: {
      thermostat: { certificateLifetimeSeconds: 30 * DAY },
      camera: { certificateLifetimeSeconds: 30 * DAY },
      car: { certificateLifetimeSeconds: 90 * DAY },
    },
    renewalGraceSeconds: 3 * DAY,
    bootstrapReenroll: 'after-expiry',
    clockSkewSeconds: 300,
  },
  est: {
    maxBodyBytes: 16 * 1024,
    ratePerSecond: 1000,
    rateBurst: 2000,
    perIdentityPerMinute: 10,
    maxConcurrent: 512,
    requestTimeoutMs: 15_000,
    bodyTimeoutMs: 5_000,
    maxInProgressPerSource: 128,
    auditRefusalsPerSourcePerMinute: 60,
    refusalLogsPerSecond: 20,
  },
  broker: {
    topics: {
      default: { publish: ['devices/{id}/#'], subscribe: ['devices/{id}/#'] },
      models: {
        thermostat: { subscribe: ['fleet/thermostat/commands'] },
        camera: { publish: ['devices/{id}/events/#'] },
        car: {},
      },
    },
    services: {
      backend: { publish: ['devices/+/commands/#', 'fleet/#'], subscribe: ['devices/#'] },
    },
    limits: {
      maxConnections: 50_000,
      connectionsPerSecond: 2000,
      connectionBurst: 4000,
      maxPacketBytes: 256 * 1024,
      keepaliveMinSeconds: 1,
      keepaliveMaxSeconds: 1200,
      maxInflight: 100,
      maxTopicLevels: 16,
      messagesPerSecond: 500,
      messageBurst: 1000,
      connectTimeoutMs: 10_000,
      presenceFlushMs: 1000,
      maxRetainedPerDevice: 100,
      maxRetainedBytesPerDevice: 1024 * 1024,
      maxRetainedBytes: 256 * 1024 * 1024,
      maxSubscriptionsPerClient: 100,
      historyPerDevice: 50,
      historySummaryWindowMs: 60_000,
      historyMaxOpen: 10_000,
    },
  },
  listeners: {
    handshakeTimeoutMs: 10_000,
    maxPendingConnections: 1024,
    maxPendingPerAddress: 128,
  },
  health: DEFAULT_HEALTH,
};

/** The configuration file is invalid. */
export class ConfigError extends FleetgateError<OperatorCode<'CONFIG_INVALID'>> {
  override readonly name = 'ConfigError';
  constructor(message: string, options?: ErrorOptions) {
    super('CONFIG_INVALID', message, options);
  }
}

const KEY_KINDS: readonly KeyKind[] = ['ec-p256', 'ec-p384', 'ec-p521', 'ed25519', 'rsa'];

function positiveNumber(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ConfigError(`${path} must be a positive number`);
  }
  return value;
}

function modelPolicy(value: unknown, path: string, base: ModelPolicy): ModelPolicy {
  if (typeof value !== 'object' || value === null) throw new ConfigError(`${path} must be an object`);
  const raw = value as Record<string, unknown>;
  return {
    certificateLifetimeSeconds:
      raw.certificateLifetimeSeconds === undefined ? base.certificateLifetimeSeconds : positiveNumber(raw.certificateLifetimeSeconds, `${path}.certificateLifetimeSeconds`),
  };
}

/** Merges a partial configuration over the defaults, validating every field it sets. */
export function mergeConfig(partial: unknown, base: ServerConfig = DEFAULT_CONFIG): ServerConfig {
  if (partial === undefined) return base;
  if (typeof partial !== 'object' || partial === null) throw new ConfigError('the configuration must be a JSON object');
  const raw = partial as { enrollment?: Record<string, unknown>; est?: Record<string, unknown>; broker?: unknown; listeners?: unknown; health?: unknown };
  const enrollment = { ...base.enrollment } as { -readonly [K in keyof EnrollmentPolicy]: EnrollmentPolicy[K] };
  const e = raw.enrollment ?? {};
  if (e.keyKinds !== undefined) {
    if (!Array.isArray(e.keyKinds) || e.keyKinds.some((kind) => !KEY_KINDS.includes(kind as KeyKind))) {
      throw new ConfigError(`enrollment.keyKinds must list some of ${KEY_KINDS.join(', ')}`);
    }
    enrollment.keyKinds = e.keyKinds as KeyKind[];
  }
  if (e.rsaMinBits !== undefined) {
    enrollment.rsaMinBits = positiveNumber(e.rsaMinBits, 'enrollment.rsaMinBits');
    if (enrollment.rsaMinBits < 2048) throw new ConfigError('enrollment.rsaMinBits below 2048 is not allowed');
  }
  if (e.defaultModel !== undefined) enrollment.defaultModel = modelPolicy(e.defaultModel, 'enrollment.defaultModel', base.enrollment.defaultModel);
  if (e.models !== undefined) {
    if (typeof e.models !== 'object' || e.models === null) throw new ConfigError('enrollment.models must be an object');
    const models: Record<string, ModelPolicy> = { ...base.enrollment.models };
    for (const [name, value] of Object.entries(e.models)) {
      models[name] = modelPolicy(value, `enrollment.models.${name}`, models[name] ?? enrollment.defaultModel);
    }
    enrollment.models = models;
  }
  if (e.renewalGraceSeconds !== undefined) {
    if (typeof e.renewalGraceSeconds !== 'number' || e.renewalGraceSeconds < 0) throw new ConfigError('enrollment.renewalGraceSeconds must be >= 0');
    enrollment.renewalGraceSeconds = e.renewalGraceSeconds;
  }
  if (e.bootstrapReenroll !== undefined) {
    if (!['never', 'after-expiry', 'always'].includes(e.bootstrapReenroll as string)) {
      throw new ConfigError('enrollment.bootstrapReenroll must be never, after-expiry or always');
    }
    enrollment.bootstrapReenroll = e.bootstrapReenroll as BootstrapReenrollPolicy;
  }
  if (e.clockSkewSeconds !== undefined) {
    if (typeof e.clockSkewSeconds !== 'number' || e.clockSkewSeconds < 0 || e.clockSkewSeconds > 86_400) {
      throw new ConfigError('enrollment.clockSkewSeconds must be between 0 and 86400');
    }
    enrollment.clockSkewSeconds = e.clockSkewSeconds;
  }
  const est = { ...base.est } as { -readonly [K in keyof EstLimits]: EstLimits[K] };
  for (const [key, value] of Object.entries(raw.est ?? {})) {
    if (!(key in base.est)) throw new ConfigError(`est.${key} is not a known setting`);
    est[key as keyof EstLimits] = positiveNumber(value, `est.${key}`);
  }
  for (const key of Object.keys(raw)) {
    if (!['enrollment', 'est', 'broker', 'listeners', 'health'].includes(key)) throw new ConfigError(`${key} is not a known section`);
  }
  return { enrollment, est, broker: mergeBroker(raw.broker, base.broker), listeners: mergeListeners(raw.listeners, base.listeners), health: mergeHealth(raw.health, base.health ?? DEFAULT_HEALTH) };
}

/** Longest shutdown drain accepted: a typo must not hold a stopping server for hours. */
const MAX_DRAIN_MS = 300_000;

function mergeHealth(partial: unknown, base: HealthConfig): HealthConfig {
  if (partial === undefined) return base;
  if (typeof partial !== 'object' || partial === null) throw new ConfigError('health must be an object');
  const health: { -readonly [K in keyof HealthConfig]: HealthConfig[K] } = { ...base };
  for (const [key, value] of Object.entries(partial)) {
    if (key !== 'shutdownDrainMs') throw new ConfigError(`health.${key} is not a known setting`);
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_DRAIN_MS) {
      throw new ConfigError(`health.shutdownDrainMs must be an integer between 0 and ${MAX_DRAIN_MS}`);
    }
    health.shutdownDrainMs = value;
  }
  return health;
}

function mergeListeners(partial: unknown, base: ListenerLimits): ListenerLimits {
  if (partial === undefined) return base;
  if (typeof partial !== 'object' || partial === null) throw new ConfigError('listeners must be an object');
  const limits = { ...base } as { -readonly [K in keyof ListenerLimits]: ListenerLimits[K] };
  for (const [key, value] of Object.entries(partial)) {
    if (!(key in base)) throw new ConfigError(`listeners.${key} is not a known setting`);
    limits[key as keyof ListenerLimits] = positiveNumber(value, `listeners.${key}`);
  }
  return limits;
}

/** Syntax of a backend service name (also the prefix of its MQTT client ids). */
export const SERVICE_NAME = /^[a-z][a-z0-9-]{0,31}$/;

function topicList(value: unknown, path: string): string[] {
  if (!Array.isArray(value) || value.some((entry) => typeof entry !== 'string' || entry.length === 0)) {
    throw new ConfigError(`${path} must be a list of topic filters`);
  }
  for (const filter of value as string[]) {
    const levels = filter.split('/');
    const hashAt = levels.indexOf('#');
    const badLevel = levels.some(
      (level) => (level.length > 1 && /[#+]/.test(level)) || (level !== '{id}' && level !== '{model}' && /[{}]/.test(level)),
    );
    if ((hashAt !== -1 && hashAt !== levels.length - 1) || badLevel) {
      throw new ConfigError(`${path}: "${filter}" is not a valid topic filter template ('+' and '#' as whole levels, '#' last, {id} and {model} as whole levels)`);
    }
  }
  return value as string[];
}

function mergeBroker(partial: unknown, base: BrokerConfig): BrokerConfig {
  if (partial === undefined) return base;
  if (typeof partial !== 'object' || partial === null) throw new ConfigError('broker must be an object');
  const raw = partial as {
    topics?: { default?: Record<string, unknown>; models?: Record<string, Record<string, unknown>> };
    services?: Record<string, Record<string, unknown>>;
    limits?: Record<string, unknown>;
  };
  const limits = { ...base.limits } as { -readonly [K in keyof BrokerLimits]: BrokerLimits[K] };
  for (const [key, value] of Object.entries(raw.limits ?? {})) {
    if (!(key in base.limits)) throw new ConfigError(`broker.limits.${key} is not a known setting`);
    if (key === 'keepaliveMinSeconds' && value === 0) {
      limits.keepaliveMinSeconds = 0;
      continue;
    }
    limits[key as keyof BrokerLimits] = positiveNumber(value, `broker.limits.${key}`);
  }
  if (limits.keepaliveMinSeconds > limits.keepaliveMaxSeconds) throw new ConfigError('broker.limits.keepaliveMinSeconds exceeds keepaliveMaxSeconds');
  const topics = raw.topics;
  const defaults: TopicRules = {
    publish: topics?.default?.publish === undefined ? base.topics.default.publish : topicList(topics.default.publish, 'broker.topics.default.publish'),
    subscribe: topics?.default?.subscribe === undefined ? base.topics.default.subscribe : topicList(topics.default.subscribe, 'broker.topics.default.subscribe'),
  };
  const models: Record<string, Partial<TopicRules>> = { ...base.topics.models };
  for (const [model, rules] of Object.entries(topics?.models ?? {})) {
    models[model] = {
      ...(rules.publish === undefined ? {} : { publish: topicList(rules.publish, `broker.topics.models.${model}.publish`) }),
      ...(rules.subscribe === undefined ? {} : { subscribe: topicList(rules.subscribe, `broker.topics.models.${model}.subscribe`) }),
    };
  }
  let services = base.services;
  if (raw.services !== undefined) {
    if (typeof raw.services !== 'object' || raw.services === null) throw new ConfigError('broker.services must be an object');
    services = Object.fromEntries(
      Object.entries(raw.services).map(([name, rules]) => {
        if (!SERVICE_NAME.test(name)) throw new ConfigError(`broker.services: "${name}" is not a valid service name`);
        return [name, { publish: topicList(rules.publish ?? [], `broker.services.${name}.publish`), subscribe: topicList(rules.subscribe ?? [], `broker.services.${name}.subscribe`) }];
      }),
    );
  }
  return { topics: { default: defaults, models }, services, limits };
}

/** Loads `<data>/config.json` if it exists, over the defaults. */
export async function loadConfig(path: string): Promise<ServerConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return DEFAULT_CONFIG;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
  return mergeConfig(parsed);
}

/** Policy that applies to a model. */
export function policyForModel(policy: EnrollmentPolicy, model: string): ModelPolicy {
  return policy.models[model] ?? policy.defaultModel;
}
