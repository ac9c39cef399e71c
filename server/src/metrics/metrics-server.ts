import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Registry as PromRegistry } from 'prom-client';
import type { Readiness } from './health.ts';

const PATHS = 'GET /metrics, /healthz, /readyz';

/** What `/metrics` renders: a prom-client registry, or anything that renders like one. */
export type MetricsSource = Pick<PromRegistry, 'contentType' | 'metrics'>;

/** What `/readyz` asks. */
export interface ReadinessSource {
  readiness(): Promise<Readiness>;
}

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
 * `metrics` is a process's prom-client registry, or what renders the workers' registries together
 * (cluster/worker-pool.ts); `health` is its HealthState, or the workers' readiness together.
 */
export function createMetricsServer(metrics: MetricsSource, logger: Logger, health: ReadinessSource): { server: Server; close(): Promise<void> } {
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
    metrics.metrics().then(
      (text) => send(request, response, 200, metrics.contentType, text),
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
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
