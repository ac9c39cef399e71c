import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { EnrollmentAuthority } from '../../authority/enrollment-authority.ts';
import type { EstLimits } from '../../config/config.ts';
import type { Metrics } from '../../metrics/metrics.ts';
import type { CrlPublisher } from '../../crl/crl-publisher.ts';
import type { KeyedRateLimiter, TokenBucket } from '../../rate-limiter.ts';

/** What every EST route handler gets. */
export interface RouteContext {
  readonly authority: EnrollmentAuthority;
  readonly limits: EstLimits;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly crl: CrlPublisher;
  /** CA certificates served by cacerts (issuing CA, root). */
  readonly caCertificates: readonly Buffer[];
  readonly globalLimiter: TokenBucket;
  readonly identityLimiter: KeyedRateLimiter;
}

/** One EST operation. */
export interface Route {
  readonly method: 'GET' | 'POST';
  handle(request: IncomingMessage, response: ServerResponse, context: RouteContext): Promise<void>;
}
