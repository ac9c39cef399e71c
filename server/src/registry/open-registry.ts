import type { Logger } from 'pino';
import type { RegistryConfig } from '../config/config.ts';
import { LevelRegistry } from './level/level-registry.ts';
import type { Registry } from './types.ts';

/** The environment variable that names a PostgreSQL registry (between `--registry` and config.json). */
export const REGISTRY_URL_ENV = 'FLEETGATE_REGISTRY_URL';

/** Whether `url` names a PostgreSQL database (the only registry server fleetgate speaks to). */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}

/** A URL fit for logs and output: the password replaced. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparseable URL)';
  }
}

/** How to open the registry of a data directory. */
export interface RegistrySelection {
  /** A PostgreSQL URL ({@link resolveRegistryUrl}); absent: LevelDB at `levelPath`. */
  readonly url: string | undefined;
  readonly levelPath: string;
  readonly settings: RegistryConfig;
  readonly now?: () => Date;
  readonly logger?: Logger;
  readonly onBatchWritten?: (seconds: number) => void;
  /** PostgreSQL: bring the schema up to date (the default); false to look without changing anything. */
  readonly migrate?: boolean;
}

/** Opens the registry a selection names. The PostgreSQL driver is loaded only when one is named. */
export async function openRegistry(selection: RegistrySelection): Promise<Registry> {
  const { url, settings, now, logger, onBatchWritten } = selection;
  if (url === undefined) return LevelRegistry.open(selection.levelPath, { now, onBatchWritten });
  const { PostgresRegistry } = await import('./postgres/postgres-registry.ts');
  return PostgresRegistry.open(url, {
    now,
    logger,
    onBatchWritten,
    poolSize: settings.poolSize,
    connectTimeoutMs: settings.connectTimeoutMs,
    queryTimeoutMs: settings.queryTimeoutMs,
    changeRetentionHours: settings.changeRetentionHours,
    migrate: selection.migrate,
  });
}
