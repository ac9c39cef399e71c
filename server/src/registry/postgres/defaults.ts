/**
 * Defaults of the PostgreSQL registry's settings: the config schema (config.json `registry`) and
 * {@link PostgresRegistry.open} both take them from here. Plain data: importing it loads no driver.
 */
export const POSTGRES_DEFAULTS = {
  poolSize: 10,
  connectTimeoutMs: 3_000,
  queryTimeoutMs: 10_000,
  changeRetentionHours: 24,
  maxRound: 256,
} as const;
