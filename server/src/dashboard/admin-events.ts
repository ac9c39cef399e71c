import { request } from 'node:https';
import type { Logger } from 'pino';
import type { AdminConnection } from '../cli/admin-client.ts';
import type { LiveEvent } from '../live-events.ts';

/** Reconnect delays after the stream ends or fails: capped exponential backoff, full jitter (STYLE §8). */
const RECONNECT_BASE_MS = 500;
const RECONNECT_CAP_MS = 15_000;
/** Longest event line accepted (an event is a few hundred bytes). */
const MAX_PENDING = 64 * 1024;

const LIVE_TYPES = new Set(['connected', 'disconnected', 'refused']);

/** Parses one server-sent event block's `data:` lines as a live event; anything else is skipped. */
export function parseEventBlock(block: string): LiveEvent | undefined {
  const data = block
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(5).replace(/^ /, ''))
    .join('\n');
  if (data === '') return undefined;
  try {
    const value = JSON.parse(data) as unknown;
    if (typeof value !== 'object' || value === null) return undefined;
    const { type, deviceId, time } = value as Record<string, unknown>;
    if (typeof type !== 'string' || !LIVE_TYPES.has(type) || typeof deviceId !== 'string' || typeof time !== 'string') return undefined;
    return value as LiveEvent;
  } catch {
    return undefined;
  }
}

/**
 * Follows the admin API's `GET /v1/events` with the operator certificate, and opens it again when
 * it ends (the server restarted) until {@link AdminEventStream.close}.
 */
export class AdminEventStream {
  private closed = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private current: ReturnType<typeof request> | undefined;

  constructor(
    private readonly connection: AdminConnection,
    private readonly onEvent: (event: LiveEvent) => void,
    private readonly logger: Logger,
    private readonly random: () => number = Math.random,
  ) {}

  start(): void {
    if (this.closed) return;
    const { server } = this.connection;
    const req = request({
      method: 'GET',
      host: server.hostname.replace(/^\[|\]$/g, ''),
      port: server.port || 443,
      path: `${server.pathname.replace(/\/+$/, '')}/v1/events`,
      ca: this.connection.ca,
      cert: this.connection.cert,
      key: this.connection.key,
      agent: false,
      headers: { accept: 'text/event-stream' },
    });
    this.current = req;
    req.on('response', (response) => {
      if (response.statusCode !== 200) {
        this.logger.warn({ status: response.statusCode }, 'the admin API refused its event stream; retrying');
        response.resume();
        response.on('end', () => this.retry());
        return;
      }
      this.attempt = 0;
      this.logger.info('following the admin API event stream');
      let pending = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        pending += chunk;
        for (let end = pending.indexOf('\n\n'); end >= 0; end = pending.indexOf('\n\n')) {
          const event = parseEventBlock(pending.slice(0, end));
          pending = pending.slice(end + 2);
          if (event) this.onEvent(event);
        }
        if (pending.length > MAX_PENDING) response.destroy(new Error('an event longer than 64 KiB'));
      });
      response.on('close', () => this.retry());
    });
    req.on('error', (error) => {
      if (!this.closed) this.logger.warn({ err: error }, 'admin API event stream failed; retrying');
      this.retry();
    });
    req.end();
  }

  private retry(): void {
    if (this.closed || this.timer) return;
    this.current = undefined;
    const ceiling = Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * 2 ** this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.start();
    }, this.random() * ceiling);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.current?.destroy();
  }
}
