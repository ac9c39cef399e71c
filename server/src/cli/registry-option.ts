import { isPostgresUrl, REGISTRY_URL_ENV } from '../registry/open-registry.ts';
import { UsageError } from './args.ts';

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
