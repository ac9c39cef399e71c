import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { KeyedRateLimiter } from '../rate-limiter.ts';

/**
 * A token bucket per key kept in Redis, so a limit holds across every node of a cluster: a device
 * that loops over EST is limited per identity, not per node it reaches. One Lua script takes a
 * token atomically with Redis' own clock (nodes' clocks do not matter); the key expires once the
 * bucket would be full again. Returns the seconds to wait (0: admitted).
 */
const TAKE = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
`;

/** How long a take may wait for Redis before the node's own limiter decides instead. */
const REDIS_WAIT_MS = 250;

type TakeCommand = (key: string, rate: number, burst: number) => Promise<string>;

/** Takes one token per key (`take(key)`: 0, or the seconds to wait), as {@link KeyedRateLimiter} does on one node. */
export interface KeyedLimiter {
  take(key: string): number | Promise<number>;
}

/**
 * Per-key limits shared through Redis (`perMinute` per key, burst of as many). While Redis does not
 * answer, each node falls back to its own in-memory limiter with the same limits: a Redis outage
 * makes the limit per node for its duration, it never turns enrollment off.
 */
export class SharedRateLimiter implements KeyedLimiter {
  private readonly take$: TakeCommand;
  private readonly local: KeyedRateLimiter;
  private warned = false;

  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly perMinute: number,
    private readonly logger: Logger,
  ) {
    redis.defineCommand('fleetgateTakeToken', { numberOfKeys: 1, lua: TAKE });
    const command = (redis as unknown as { fleetgateTakeToken: TakeCommand }).fleetgateTakeToken.bind(redis);
    this.take$ = command;
    this.local = new KeyedRateLimiter(perMinute);
  }

  async take(key: string): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const answer = await Promise.race([
        this.take$(`fleetgate:rate:${this.prefix}:${key}`, this.perMinute / 60, this.perMinute),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer from Redis within ${REDIS_WAIT_MS} ms`)), REDIS_WAIT_MS);
        }),
      ]);
      this.warned = false;
      return Number(answer);
    } catch (error) {
      if (!this.warned) this.logger.warn({ err: error, limiter: this.prefix }, 'shared rate limit unavailable; limiting on this node until Redis answers');
      this.warned = true;
      return this.local.take(key);
    } finally {
      clearTimeout(timer);
    }
  }
}
