import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from '../registry/types.ts';
import type { HealthState } from './health.ts';
import type { Metrics } from './metrics.ts';

/** How often the expiring-certificates gauge is recomputed (it scans every device). */
const EXPIRY_SCAN_MS = 60_000;
const SEVEN_DAYS_MS = 7 * 86_400_000;

const PATHS = 'GET /metrics, /healthz, /readyz';

/**
 * The plain-HTTP endpoint for monitoring, loopback by default: it carries no secrets, but it does
 * reveal the size of the fleet.
 *
 * - `GET /metrics`: Prometheus text.
 * - `GET /healthz`: liveness, `200 ok` (text) whenever the event loop runs; it checks nothing
 *   else, so a restart is not triggered by a registry or a listener that readiness reports.
 * - `GET /readyz`: readiness, JSON, 200 when the registry answers a read and every listener
 *   listens, 503 naming what is not ready otherwise (and from the start of a shutdown on).
 *
 * `HEAD` is answered like `GET` without the body (some load balancers probe with it).
 */
export function createMetricsServer(metrics: Metrics, registry: Pick<Registry, 'listDevices'>, logger: Logger, health: HealthState): { server: Server; close(): Promise<void> } {
  const scanExpiring = async (): Promise<void> => {
    const horizon = Date.now() + SEVEN_DAYS_MS;
    const devices = await registry.listDevices({ state: 'enrolled' });
    metrics.certificatesExpiringSoon.set(devices.filter((device) => Date.parse(device.certNotAfter) < horizon).length);
  };
  const scan = (): void => {
    scanExpiring().catch((error: unknown) => logger.warn({ err: error }, 'expiry scan failed'));
  };
  scan();
  const timer = setInterval(scan, EXPIRY_SCAN_MS);
  timer.unref();
  const send = (request: IncomingMessage, response: ServerResponse, status: number, contentType: string, body: string): void => {
    response.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    response.end(request.method === 'HEAD' ? undefined : body);
  };
  const server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { 'Content-Type': 'text/plain', Allow: 'GET, HEAD' }).end(`method not allowed: ${PATHS}\n`);
      return;
    }
    if (path === '/healthz') {
      send(request, response, 200, 'text/plain; charset=utf-8', 'ok\n');
      return;
    }
    if (path === '/readyz') {
      health.readiness().then(
        (readiness) => send(request, response, readiness.status, 'application/json', `${JSON.stringify(readiness.body)}\n`),
        (error: unknown) => {
          logger.error({ err: error }, 'readiness check failed');
          send(request, response, 503, 'application/json', `${JSON.stringify({ status: 'not ready', checks: {}, notReady: ['readiness'] })}\n`);
        },
      );
      return;
    }
    if (path !== '/metrics') {
      send(request, response, 404, 'text/plain; charset=utf-8', `not found: ${PATHS}\n`);
      return;
    }
    metrics.registry.metrics().then(
      (text) => send(request, response, 200, metrics.registry.contentType, text),
      (error: unknown) => {
        logger.error({ err: error }, 'metrics rendering failed');
        response.writeHead(500).end();
      },
    );
  });
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(timer);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
