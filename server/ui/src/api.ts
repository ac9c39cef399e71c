import type { RateSeries } from '../../src/dashboard/minute-counts.ts';
import type { AuditPageView, AuditVerificationView, DeviceAnswer, DeviceDetail, DevicePage, FleetSummary, TrustAnswer, TrustList } from '../../src/admin/wire.ts';

/*
 * The page's only way out: same-origin requests to the dashboard process, which holds the
 * operator certificate and talks to the admin API. The session cookie goes with each request;
 * a state change carries the header the dashboard requires of it (access.ts, ACTION_HEADER).
 */

/** A refusal, with the code of the dashboard or of the admin API behind it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** GET /api/overview */
export interface Overview {
  readonly summary: FleetSummary;
  readonly expiring: { readonly devices: readonly { id: string; model: string; certNotAfter: string }[]; readonly more: boolean; readonly before: string };
  readonly rates: RateSeries;
}

async function call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET') headers['x-fleetgate-dashboard'] = '1';
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const error = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiError(response.status, error?.code ?? `HTTP_${response.status}`, error?.message ?? (text.slice(0, 200) || response.statusText));
  }
  return parsed as T;
}

/** A query string of the defined, non-empty values. */
export function queryString(values: Readonly<Record<string, string | number | undefined>>): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(values)) if (value !== undefined && value !== '') query.set(name, String(value));
  const text = query.toString();
  return text ? `?${text}` : '';
}

export const api = {
  overview: () => call<Overview>('GET', '/api/overview'),
  summary: () => call<FleetSummary>('GET', '/api/summary'),
  devices: (filter: { prefix?: string; state?: string; model?: string; sort?: string; order?: string; after?: string; limit?: number }) => call<DevicePage>('GET', `/api/devices${queryString(filter)}`),
  device: (id: string) => call<DeviceDetail>('GET', `/api/devices/${encodeURIComponent(id)}`),
  deviceAction: (id: string, action: 'revoke' | 'disable' | 'enable' | 'reset', body: Record<string, string> = {}) => call<DeviceAnswer>('POST', `/api/devices/${encodeURIComponent(id)}/${action}`, body),
  trusts: () => call<TrustList>('GET', '/api/trusts'),
  addTrust: (name: string, body: { model: string; caPem: string; namespace?: string; allowList?: string[] }) => call<TrustAnswer>('PUT', `/api/trusts/${encodeURIComponent(name)}`, body),
  untrust: (name: string) => call<{ removed: string }>('DELETE', `/api/trusts/${encodeURIComponent(name)}`),
  audit: (filter: Readonly<Record<string, string | number | undefined>>) => call<AuditPageView>('GET', `/api/audit${queryString(filter)}`),
  verifyAudit: () => call<AuditVerificationView>('GET', '/api/audit/verify'),
};
