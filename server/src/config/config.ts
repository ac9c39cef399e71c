import { readFile } from 'node:fs/promises';
import { Ajv, type ErrorObject, type SchemaObject, type ValidateFunction } from 'ajv';
import type { KeyKind } from '../pki/algorithms.ts';
import { FleetgateError } from '@fleetgate/device-sdk/errors';
import type { OperatorCode } from '../cli/errors.ts';
import type { ListenerLimits } from '../tls/listener-guard.ts';
import { CONFIG_SCHEMA, SERVICE_NAME, schemaDefaults, type SchemaNode } from './schema.ts';

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

/** Server configuration, `<data>/config.json`. Every field has a default (schema.ts; docs/configuration.md). */
export interface ServerConfig {
  readonly enrollment: EnrollmentPolicy;
  readonly est: EstLimits;
  readonly broker: BrokerConfig;
  /** Bounds on unfinished connections, applied to each TLS listener (MQTT, EST, admin) on its own. */
  readonly listeners: ListenerLimits;
  /** Health checks (`/healthz`, `/readyz`); absent: {@link DEFAULT_HEALTH}. */
  readonly health?: HealthConfig;
  /** Where the registry lives; absent (older files): LevelDB with {@link DEFAULT_REGISTRY} settings. */
  readonly registry?: RegistryConfig;
  /** Cluster mode (Redis); absent or without `redis`: one node. */
  readonly cluster?: ClusterConfig;
}

/** Cluster mode (docs/cluster.md). */
export interface ClusterConfig {
  /** The Redis URL of the cluster; absent: embedded (in-process MQTT routing). */
  readonly redis?: string;
  /** This node's name; absent: host name and process id. */
  readonly nodeId?: string;
  readonly maxSessionDelivery: number;
  /** Worker processes of `fleetgate serve` (node:cluster); absent: 1. */
  readonly workers?: number;
}

/** Where the registry lives and how fleetgate talks to PostgreSQL (docs/postgres.md). */
export interface RegistryConfig {
  /** A PostgreSQL URL; absent: LevelDB in `<data>/registry`. */
  readonly url?: string;
  readonly poolSize: number;
  readonly connectTimeoutMs: number;
  readonly queryTimeoutMs: number;
  readonly changeRetentionHours: number;
}

/** Health checks of the metrics listener (`/healthz`, `/readyz`). */
export interface HealthConfig {
  /**
   * At shutdown, how long `/readyz` answers 503 before the listeners stop accepting, so a load
   * balancer that polls it stops sending new connections first (0: close at once).
   */
  readonly shutdownDrainMs: number;
}

/** The health settings when config.json has none (older files). */
export const DEFAULT_HEALTH: HealthConfig = { shutdownDrainMs: 0 };


/**
 * Every setting at its default: read from the schema ({@link CONFIG_SCHEMA}), the one place a
 * default is written. `fleetgate init` writes it out as `<data>/config.json`.
 */
export const DEFAULT_CONFIG: ServerConfig = schemaDefaults({ ...CONFIG_SCHEMA, default: {} }) as ServerConfig;

/** The registry settings when config.json has none (older files). */
export const DEFAULT_REGISTRY: RegistryConfig = DEFAULT_CONFIG.registry as RegistryConfig;

/** The configuration file is invalid. */
export class ConfigError extends FleetgateError<OperatorCode<'CONFIG_INVALID'>> {
  override readonly name = 'ConfigError';
  constructor(message: string, options?: ErrorOptions) {
    super('CONFIG_INVALID', message, options);
  }
}

export { SERVICE_NAME };

let validator: ValidateFunction | undefined;

/**
 * The schema compiled once, on first use (a few tens of milliseconds: paid by `fleetgate serve`
 * at start, never by the admin commands, which do not read config.json). `useDefaults` fills
 * every missing setting from the schema before `required` is checked, so a valid file comes out
 * complete; `allErrors` reports every problem of a file at once; `verbose` gives the error
 * formatter the schema node (its description) of a refused value.
 */
function compiled(): ValidateFunction {
  // `optimize: false`: the validator runs once per start, so the code generator's optimisation
  // passes cost more than they save (measured: compile about 40% faster without them).
  validator ??= new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: true, code: { optimize: false } }).compile(CONFIG_SCHEMA as SchemaObject);
  return validator;
}

/** `/broker/topics/default/publish/0` -> `broker.topics.default.publish[0]` (RFC 6901 unescaping). */
function settingPath(pointer: string, key?: string): string {
  const parts = pointer === '' ? [] : pointer.slice(1).split('/').map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'));
  if (key !== undefined) parts.push(key);
  return parts.reduce((path, part) => (/^\d+$/.test(part) ? `${path}[${part}]` : path === '' ? part : `${path}.${part}`), '');
}

/** One line per problem, each naming the setting by its path. */
function describe(error: ErrorObject): string | undefined {
  const at = settingPath(error.instancePath);
  const where = at === '' ? 'the configuration' : at;
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties':
      return at === '' ? `${String(params.additionalProperty)} is not a known section` : `${settingPath(error.instancePath, String(params.additionalProperty))} is not a known setting`;
    case 'required':
      return `${settingPath(error.instancePath, String(params.missingProperty))} is required`;
    case 'enum':
      return `${where} must be one of ${(params.allowedValues as unknown[]).join(', ')}`;
    case 'pattern':
      // A name refused by `propertyNames` is reported once, by the propertyNames error below.
      if (error.propertyName !== undefined) return undefined;
      return `${where}: ${JSON.stringify(error.data)} is not ${(error.parentSchema as SchemaNode | undefined)?.description ?? 'valid'}`;
    case 'propertyNames':
      // Only `broker.services` restricts its names.
      return `${where}: ${JSON.stringify(params.propertyName)} is not a valid service name (lower-case letters, digits and dashes, starting with a letter, at most 32)`;
    default:
      return `${where} ${error.message ?? 'is invalid'}`;
  }
}

/**
 * Validates a configuration file's content against the schema and fills every setting it does
 * not set from the schema's defaults. Unknown sections and settings are refused: a misspelt
 * limit would otherwise silently stay at its default.
 *
 * @throws ConfigError naming the path of every problem (`broker.limits.maxConnections must be >= 1`).
 */
export function mergeConfig(partial: unknown): ServerConfig {
  if (partial === undefined) return DEFAULT_CONFIG;
  // ajv fills defaults in place: never into the caller's object.
  const config = structuredClone(partial);
  const validate = compiled();
  if (!validate(config)) {
    const problems = [...new Set((validate.errors ?? []).map(describe).filter((line) => line !== undefined))];
    throw new ConfigError(problems.join('; '));
  }
  const valid = config as ServerConfig;
  // JSON Schema compares no two values; this bound is between two settings.
  if (valid.broker.limits.keepaliveMinSeconds > valid.broker.limits.keepaliveMaxSeconds) {
    throw new ConfigError('broker.limits.keepaliveMinSeconds exceeds broker.limits.keepaliveMaxSeconds');
  }
  // The per-model maps extend the default models instead of replacing them (the schema's
  // descriptions say so); `broker.services` replaces the default services.
  return {
    ...valid,
    enrollment: { ...valid.enrollment, models: { ...DEFAULT_CONFIG.enrollment.models, ...valid.enrollment.models } },
    broker: { ...valid.broker, topics: { ...valid.broker.topics, models: { ...DEFAULT_CONFIG.broker.topics.models, ...valid.broker.topics.models } } },
  };
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
  try {
    return mergeConfig(parsed);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`${path}: ${error.message}`);
    throw error;
  }
}

/** Policy that applies to a model. */
export function policyForModel(policy: EnrollmentPolicy, model: string): ModelPolicy {
  return policy.models[model] ?? policy.defaultModel;
}
