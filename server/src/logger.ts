import { pino, type Logger } from 'pino';

/** Structured logs (pino, JSON lines). FLEETGATE_LOG_LEVEL sets the level (default info). */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino({
    name: options.name ?? 'fleetgate',
    level: options.level ?? process.env.FLEETGATE_LOG_LEVEL ?? 'info',
  });
}

export type { Logger };
