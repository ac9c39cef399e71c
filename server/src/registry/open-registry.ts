import type { Logger } from 'pino';
import type { RegistryConfig } from '../config/config.ts';
import { LevelRegistry } from './level/level-registry.ts';
import type { Registry } from './types.ts';

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
