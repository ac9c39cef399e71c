import type { KeyedLimiter } from '../../cluster/shared-rate-limiter.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { EnrollmentAuthority } from '../../authority/enrollment-authority.ts';
import type { EstLimits } from '../../config/config.ts';
import type { Metrics } from '../../metrics/metrics.ts';
import type { CrlPublisher } from '../../crl/crl-publisher.ts';
import type { KeyedRateLimiter, TokenBucket } from '../../rate-limiter.ts';
import type { ConcurrencyGate } from '../admission.ts';
import type { RefusalLog } from '../refusal-log.ts';

/** What every EST route handler gets. */
export interface RouteContext {
  readonly authority: EnrollmentAuthority;
  readonly limits: EstLimits;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly crl: CrlPublisher;
  /** CA certificates served by cacerts (issuing CA, root). */
  readonly caCertificates: readonly Buffer[];
  /** Enrollments overall; charged only for requests the per-identity limit admitted. */
  readonly globalLimiter: TokenBucket;
  /** Enrollment attempts per verified identity (cluster mode: across every node, in Redis). */
  readonly identityLimiter: KeyedLimiter;
  /** Audited refusals per remote address (the rest go to the logs only). */
  readonly auditLimiter: KeyedRateLimiter;
  /** Requests being processed; the issuance routes acquire a slot once the body has arrived. */
  readonly concurrency: ConcurrencyGate;
  readonly refusalLog: RefusalLog;
}

/** One EST operation. */
export interface Route {
  readonly method: 'GET' | 'POST';
  /**
   * Whether the route takes its concurrency slot itself (after reading the request body);
   * otherwise the dispatcher takes one before calling it.
   */
  readonly acquiresSlot?: boolean;
  handle(request: IncomingMessage, response: ServerResponse, context: RouteContext): Promise<void>;
}
