import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedis as startRedisServer, type RedisServer as BenchRedisServer } from '../../bench/redis.ts';

/**
 * A throwaway Redis server of this test process (bench/redis.ts: Debian's `redis-server` on a
 * free loopback port, no persistence) in a temp directory of its own.
 */
export interface RedisServer extends BenchRedisServer {
  /** Stops it and deletes its directory. */
  destroy(): Promise<void>;
}

export async function startRedis(): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetgate-redis-'));
  const server = await startRedisServer({ dir });
  return {
    ...server,
    async destroy() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
