import { isDeviceId } from '@fleetgate/device-sdk/protocol';
import { AdminError } from '../errors.ts';
import { sendJson } from '../http.ts';
import type { AdminRoute } from './types.ts';

/** GET /v1/audit?device=&since=&limit= */
export const readAudit: AdminRoute = {
  method: 'GET',
  path: '/v1/audit',
  async handle({ query, response }, context) {
    const deviceId = query.get('device') ?? undefined;
    const since = query.get('since') ?? undefined;
    const limit = Number(query.get('limit') ?? 10_000);
    if (deviceId !== undefined && !isDeviceId(deviceId)) throw new AdminError('ADMIN_BAD_REQUEST', `"${deviceId}" is not a device id`);
    if (since !== undefined && Number.isNaN(Date.parse(since))) throw new AdminError('ADMIN_BAD_REQUEST', 'since must be an ISO 8601 time');
    if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new AdminError('ADMIN_BAD_REQUEST', 'limit must be 1 to 100000');
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
