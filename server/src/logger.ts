import { pino, type Logger } from 'pino';

/** Structured logs (pino, JSON lines). FLEETGATE_LOG_LEVEL sets the level (default info). */
export function createLogger(options: { level?: string; name?: string; /** 2: stderr, when stdout is the command's output. */ fd?: 1 | 2 } = {}): Logger {
  const settings = { name: options.name ?? 'fleetgate', level: options.level ?? process.env.FLEETGATE_LOG_LEVEL ?? 'info' };
  return options.fd === 2 ? pino(settings, pino.destination(2)) : pino(settings);
}

export type { Logger };
