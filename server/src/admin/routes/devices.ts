import { isDeviceId, MODEL_PATTERN } from '@fleetgate/device-sdk/protocol';
import type { DeviceCommand, DeviceOutcome } from '../../authority/operator-authority.ts';
import { REVOCATION_REASONS, type DeviceAction, type DeviceRecord, type DeviceState, type PresenceRecord, type RevocationReason } from '../../registry/types.ts';
import { DEVICE_SORT_KEYS, UnknownCursorError, type DeviceSortKey, type SortedDeviceQuery } from '../device-order.ts';
import { ADMIN_CODE_OF_OPERATOR_REFUSAL, AdminError } from '../errors.ts';
import { limitParameter, onlyFields, optionalString, readJson, sendJson } from '../http.ts';
import {
  auditEntryView,
  certificateView,
  deviceEventView,
  deviceView,
  presenceSummary,
  presenceView,
  type BulkAnswer,
  type BulkResult,
  type DeviceAnswer,
  type DeviceDetail,
  type DevicePage,
} from '../wire.ts';
import type { AdminContext, AdminRequest, AdminRoute } from './types.ts';

const STATES: readonly DeviceState[] = ['provisioned', 'enrolled', 'disabled', 'revoked'];
const MAX_LIST = 10_000;
/** Most devices one bulk action names: all of them are checked, then written in one registry batch. */
const MAX_BULK = 10_000;

function deviceId(request: AdminRequest): string {
  const id = request.params.id ?? '';
  if (!isDeviceId(id)) throw new AdminError('ADMIN_BAD_REQUEST', `"${id.slice(0, 80)}" is not a device id`);
  return id;
}

async function existingDevice(context: AdminContext, id: string): Promise<DeviceRecord> {
  const device = await context.store.getDevice(id);
  if (!device) throw new AdminError('ADMIN_DEVICE_NOT_FOUND', `no device ${id}`);
  return device;
}

/** An ISO 8601 time with a zone (`2026-12-01T00:00:00Z`), as a query parameter. */
function isoParameter(query: URLSearchParams, name: string): string | undefined {
  const raw = query.get(name) ?? undefined;
  if (raw === undefined) return undefined;
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/.test(raw) || Number.isNaN(Date.parse(raw))) {
    throw new AdminError('ADMIN_BAD_REQUEST', `${name} must be an ISO 8601 time with a zone, e.g. 2026-12-01T00:00:00Z`);
  }
  return new Date(raw).toISOString();
}

/** GET /v1/devices?state=&model=&expiresBefore=&prefix=&sort=&order=&after=&limit= */
export const listDevices: AdminRoute = {
  method: 'GET',
  path: '/v1/devices',
  query: ['state', 'model', 'expiresBefore', 'prefix', 'sort', 'order', 'after', 'limit'],
  async handle({ query, response }, context) {
    const state = query.get('state') ?? undefined;
    const model = query.get('model') ?? undefined;
    const after = query.get('after') ?? undefined;
    const prefix = query.get('prefix') ?? undefined;
    const order = query.get('order') ?? 'asc';
    const sort = query.get('sort') ?? 'id';
    if (sort !== 'id' && !(DEVICE_SORT_KEYS as readonly string[]).includes(sort)) throw new AdminError('ADMIN_BAD_REQUEST', `sort must be one of id, ${DEVICE_SORT_KEYS.join(', ')}`);
    // A prefix of a device id is itself a valid id (the pattern constrains each character, and the first).
    if (prefix !== undefined && !isDeviceId(prefix)) throw new AdminError('ADMIN_BAD_REQUEST', `prefix must be the start of a device id (lower-case letters, digits, ".", "_", "-"), got "${prefix.slice(0, 80)}"`);
    if (order !== 'asc' && order !== 'desc') throw new AdminError('ADMIN_BAD_REQUEST', 'order must be asc or desc');
    const limit = limitParameter(query, MAX_LIST);
    if (state !== undefined && !STATES.includes(state as DeviceState)) throw new AdminError('ADMIN_BAD_REQUEST', `state must be one of ${STATES.join(', ')}`);
    if (model !== undefined && !MODEL_PATTERN.test(model)) throw new AdminError('ADMIN_BAD_REQUEST', `"${model.slice(0, 64)}" is not a model name`);
    if (after !== undefined && !isDeviceId(after)) throw new AdminError('ADMIN_BAD_REQUEST', `after must be a device id (the "next" of the previous page)`);
    const expiresBefore = isoParameter(query, 'expiresBefore');
    const filters = { state: state as DeviceState | undefined, model, expiresBefore, prefix, order, after } as const;
    const devices = sort === 'id' ? await context.store.listDevices({ ...filters, limit }) : await sortedPage(context, { ...filters, sort: sort as DeviceSortKey, limit });
    // Presence is advisory (the broker writes it in batches): one point read per device of the page.
    const presence = await livePresence(context, await Promise.all(devices.map((device) => context.store.getPresence(device.id))));
    sendJson(response, 200, {
      devices: devices.map(deviceView),
      presence: Object.fromEntries(devices.map((device, index) => [device.id, presenceSummary(presence[index])])),
      next: devices.length === limit ? devices.at(-1)?.id : undefined,
    } satisfies DevicePage);
  },
};

/** A page in state, model or expiry order (admin/device-order.ts), read from the registry device by device. */
async function sortedPage(context: AdminContext, query: SortedDeviceQuery): Promise<DeviceRecord[]> {
  if (!context.deviceOrder) throw new AdminError('ADMIN_BAD_REQUEST', `sort=${query.sort} is not offered by this server (id order only)`);
  let ids: string[];
  try {
    ids = (await context.deviceOrder()).page(query);
  } catch (error) {
    if (error instanceof UnknownCursorError) throw new AdminError('ADMIN_BAD_REQUEST', `after names no device ("${query.after ?? ''}"): start again without it`);
    throw error;
  }
  // A device removed between the order and the read is left out (the page is one shorter).
  const records = await Promise.all(ids.map((id) => context.store.getDevice(id)));
  return records.filter((record): record is DeviceRecord => record !== undefined);
}

/**
 * Presence as it stands: a node that was killed (or whose machine was lost) never wrote its
 * devices' disconnections, so a "connected" it recorded is void once the node is gone (cluster
 * mode; each node asked once per request).
 */
async function livePresence(context: AdminContext, records: readonly (PresenceRecord | undefined)[]): Promise<(PresenceRecord | undefined)[]> {
  const { nodeAlive } = context;
  if (!nodeAlive) return [...records];
  const nodes = [...new Set(records.flatMap((record) => (record?.connected && record.node !== undefined ? [record.node] : [])))];
  const gone = new Set((await Promise.all(nodes.map(async (node) => ((await nodeAlive(node)) ? [] : [node])))).flat());
  return records.map((record) => (record?.connected && record.node !== undefined && gone.has(record.node) ? { ...record, connected: false } : record));
}

/** GET /v1/devices/:id — state, certificate, presence, certificates, history and broker events. */
export const showDevice: AdminRoute = {
  method: 'GET',
  path: '/v1/devices/:id',
  async handle(request, context) {
    const device = await existingDevice(context, deviceId(request));
    const [presence, certificates, history, brokerEvents] = await Promise.all([
      context.store.getPresence(device.id),
      context.store.listCertificates(device.id),
      context.store.readAudit({ deviceId: device.id }),
      context.store.listDeviceEvents(device.id),
    ]);
    const [live] = await livePresence(context, [presence]);
    sendJson(request.response, 200, {
      device: deviceView(device),
      presence: live ? presenceView(live) : null,
      connected: live?.connected ?? false,
      certificates: certificates.map(certificateView),
      history: history.map(auditEntryView),
      brokerEvents: brokerEvents.map(deviceEventView),
    } satisfies DeviceDetail);
  },
};

/** A state action's body as the authority's command: revocation reasons are RFC 5280 names only. */
function deviceCommand(body: Record<string, unknown>, action: DeviceAction): DeviceCommand {
  if (action === 'revoke') {
    const reason = optionalString(body, 'reason', 64);
    const note = optionalString(body, 'note');
    // RFC 5280 §5.3.1: the CRL carries a reason code, so the reason is one of the names, never
    // free text (a typo would otherwise reach the CRL as "unspecified"). Free text goes in note.
    if (reason !== undefined && !REVOCATION_REASONS.includes(reason as RevocationReason)) {
      throw new AdminError('ADMIN_BAD_REQUEST', `reason must be an RFC 5280 reason: ${REVOCATION_REASONS.join(', ')} (free text goes in "note")`);
    }
    return { action, revocationReason: reason as RevocationReason | undefined, note };
  }
  if (action === 'disable') return { action, reason: optionalString(body, 'reason') };
  return { action };
}

const BODY_FIELDS: Record<DeviceAction, readonly string[]> = { revoke: ['reason', 'note'], disable: ['reason'], enable: [], reset: [] };

function singleAction(action: DeviceAction): AdminRoute {
  return {
    method: 'POST',
    path: `/v1/devices/:id/${action}`,
    async handle(request, context) {
      const id = deviceId(request);
      const body = await readJson(request.request, request.response);
      onlyFields(body, BODY_FIELDS[action]);
      // A revocation answers once the published CRL lists the device's certificates.
      const { device, changed } = await context.authority.changeDevice(id, deviceCommand(body, action), request.operator);
      sendJson(request.response, 200, { device: deviceView(device), changed } satisfies DeviceAnswer);
    },
  };
}

/** POST /v1/devices/:id/revoke { reason?, note? } — final; every certificate of the device is revoked. */
export const revokeDevice = singleAction('revoke');
/** POST /v1/devices/:id/disable { reason? } */
export const disableDevice = singleAction('disable');
/** POST /v1/devices/:id/enable */
export const enableDevice = singleAction('enable');
/** POST /v1/devices/:id/reset — allows one more bootstrap enrollment (and lifts a revocation). */
export const resetDevice = singleAction('reset');

/** One device of a bulk answer, a refusal under its admin code. */
function bulkResult(result: DeviceOutcome): BulkResult {
  return result.status === 'refused'
    ? { id: result.deviceId, status: 'refused', code: ADMIN_CODE_OF_OPERATOR_REFUSAL[result.code], message: result.message }
    : { id: result.deviceId, status: result.status, device: deviceView(result.device) };
}

function bulkAction(action: 'revoke' | 'disable' | 'enable'): AdminRoute {
  return {
    method: 'POST',
    path: `/v1/devices/${action}`,
    async handle(request, context) {
      const body = await readJson(request.request, request.response);
      onlyFields(body, ['ids', 'continueOnError', ...BODY_FIELDS[action]]);
      const { ids, continueOnError = false } = body;
      if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_BULK) throw new AdminError('ADMIN_BAD_REQUEST', `ids must be a list of 1 to ${MAX_BULK} device ids`);
      const bad = ids.findIndex((id) => typeof id !== 'string' || !isDeviceId(id));
      if (bad >= 0) throw new AdminError('ADMIN_BAD_REQUEST', `ids[${bad}] ${JSON.stringify(String(ids[bad]).slice(0, 80))} is not a device id`);
      const seen = new Set<string>();
      const duplicate = (ids as string[]).find((id) => seen.size === seen.add(id).size);
      if (duplicate !== undefined) throw new AdminError('ADMIN_BAD_REQUEST', `ids names ${duplicate} more than once`);
      if (typeof continueOnError !== 'boolean') throw new AdminError('ADMIN_BAD_REQUEST', 'continueOnError must be true or false');
      const command = deviceCommand(body, action);
      // All or nothing unless continueOnError; a bulk revocation answers once the CRL lists every certificate it revoked.
      const outcome = await context.authority.changeDevices(ids as string[], command, { operator: request.operator, continueOnError });
      const answer: BulkAnswer = { results: outcome.results.map(bulkResult), summary: outcome.summary };
      if (answer.summary.refused > 0 && !continueOnError) {
        const refused = answer.results.filter((result) => result.status === 'refused');
        const listed = refused.slice(0, 5).map((result) => `${result.id} (${result.status === 'refused' ? result.code : ''})`);
        const message = `${refused.length} of ${answer.results.length} devices refused, nothing changed: ${listed.join(', ')}${refused.length > listed.length ? ', ...' : ''}`;
        sendJson(request.response, 409, { error: { code: 'ADMIN_BULK_REFUSED', message, results: answer.results, summary: answer.summary } });
        return;
      }
      sendJson(request.response, 200, answer);
    },
  };
}

/** POST /v1/devices/revoke { ids, reason?, note?, continueOnError? } */
export const revokeDevices = bulkAction('revoke');
/** POST /v1/devices/disable { ids, reason?, continueOnError? } */
export const disableDevices = bulkAction('disable');
/** POST /v1/devices/enable { ids, continueOnError? } */
export const enableDevices = bulkAction('enable');
