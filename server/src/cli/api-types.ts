import type { AuditPageView, AuditVerificationView, BulkAnswer, DeviceAnswer, DeviceDetail, DevicePage, DeviceView, TrustAnswer, TrustList, TrustRemoved, TrustView } from '../admin/wire.ts';

/*
 * The small checks the CLI makes on the admin API's answers before it trusts a field. The
 * shapes are the API's own wire types (admin/wire.ts), never the registry's records.
 */

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

const isDevice = (value: unknown): value is DeviceView => isRecord(value) && typeof value.id === 'string' && typeof value.state === 'string';

const arrayOf = (value: unknown, item: (entry: unknown) => boolean): boolean => Array.isArray(value) && value.every(item);

/** Checks GET /v1/devices. */
export function isDevicePage(value: unknown): value is DevicePage {
  return isRecord(value) && arrayOf(value.devices, isDevice) && (value.next === undefined || typeof value.next === 'string');
}

/** Checks GET /v1/devices/:id. */
export function isDeviceDetail(value: unknown): value is DeviceDetail {
  return isRecord(value) && isDevice(value.device) && typeof value.connected === 'boolean' && arrayOf(value.certificates, isRecord) && arrayOf(value.history, isRecord) && (value.brokerEvents === undefined || arrayOf(value.brokerEvents, isDeviceEvent));
}

const isDeviceEvent = (value: unknown): boolean =>
  isRecord(value) && typeof value.kind === 'string' && typeof value.code === 'string' && typeof value.first === 'string' && typeof value.last === 'string' && typeof value.count === 'number';

/** Checks a bulk answer (or the error object of a bulk refusal). */
export function isBulkAnswer(value: unknown): value is BulkAnswer {
  return (
    isRecord(value) &&
    isRecord(value.summary) &&
    arrayOf(value.results, (entry) => isRecord(entry) && typeof entry.id === 'string' && (entry.status === 'refused' ? typeof entry.code === 'string' : isDevice(entry.device)))
  );
}

/** Checks the answer of a device state change. */
export function isDeviceAnswer(value: unknown): value is DeviceAnswer {
  return isRecord(value) && isDevice(value.device);
}

const isTrust = (value: unknown): value is TrustView =>
  isRecord(value) && typeof value.name === 'string' && typeof value.model === 'string' && (value.namespace === null || typeof value.namespace === 'string');

/** Checks GET /v1/trusts. */
export function isTrustList(value: unknown): value is TrustList {
  return isRecord(value) && arrayOf(value.trusts, isTrust);
}

/** Checks PUT /v1/trusts/:name. */
export function isTrustAnswer(value: unknown): value is TrustAnswer {
  return isRecord(value) && isTrust(value.trust);
}

/** Checks DELETE /v1/trusts/:name. */
export function isTrustRemoved(value: unknown): value is TrustRemoved {
  return isRecord(value) && typeof value.removed === 'string';
}

/** Checks GET /v1/audit. */
export function isAuditPage(value: unknown): value is AuditPageView {
  return (
    isRecord(value) &&
    arrayOf(value.entries, (entry) => isRecord(entry) && typeof entry.seq === 'number' && typeof entry.type === 'string') &&
    typeof value.cursor === 'number' &&
    typeof value.more === 'boolean' &&
    typeof value.head === 'number'
  );
}

/** Checks GET /v1/audit/verify. */
export function isAuditVerification(value: unknown): value is AuditVerificationView {
  return isRecord(value) && typeof value.ok === 'boolean' && typeof value.entries === 'number';
}
