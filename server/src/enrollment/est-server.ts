import type { KeyedLimiter } from '../cluster/shared-rate-limiter.ts';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { EnrollmentAuthority } from '../authority/enrollment-authority.ts';
import { EnrollmentError } from '../authority/errors.ts';
import type { EstLimits } from '../config/config.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { CrlPublisher } from '../crl/crl-publisher.ts';
import { KeyedRateLimiter, TokenBucket } from '../rate-limiter.ts';
import { mutualTlsServerOptions, type MutualTlsMaterial } from '../tls/defaults.ts';
import type { ResumptionOptions } from '../tls/ticket-keys.ts';
import { ConcurrencyGate, SourceGate } from './admission.ts';
import { RequestAborted, sendError } from './http-io.ts';
import { RefusalLog } from './refusal-log.ts';
import { resolveRoute } from './resolve-route.ts';
import type { RouteContext } from './routes/types.ts';

export interface EstServerOptions {
  readonly authority: EnrollmentAuthority;
  readonly tls: MutualTlsMaterial;
  /** Shared TLS session ticket keys (tls/ticket-keys.ts); absent: Node's random per-process keys. */
  readonly resumption?: ResumptionOptions;
  readonly limits: EstLimits;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly crl: CrlPublisher;
  readonly caCertificates: readonly Buffer[];
  /** The per-identity limit (cluster mode: shared through Redis); absent: this process's own. */
  readonly identityLimiter?: KeyedLimiter;
}

/** Creates the EST HTTPS server (not yet listening). */
export function createEstServer(options: EstServerOptions): Server {
  const { limits, logger } = options;
  const context: RouteContext = {
    authority: options.authority,
    limits,
    logger,
    metrics: options.metrics,
    crl: options.crl,
    caCertificates: options.caCertificates,
    globalLimiter: new TokenBucket(limits.ratePerSecond, limits.rateBurst),
    identityLimiter: options.identityLimiter ?? new KeyedRateLimiter(limits.perIdentityPerMinute),
    auditLimiter: new KeyedRateLimiter(limits.auditRefusalsPerSourcePerMinute),
    concurrency: new ConcurrencyGate(limits.maxConcurrent),
    refusalLog: new RefusalLog(logger, limits.refusalLogsPerSecond),
  };
  const sources = new SourceGate(limits.maxInProgressPerSource);

  const server = createServer(
    {
      // A missing or bad client certificate gets a 401 with a reason, not a handshake failure.
      ...mutualTlsServerOptions(options.tls, options.resumption),
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: Math.min(limits.requestTimeoutMs, 10_000),
    },
    (request, response) => {
      void dispatch(request, response);
    },
  );

  async function dispatch(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const peer = request.socket.remoteAddress ?? 'unknown';
    let releaseSlot: (() => void) | undefined;
    try {
      const route = resolveRoute(request.method, request.url);
      const releaseSource = sources.tryAcquire(peer);
      if (!releaseSource) {
        const refusal = new EnrollmentError('ENROLL_RATE_LIMITED', `too many requests in progress from ${peer}; retry later`, { retryAfterSeconds: 1 });
        context.refusalLog.refused({ operation: (request.url ?? '').slice(0, 200), code: refusal.code, reason: refusal.message, peer });
        throw refusal;
      }
      response.once('close', releaseSource);
      if (!route.acquiresSlot) {
        releaseSlot = context.concurrency.tryAcquire();
        if (!releaseSlot) throw new EnrollmentError('ENROLL_UNAVAILABLE', 'the enrollment service is at capacity; retry later', { retryAfterSeconds: 1 });
      }
      await route.handle(request, response, context);
    } catch (error) {
      if (error instanceof RequestAborted) {
        logger.debug({ peer, url: request.url }, error.message);
        response.destroy();
        return;
      }
      if (error instanceof EnrollmentError) {
        // A request whose body was not read to its end cannot be followed by another on this
        // connection: answer, close, and drop what is still arriving meanwhile.
        const unread = !request.complete;
        if (unread) request.resume();
        sendError(response, error, unread);
        return;
      }
      logger.error({ err: error, url: request.url }, 'enrollment failed');
      sendError(response, new EnrollmentError('ENROLL_INTERNAL', 'internal error; the request was not processed'), !request.complete);
    } finally {
      releaseSlot?.();
    }
  }

  server.on('clientError', (error, socket) => {
    logger.debug({ err: error }, 'EST client error');
    socket.destroy();
  });
  server.on('tlsClientError', (error) => {
    logger.debug({ err: error }, 'EST TLS handshake failed');
  });
  return server;
}
