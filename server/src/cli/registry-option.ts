import { NODE_ID, REDIS_URL } from '../config/schema.ts';
import { isPostgresUrl, REGISTRY_URL_ENV } from '../registry/registry-url.ts';
import { UsageError } from './args.ts';

/*
 * Options of `fleetgate serve` (and the registry commands) that name shared backends.
 */

/**
 * The PostgreSQL URL of `--registry`, else of FLEETGATE_REGISTRY_URL; undefined when neither is
 * set (config.json `registry.url` decides then, else LevelDB). Anything but a postgres:// URL is
 * a usage error: fleetgate would otherwise quietly start on an empty LevelDB registry.
 */
export function registryUrlOption(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const flag = values.registry as string | undefined;
  const url = flag ?? (env[REGISTRY_URL_ENV] || undefined);
  if (url !== undefined && !isPostgresUrl(url)) {
    throw new UsageError(`${flag !== undefined ? '--registry' : REGISTRY_URL_ENV} must be a PostgreSQL URL (postgres://user@host:port/database), not ${JSON.stringify(url)}`);
  }
  return url;
}

/** The environment variable that names the cluster's Redis (between `--cluster-redis` and config.json). */
export const CLUSTER_REDIS_ENV = 'FLEETGATE_CLUSTER_REDIS';

/** The Redis URL of `--cluster-redis`, else FLEETGATE_CLUSTER_REDIS (undefined: config.json `cluster.redis` decides, else one node). */
export function clusterRedisOption(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const flag = values['cluster-redis'] as string | undefined;
  const url = flag ?? (env[CLUSTER_REDIS_ENV] || undefined);
  if (url !== undefined && !REDIS_URL.test(url)) throw new UsageError(`${flag !== undefined ? '--cluster-redis' : CLUSTER_REDIS_ENV} must be a Redis URL (redis://host:port), not ${JSON.stringify(url)}`);
  return url;
}

/** The node name of `--node-id`: letters, digits, `.`, `_`, `-`, at most 64. */
export function nodeIdOption(values: Record<string, unknown>): string | undefined {
  const id = values['node-id'] as string | undefined;
  if (id !== undefined && !NODE_ID.test(id)) throw new UsageError(`--node-id must be 1 to 64 letters, digits, '.', '_' or '-', not ${JSON.stringify(id)}`);
  return id;
}
