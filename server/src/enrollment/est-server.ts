import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { EST_PREFIX } from '@fleetgate/device-sdk/protocol';
import type { EnrollmentAuthority } from '../authority/enrollment-authority.ts';
import { EnrollmentError } from '../authority/errors.ts';
import type { EstLimits } from '../config/config.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { CrlPublisher } from '../crl/crl-publisher.ts';
import { crl } from './routes/crl.ts';
import { sendError } from './http-io.ts';
import { KeyedRateLimiter, TokenBucket } from '../rate-limiter.ts';
import { cacerts } from './routes/cacerts.ts';
import { csrattrs } from './routes/csrattrs.ts';
import { simpleenroll } from './routes/simpleenroll.ts';
import { simplereenroll } from './routes/simplereenroll.ts';
import type { Route, RouteContext } from './routes/types.ts';
import { mutualTlsServerOptions, type MutualTlsMaterial } from '../tls/defaults.ts';


export interface EstServerOptions {
  readonly authority: EnrollmentAuthority;
  readonly tls: MutualTlsMaterial;
  readonly limits: EstLimits;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly crl: CrlPublisher;
  readonly caCertificates: readonly Buffer[];
}

/** RFC 7030 §3.2.2 operation paths, one module each. */
const ROUTES: ReadonlyMap<string, Route> = new Map([
  ['cacerts', cacerts],
  ['simpleenroll', simpleenroll],
  ['simplereenroll', simplereenroll],
  ['csrattrs', csrattrs],
]);

/** Creates the EST HTTPS server (not yet listening). */
export function createEstServer(options: EstServerOptions): Server {
  const context: RouteContext = {
    authority: options.authority,
    limits: options.limits,
    logger: options.logger,
    metrics: options.metrics,
    crl: options.crl,
    caCertificates: options.caCertificates,
    globalLimiter: new TokenBucket(options.limits.ratePerSecond, options.limits.rateBurst),
    identityLimiter: new KeyedRateLimiter(options.limits.perIdentityPerMinute),
  };
  let inFlight = 0;

  const server = createServer(
    {
      // A missing or bad client certificate gets a 401 with a reason, not a handshake failure.
      ...mutualTlsServerOptions(options.tls),
      requestTimeout: options.limits.requestTimeoutMs,
      headersTimeout: Math.min(options.limits.requestTimeoutMs, 10_000),
    },
    (request, response) => {
      void dispatch(request, response);
    },
  );

  async function dispatch(request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      const route = resolveRoute(request);
      if (inFlight >= options.limits.maxConcurrent) {
        throw new EnrollmentError('ENROLL_UNAVAILABLE', 'the enrollment service is at capacity; retry later', { retryAfterSeconds: 1 });
      }
      inFlight++;
      try {
        await route.handle(request, response, context);
      } finally {
        inFlight--;
      }
    } catch (error) {
      if (error instanceof EnrollmentError) {
        // After a refused body the rest of it may still be in flight: close rather than drain.
        sendError(response, error, error.code === 'ENROLL_TOO_LARGE');
        return;
      }
      options.logger.error({ err: error, url: request.url }, 'enrollment failed');
      sendError(response, new EnrollmentError('ENROLL_INTERNAL', 'internal error; the request was not processed'));
    }
  }

  server.on('clientError', (error, socket) => {
    options.logger.debug({ err: error }, 'EST client error');
    socket.destroy();
  });
  server.on('tlsClientError', (error) => {
    options.logger.debug({ err: error }, 'EST TLS handshake failed');
  });
  return server;
}

function resolveRoute(request: IncomingMessage): Route {
  const path = (request.url ?? '').split('?')[0] ?? '';
  // The CRL sits beside EST on the same listener, open to everyone (RFC 5280 §5).
  if (path === '/crl') {
    if (request.method !== 'GET') throw new EnrollmentError('ENROLL_METHOD_NOT_ALLOWED', '/crl accepts GET only');
    return crl;
  }
  if (!path.startsWith(`${EST_PREFIX}/`)) throw new EnrollmentError('ENROLL_NOT_FOUND', `no such resource ${path}`);
  const route = ROUTES.get(path.slice(EST_PREFIX.length + 1));
  if (!route) throw new EnrollmentError('ENROLL_NOT_FOUND', `no such EST operation ${path}`);
  if (request.method !== route.method) {
    throw new EnrollmentError('ENROLL_METHOD_NOT_ALLOWED', `${path} accepts ${route.method} only`);
  }
  return route;
}
