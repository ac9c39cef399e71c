import { readFile } from 'node:fs/promises';
import { Ajv, type ErrorObject, type SchemaObject, type ValidateFunction } from 'ajv';
import { FleetgateError } from '@fleetgate/device-sdk/errors';
import type { OperatorCode } from '../cli/errors.ts';
import { CONFIG_SCHEMA, SERVICE_NAME, schemaDefaults, type ConfigOf, type SchemaNode } from './schema.ts';

/*
 * The configuration's types, derived from the schema (schema.ts): each setting is written once,
 * there, with its type, bounds, default and meaning (docs/configuration.md is generated from it).
 */

/** Server configuration, `<data>/config.json`, as validated (every default filled in). */
export type ServerConfig = ConfigOf<typeof CONFIG_SCHEMA>;
/** The enrollment policy: what a CSR may contain and what the certificate gets. */
export type EnrollmentPolicy = ServerConfig['enrollment'];
/** The policy of one device model. */
export type ModelPolicy = EnrollmentPolicy['defaultModel'];
/** When a bootstrap identity may enroll again. */
export type BootstrapReenrollPolicy = EnrollmentPolicy['bootstrapReenroll'];
/** Limits of the EST listener. */
export type EstLimits = ServerConfig['est'];
/** The MQTT broker's settings. */
export type BrokerConfig = ServerConfig['broker'];
/** Topic permissions of devices: the default, and what each model adds. */
export type TopicPolicy = BrokerConfig['topics'];
/** Topic filters a client may publish and subscribe to. */
export type TopicRules = TopicPolicy['default'];
/** Limits of the MQTT listener and of each client. */
export type BrokerLimits = BrokerConfig['limits'];
/** Cluster mode (docs/cluster.md); absent from older files. */
export type ClusterConfig = NonNullable<ServerConfig['cluster']>;
/** Where the registry lives (docs/postgres.md); absent from older files. */
export type RegistryConfig = NonNullable<ServerConfig['registry']>;
/** Health checks of the metrics listener (`/healthz`, `/readyz`); absent from older files. */
export type HealthConfig = NonNullable<ServerConfig['health']>;

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
