import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { AdminError } from '../admin/errors.ts';
import type { AdminClient } from '../cli/admin-client.ts';
import { isDevicePage } from '../cli/api-types.ts';
import { CliError } from '../cli/errors.ts';
import type { DashboardAccess } from './access.ts';
import { forward, matchOperation } from './admin-proxy.ts';
import type { Asset } from './assets.ts';
import { DashboardError } from './errors.ts';
import type { FeedEvent, LiveFeed } from './live-feed.ts';

/**
 * The page may load its own files and talk to its own origin, nothing else: no inline script or
 * style, no other origin, no frames, no plugins.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers on every answer. The token is in the first URL: no Referer may carry it anywhere. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

/** Largest JSON body the page sends (a trust with its allow-list); the admin API's own cap. */
const MAX_BODY = 4 * 1024 * 1024;
/** Devices listed under "expiring in 7 days" on the overview (the count goes on to this many). */
const EXPIRING_LIMIT = 1000;
const SEVEN_DAYS_MS = 7 * 86_400_000;
/**
 * How long the expiring list is reused: on LevelDB finding it reads every device (0.55 s at
 * 100,000 devices, bench/device-list.ts), and expiry moves in days, so once a minute is plenty,
 * however often the overview refreshes.
 */
const EXPIRING_CACHE_MS = 60_000;
/** An idle live stream gets a comment this often, so the browser sees it is alive. */
const KEEPALIVE_MS = 15_000;

/** Enrolled devices whose certificate expires within 7 days (the first {@link EXPIRING_LIMIT}). */
interface ExpiringList {
  readonly devices: readonly { readonly id: string; readonly model: string; readonly certNotAfter: string }[];
  readonly more: boolean;
  readonly before: string;
}

/** What the dashboard's HTTP server works with. */
export interface DashboardServerOptions {
  readonly access: DashboardAccess;
  readonly admin: AdminClient;
  readonly feed: LiveFeed;
  readonly assets: ReadonlyMap<string, Asset>;
  readonly logger: Logger;
  readonly now?: () => number;
}

function send(response: ServerResponse, status: number, body: string | Buffer, mediaType: string, headers: Readonly<Record<string, string>> = {}): void {
  const payload = typeof body === 'string' ? Buffer.from(body) : body;
  response.writeHead(status, { ...SECURITY_HEADERS, 'content-type': mediaType, 'content-length': String(payload.length), ...headers });
  response.end(payload);
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  send(response, status, `${JSON.stringify(value)}\n`, 'application/json');
}

function sendError(response: ServerResponse, status: number, code: string, message: string): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  sendJson(response, status, { error: { code, message } });
}

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new AdminError('ADMIN_TOO_LARGE', `the body exceeds ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AdminError('ADMIN_BAD_REQUEST', 'the body is not valid JSON');
  }
}

/**
 * The dashboard's HTTP server (bound to 127.0.0.1 by the command): the page's files, `/api/*`
 * passed to the admin API (admin-proxy.ts), `/api/overview` and `/api/live` made here from the
 * live feed. Every request passes {@link DashboardAccess.check} first.
 */
export function createDashboardServer(options: DashboardServerOptions): Server {
  const { access, admin, feed, assets, logger } = options;
  const now = options.now ?? Date.now;

  let expiringCache: { readonly at: number; readonly value: Promise<ExpiringList> } | undefined;
  const expiring = (): Promise<ExpiringList> => {
    if (!expiringCache || now() - expiringCache.at >= EXPIRING_CACHE_MS) {
      const before = new Date(now() + SEVEN_DAYS_MS).toISOString();
      const value = admin.json('GET', '/v1/devices', isDevicePage, { query: { state: 'enrolled', expiresBefore: before, limit: EXPIRING_LIMIT } }).then((page) => ({
        devices: page.devices.map((device) => ({ id: device.id, model: device.model, certNotAfter: device.certNotAfter })),
        more: page.next !== undefined,
        before,
      }));
      expiringCache = { at: now(), value };
      // A failure is not kept: the next overview asks again.
      value.catch(() => {
        if (expiringCache?.value === value) expiringCache = undefined;
      });
    }
    return expiringCache.value;
  };

  const overview = async (response: ServerResponse): Promise<void> => {
    const summaryAnswer = await admin.send('GET', '/v1/summary');
    if (summaryAnswer.status !== 200) {
      send(response, summaryAnswer.status, summaryAnswer.body, summaryAnswer.contentType || 'application/json');
      return;
    }
    sendJson(response, 200, { summary: JSON.parse(summaryAnswer.body.toString('utf8')) as unknown, expiring: await expiring(), rates: feed.rates() });
  };

  const live = (request: IncomingMessage, response: ServerResponse): void => {
    response.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream' });
    const write = (event: FeedEvent): void => {
      response.write(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
    };
    response.write(': fleetgate dashboard\n\n');
    for (const event of feed.history()) write(event);
    const unsubscribe = feed.subscribe(write);
    const keepalive = setInterval(() => response.write(': keepalive\n\n'), KEEPALIVE_MS);
    keepalive.unref();
    request.socket.setTimeout(0);
    response.on('close', () => {
      clearInterval(keepalive);
      unsubscribe();
    });
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const url = new URL(request.url ?? '/', 'http://dashboard.invalid');
    access.check(request, url);
    const method = request.method ?? 'GET';
    // First visit: keep the token in a cookie and take it out of the address bar and history.
    if (access.urlToken(url) !== undefined && method === 'GET' && !url.pathname.startsWith('/api/')) {
      send(response, 303, '', 'text/plain', { location: url.pathname, 'set-cookie': access.sessionCookie() });
      return;
    }
    if (url.pathname === '/api/overview' || url.pathname === '/api/live') {
      if (method !== 'GET') throw new DashboardError('DASHBOARD_METHOD_NOT_ALLOWED', `${method} is not allowed on ${url.pathname}`);
      if (url.pathname === '/api/overview') await overview(response);
      else live(request, response);
      return;
    }
    if (url.pathname.startsWith('/api/')) {
      const match = matchOperation(method, url.pathname);
      if (match === undefined) throw new DashboardError('DASHBOARD_NOT_FOUND', `no ${url.pathname} in the dashboard's API`);
      if (match === 'method-not-allowed') throw new DashboardError('DASHBOARD_METHOD_NOT_ALLOWED', `${method} is not allowed on ${url.pathname}`);
      const body = match.operation.body ? await readBody(request) : undefined;
      const answer = await forward(admin, match, url.searchParams, body);
      if (method !== 'GET') logger.info({ method, path: url.pathname, status: answer.status }, 'operator action');
      send(response, answer.status, answer.body, answer.contentType || 'application/json');
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') throw new DashboardError('DASHBOARD_METHOD_NOT_ALLOWED', `${method} is not allowed on ${url.pathname}`);
    // Client-side routes (#/devices, ...) are fragments; every page is index.html.
    const asset = assets.get(url.pathname);
    if (!asset) throw new DashboardError('DASHBOARD_NOT_FOUND', `no ${url.pathname}`);
    send(response, 200, asset.body, asset.mediaType);
  };

  return createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (error instanceof DashboardError || error instanceof AdminError) {
        if (error instanceof DashboardError && error.status === 401) logger.warn({ code: error.code, url: request.url?.replace(/token=[^&]*/, 'token=...') }, 'request refused');
        sendError(response, error.status, error.code, error.message);
        return;
      }
      if (error instanceof CliError) {
        // The admin API did not answer, or answered something that is not the API.
        logger.warn({ err: error }, 'admin API request failed');
        const refusal = new DashboardError('DASHBOARD_ADMIN_UNREACHABLE', error.message);
        sendError(response, refusal.status, refusal.code, refusal.message);
        return;
      }
      logger.error({ err: error, url: request.url }, 'dashboard request failed');
      const refusal = new DashboardError('DASHBOARD_INTERNAL', 'internal error');
      sendError(response, refusal.status, refusal.code, refusal.message);
    });
  });
}
