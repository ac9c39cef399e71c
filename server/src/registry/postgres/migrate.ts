import type pg from 'pg';
import { RegistryError } from '../errors.ts';
import { toRegistryError } from './pg-errors.ts';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.ts';

/**
 * Key of the advisory lock migrations hold (an arbitrary constant, "fleetgat" in ASCII): two
 * processes starting at once against an empty database take turns, and the second finds the
 * schema made.
 */
const MIGRATION_LOCK = 0x666c656574676174n;

/** What applying migrations did. */
export interface MigrationOutcome {
  /** The schema version before. */
  readonly from: number;
  /** The schema version now. */
  readonly to: number;
}

/**
 * Brings the schema to {@link SCHEMA_VERSION}: every missing migration in order, in one
 * transaction under an advisory lock, each recorded in `schema_migrations`. Refuses a database
 * whose schema is newer than this build knows (a downgrade would misread it).
 */
export async function migrate(pool: pg.Pool): Promise<MigrationOutcome> {
  const client = await pool.connect().catch((error: unknown) => {
    throw toRegistryError(error, 'connecting');
  });
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK.toString()]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
    const from = await currentVersion(client);
    if (from > SCHEMA_VERSION) {
      throw new RegistryError('REGISTRY_IO', `the registry database has schema version ${from}, newer than this fleetgate knows (${SCHEMA_VERSION}): upgrade fleetgate`);
    }
    for (const migration of MIGRATIONS) {
      if (migration.version <= from) continue;
      await client.query(migration.sql);
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
    }
    await client.query('COMMIT');
    return { from, to: Math.max(from, SCHEMA_VERSION) };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw toRegistryError(error, 'migrating the schema');
  } finally {
    client.release();
  }
}

/** The schema version of a database (0: none yet). */
export async function schemaVersion(client: pg.Pool | pg.PoolClient): Promise<number> {
  const exists = await client.query<{ present: boolean }>("SELECT to_regclass('schema_migrations') IS NOT NULL AS present");
  if (!exists.rows[0]?.present) return 0;
  return currentVersion(client);
}

async function currentVersion(client: pg.Pool | pg.PoolClient): Promise<number> {
  const result = await client.query<{ version: number | null }>('SELECT max(version) AS version FROM schema_migrations');
  return result.rows[0]?.version ?? 0;
}
