import pg from 'pg';

/** PostgreSQL's settings that decide what a commit costs, as the server reports them. */
const SETTINGS = [
  'fsync',
  'synchronous_commit',
  'wal_sync_method',
  'full_page_writes',
  'commit_delay',
  'wal_level',
  'shared_buffers',
  'wal_buffers',
  'max_wal_size',
  'checkpoint_timeout',
  'max_connections',
] as const;

/** The server's version and its durability and memory settings (`SHOW`-style, units included). */
export async function readPostgresSettings(url: string): Promise<Record<string, string>> {
  return withClient(url, async (client) => {
    const { rows } = await client.query<{ name: string; value: string }>(
      "SELECT name, current_setting(name) AS value FROM pg_settings WHERE name = ANY($1::text[]) UNION ALL SELECT 'server_version', current_setting('server_version') ORDER BY name",
      [SETTINGS],
    );
    return Object.fromEntries(rows.map((row) => [row.name, row.value]));
  });
}

/**
 * Work counters of one database and the server's WAL, cumulative since the server started
 * (pg_stat_database, pg_stat_wal). Backends report them up to a second after the fact: read them
 * with the server idle for a second or more.
 */
export interface PostgresActivity {
  /** Transactions committed in the database (a statement outside BEGIN/COMMIT is one too). */
  readonly commits: number;
  readonly rollbacks: number;
  readonly rowsInserted: number;
  readonly rowsUpdated: number;
  /** WAL flushed to disk (fdatasync or the like): each one a wait for the disk. */
  readonly walSyncs: number;
  readonly walWrites: number;
  readonly walBytes: number;
  readonly walRecords: number;
}

export async function readPostgresActivity(url: string): Promise<PostgresActivity> {
  return withClient(url, async (client) => {
    const { rows } = await client.query<Record<string, string>>(
      `SELECT d.xact_commit, d.xact_rollback, d.tup_inserted, d.tup_updated, w.wal_sync, w.wal_write, w.wal_bytes, w.wal_records
       FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()`,
    );
    const row = rows[0];
    if (!row) throw new Error('pg_stat_database has no row for the database');
    return {
      commits: Number(row.xact_commit),
      rollbacks: Number(row.xact_rollback),
      rowsInserted: Number(row.tup_inserted),
      rowsUpdated: Number(row.tup_updated),
      walSyncs: Number(row.wal_sync),
      walWrites: Number(row.wal_write),
      walBytes: Number(row.wal_bytes),
      walRecords: Number(row.wal_records),
    };
  });
}

/** What happened between two readings. */
export function activityBetween(before: PostgresActivity, after: PostgresActivity): PostgresActivity {
  const keys = Object.keys(before) as (keyof PostgresActivity)[];
  return Object.fromEntries(keys.map((key) => [key, after[key] - before[key]])) as unknown as PostgresActivity;
}

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, query_timeout: 10_000, application_name: 'fleetgate-bench' });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}
