import { isDeviceId } from '@fleetgate/device-sdk/protocol';
import { AdminError } from '../errors.ts';
import { limitParameter, sendJson } from '../http.ts';
import type { AdminRoute } from './types.ts';

/** An ISO 8601 date or date-time (RFC 3339 §5.6, seconds and zone optional). */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})?)?$/;

/** GET /v1/audit?device=&since=&limit= */
export const readAudit: AdminRoute = {
  method: 'GET',
  path: '/v1/audit',
  query: ['device', 'since', 'limit'],
  async handle({ query, response }, context) {
    const deviceId = query.get('device') ?? undefined;
    const since = query.get('since') ?? undefined;
    const limit = limitParameter(query, 100_000, 10_000);
    if (deviceId !== undefined && !isDeviceId(deviceId)) throw new AdminError('ADMIN_BAD_REQUEST', `"${deviceId.slice(0, 80)}" is not a device id`);
    // Date.parse takes many forms ("1" is the year 2001); the API takes ISO 8601 only.
    if (since !== undefined && (!ISO_TIME.test(since) || Number.isNaN(Date.parse(since)))) throw new AdminError('ADMIN_BAD_REQUEST', 'since must be an ISO 8601 time (2026-11-23T10:00:00Z)');
    const entries = await context.registry.readAudit({ deviceId, since: since ? new Date(since).toISOString() : undefined, limit });
    sendJson(response, 200, { entries });
  },
};

/** GET /v1/audit/verify — walks the hash chain. */
export const verifyAudit: AdminRoute = {
  method: 'GET',
  path: '/v1/audit/verify',
  async handle({ response }, context) {
    sendJson(response, 200, await context.registry.verifyAudit());
  },
};
