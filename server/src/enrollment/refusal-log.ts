import type { Logger } from 'pino';
import { TokenBucket } from '../rate-limiter.ts';

/** What is logged about one refusal. */
export interface RefusalLogEntry {
  readonly operation: string;
  readonly code: string;
  readonly reason: string;
  readonly peer: string | undefined;
  /** The verified identity (device id, or certificate fingerprint), when there is one; never a name the client merely claimed. */
  readonly identity?: string;
}

/**
 * Refusal log lines at a bounded rate. Refusals of anonymous or unverified clients are not
 * audited (anyone could fill the hash-chained audit log with them), so they are logged here; a
 * flood of them must not flood the log either. Lines beyond `perSecond` are counted, and the next
 * line that goes out says how many were left out.
 */
export class RefusalLog {
  private readonly bucket: TokenBucket;
  private suppressed = 0;

  constructor(
    private readonly logger: Logger,
    perSecond: number,
    now?: () => number,
  ) {
    this.bucket = new TokenBucket(perSecond, Math.max(1, perSecond), now);
  }

  /** Logs one refusal at info level, unless over the rate. */
  refused(entry: RefusalLogEntry): void {
    if (this.bucket.take() > 0) {
      this.suppressed++;
      return;
    }
    const suppressed = this.suppressed;
    this.suppressed = 0;
    this.logger.info({ ...entry, ...(suppressed > 0 ? { suppressed } : {}) }, 'enrollment refused');
  }
}
