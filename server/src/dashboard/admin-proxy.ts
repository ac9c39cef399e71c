import type { AdminClient, RawAnswer } from '../cli/admin-client.ts';

/** One admin API operation the page may ask for through the dashboard. */
interface Operation {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** The dashboard path, with one capture per path parameter. */
  readonly pattern: RegExp;
  /** The admin API path for the captures (each percent-encoded). */
  readonly target: (captures: readonly string[]) => string;
  /** Query parameters passed on (the admin API validates their values). */
  readonly query?: readonly string[];
  /** Whether the page's JSON body is passed on. */
  readonly body?: boolean;
}

const segment = (value: string | undefined): string => encodeURIComponent(value ?? '');

/**
 * Exactly the admin API operations the dashboard's pages use, each under `/api/` (the rest of the
 * admin API is not reachable from the browser: operators and services, batches, bulk actions).
 */
const OPERATIONS: readonly Operation[] = [
  { method: 'GET', pattern: /^\/api\/summary$/, target: () => '/v1/summary' },
  { method: 'GET', pattern: /^\/api\/devices$/, target: () => '/v1/devices', query: ['state', 'model', 'prefix', 'sort', 'order', 'after', 'limit', 'expiresBefore'] },
  { method: 'GET', pattern: /^\/api\/devices\/([^/]+)$/, target: ([id]) => `/v1/devices/${segment(id)}` },
  { method: 'POST', pattern: /^\/api\/devices\/([^/]+)\/(revoke|disable|enable|reset)$/, target: ([id, action]) => `/v1/devices/${segment(id)}/${action ?? ''}`, body: true },
  { method: 'GET', pattern: /^\/api\/trusts$/, target: () => '/v1/trusts' },
  { method: 'PUT', pattern: /^\/api\/trusts\/([^/]+)$/, target: ([name]) => `/v1/trusts/${segment(name)}`, query: ['replace'], body: true },
  { method: 'DELETE', pattern: /^\/api\/trusts\/([^/]+)$/, target: ([name]) => `/v1/trusts/${segment(name)}` },
  { method: 'GET', pattern: /^\/api\/audit$/, target: () => '/v1/audit', query: ['device', 'since', 'until', 'type', 'actor', 'order', 'after', 'before', 'limit'] },
  { method: 'GET', pattern: /^\/api\/audit\/verify$/, target: () => '/v1/audit/verify' },
];

/** A request the page made, matched to an operation. */
export interface ProxyRequest {
  readonly method: Operation['method'];
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly body?: unknown;
}

/** How a dashboard path matches the operations: an operation, a known path with another method, or nothing. */
export function matchOperation(method: string, pathname: string): { operation: Operation; captures: string[] } | 'method-not-allowed' | undefined {
  let pathKnown = false;
  for (const operation of OPERATIONS) {
    const match = operation.pattern.exec(pathname);
    if (!match) continue;
    pathKnown = true;
    if (operation.method === method) return { operation, captures: match.slice(1).map((capture) => decodeURIComponentSafe(capture)) };
  }
  return pathKnown ? 'method-not-allowed' : undefined;
}

function decodeURIComponentSafe(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    // Passed on as it is: the admin API refuses it as ADMIN_BAD_REQUEST.
    return value;
  }
}

/**
 * Sends the page's request to the admin API with the operator certificate and returns the API's
 * answer as it is (status, JSON): the page shows the API's own refusal codes.
 */
export async function forward(client: AdminClient, match: { operation: Operation; captures: string[] }, search: URLSearchParams, body: unknown): Promise<RawAnswer> {
  const query: Record<string, string> = {};
  for (const name of match.operation.query ?? []) {
    const value = search.get(name);
    if (value !== null) query[name] = value;
  }
  return client.send(match.operation.method, match.operation.target(match.captures), { query, ...(match.operation.body && body !== undefined ? { body } : {}) });
}
