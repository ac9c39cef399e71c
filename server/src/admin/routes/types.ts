import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { OperatorAuthority } from '../../authority/operator-authority.ts';
import type { LiveEvents } from '../../live-events.ts';
import type { DeviceOrder } from '../device-order.ts';
import type { Registry } from '../../registry/types.ts';
import type { DeviceCount } from '../wire.ts';

/**
 * What the admin routes read to answer: listings, a device in full (presence, certificates,
 * history, broker events), the audit log, trusts and credentials. Every change goes through the
 * {@link OperatorAuthority} instead.
 */
type AdminReadStore = Pick<
  Registry,
  'getDevice' | 'listDevices' | 'getPresence' | 'listCertificates' | 'readAudit' | 'readAuditPage' | 'verifyAudit' | 'listDeviceEvents' | 'listTrusts' | 'listCredentials'
>;

/** What every admin route gets. */
export interface AdminContext {
  /** Every change an operator makes, with its rules (authority/operator-authority.ts). */
  readonly authority: OperatorAuthority;
  readonly store: AdminReadStore;
  /** The current CRL (DER) of the device-issuing CA (crl/crl-publisher.ts). */
  readonly crl: { crl(): Promise<Buffer> };
  readonly logger: Logger;
  /** The device list in state, model or expiry order (admin/device-order.ts), made on first use; absent: id order only. */
  readonly deviceOrder?: () => Promise<DeviceOrder>;
  /** Cluster mode: whether the node a presence record names still runs (cluster/redis-backends.ts). */
  readonly nodeAlive?: (nodeId: string) => Promise<boolean>;
  /**
   * Counts kept current by the server and its broker's live events (`GET /v1/summary`,
   * `GET /v1/events`); absent from an admin server built without a broker.
   */
  readonly fleet?: {
    /** Devices by state and model (metrics/device-census.ts). */
    census(): readonly DeviceCount[];
    /** Devices with a session on this process's broker now. */
    connectedDevices(): number;
    readonly live: LiveEvents;
  };
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
