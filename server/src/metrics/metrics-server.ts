import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from '../registry/types.ts';
import type { Metrics } from './metrics.ts';

/** How often the expiring-certificates gauge is recomputed (it scans every device). */
const EXPIRY_SCAN_MS = 60_000;
const SEVEN_DAYS_MS = 7 * 86_400_000;

/**
 * Prometheus text endpoint (GET /metrics). Plain HTTP on loopback by default: it carries no
 * secrets, but it does reveal the size of the fleet.
 */
export function createMetricsServer(metrics: Metrics, registry: Registry, logger: Logger): { server: Server; close(): Promise<void> } {
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
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
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
