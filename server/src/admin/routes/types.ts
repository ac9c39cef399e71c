import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { CrlPublisher } from '../../crl/crl-publisher.ts';
import type { BatchImportReport } from '../../factory/batch-files.ts';
import type { Registry } from '../../registry/types.ts';

/** What every admin route gets. */
export interface AdminContext {
  readonly registry: Registry;
  readonly crl: CrlPublisher;
  readonly logger: Logger;
  /** Imports `<data>/batches/` (POST /v1/batches/import), `actor` being who asked. */
  importBatches(actor: string): Promise<BatchImportReport>;
}

/** One admin request, after authentication. */
export interface AdminRequest {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  /** Operator name from the client certificate. */
  readonly operator: string;
  /** Path parameters (`:id`). */
  readonly params: Readonly<Record<string, string>>;
  /** The query, already checked against the route's `query` names (each at most once). */
  readonly query: URLSearchParams;
}

/** One admin API operation. */
export interface AdminRoute {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path with `:name` parameters, e.g. `/v1/devices/:id/revoke`. */
  readonly path: string;
  /** Query parameters the route takes; any other is refused with 400 (none when absent). */
  readonly query?: readonly string[];
  handle(request: AdminRequest, context: AdminContext): Promise<void>;
}
