import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgres as startThrowawayPostgres, type PostgresServer } from '../../bench/postgres.ts';

export type { PostgresServer };

/**
 * A throwaway PostgreSQL server of this test process (bench/postgres.ts, shared with the
 * benchmark): `initdb` into a temp directory, `postgres` on a free loopback port, stopped and
 * deleted by destroy(). Small: tests open many pools, and 32 MB of shared buffers is plenty.
 */
export async function startPostgres(): Promise<PostgresServer> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetgate-pg-'));
  return startThrowawayPostgres({ dir, settings: { max_connections: 200, shared_buffers: '32MB' } });
}

let shared: Promise<PostgresServer> | undefined;

/**
 * One server for every test of this process (a test file), started on first use. The file
 * registers `test.after.always(stopSharedPostgres)`.
 */
export function sharedPostgres(): Promise<PostgresServer> {
  shared ??= startPostgres();
  return shared;
}

/** Stops and deletes the shared server, if one was started. */
export async function stopSharedPostgres(): Promise<void> {
  if (!shared) return;
  const server = await shared.catch(() => undefined);
  shared = undefined;
  await server?.destroy();
}
