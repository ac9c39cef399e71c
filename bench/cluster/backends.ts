import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '../cleanup.ts';
import { startPostgres, type PostgresServer } from '../postgres.ts';
import { progress } from '../progress.ts';
import { startRedis, type RedisServer } from '../redis.ts';

/** The PostgreSQL registry and the Redis every fleetgate node of the run shares, each a throwaway server of the run's. */
export interface ClusterBackends {
  readonly postgres: PostgresServer;
  readonly registryUrl: string;
  readonly redis: RedisServer;
  stop(): Promise<void>;
}

/**
 * Starts PostgreSQL (PostgreSQL's default settings, as docs/postgres.md recommends to begin with)
 * and Redis (no persistence, as docs/cluster.md describes; its directory in `dir`), unpinned like the nodes.
 */
export async function startClusterBackends(dir: string): Promise<ClusterBackends> {
  // A directory of its own at the top of /tmp: as root, PostgreSQL runs as the postgres user,
  // which cannot enter the benchmark's own 0700 directory. destroy() deletes it.
  const postgresDir = await makeTempDir('pgdata');
  const redisDir = join(dir, 'redis');
  await mkdir(redisDir);
  const postgres = await startPostgres({ dir: postgresDir, databasePrefix: 'fleetgate_cluster' });
  let redis: RedisServer;
  try {
    redis = await startRedis({ dir: redisDir });
  } catch (error) {
    await postgres.destroy();
    throw error;
  }
  const registryUrl = await postgres.createDatabase();
  progress(`PostgreSQL on port ${postgres.port}, Redis on port ${redis.port}`);
  return {
    postgres,
    registryUrl,
    redis,
    async stop() {
      await Promise.all([redis.stop(), postgres.destroy()]);
    },
  };
}
