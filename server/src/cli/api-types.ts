import type { AuditEntry, AuditPage as RegistryAuditPage, AuditVerification, CertificateRecord, DeviceEventRecord, DeviceRecord, PresenceRecord, TrustRecord } from '../registry/types.ts';

/*
 * The shapes of the admin API's answers (server/src/admin/routes/*.ts), with the small checks
 * the CLI makes before it trusts a field. The records themselves are the registry's types.
 */

/** Presence of a device in a listing: connected now, and when last heard from. */
export interface PresenceSummary {
  readonly connected: boolean;
  readonly lastSeen: string;
}

/** GET /v1/devices: one page; `next` is the id to continue after when the page is full. */
export interface DevicePage {
  readonly devices: DeviceRecord[];
  /** Presence by device id (null: never connected); absent from servers before issue 13. */
  readonly presence?: Readonly<Record<string, PresenceSummary | null>>;
  readonly next?: string;
}

/** GET /v1/devices/:id */
export interface DeviceDetail {
  readonly device: DeviceRecord;
  readonly presence: PresenceRecord | null;
  readonly connected: boolean;
  readonly certificates: Omit<CertificateRecord, 'der'>[];
  readonly history: AuditEntry[];
  /** Broker refusals and session drops, newest first (absent from servers before it existed). */
  readonly brokerEvents?: DeviceEventRecord[];
}

/** POST /v1/devices/:id/{revoke,disable,enable,reset}: `changed` false when the device already was in that state. */
export interface DeviceAnswer {
  readonly device: DeviceRecord;
  readonly changed?: boolean;
}

/** One device of a bulk action's answer. */
export type BulkResult =
  | { readonly id: string; readonly status: 'changed' | 'unchanged' | 'skipped'; readonly device: DeviceRecord }
  | { readonly id: string; readonly status: 'refused'; readonly code: string; readonly message: string };

/** How many devices ended in each status. */
export interface BulkSummary {
  readonly changed: number;
  readonly unchanged: number;
  readonly refused: number;
  readonly skipped: number;
}

/** POST /v1/devices/{revoke,disable,enable}: the answer, or the body of its ADMIN_BULK_REFUSED refusal's error. */
export interface BulkAnswer {
  readonly results: BulkResult[];
  readonly summary: BulkSummary;
}

/** A trust as the API lists it: the allow-list is summarised by its size; no namespace is `null`. */
export type TrustSummary = Omit<TrustRecord, 'allowList' | 'namespace'> & { readonly namespace: string | null; readonly allowListSize: number | null };

/** GET /v1/trusts */
export interface TrustList {
  readonly trusts: TrustSummary[];
}

/** PUT /v1/trusts/:name */
export interface TrustAnswer {
  readonly trust: TrustSummary;
  /** false: the registration was identical to the stored trust (nothing written). */
  readonly changed?: boolean;
  readonly replaced?: boolean;
}

/** DELETE /v1/trusts/:name */
export interface TrustRemoved {
  readonly removed: string;
}

/** GET /v1/audit: one page, and where to go on from (see the registry's AuditPage). */
export type AuditPage = RegistryAuditPage;

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

const isDevice = (value: unknown): value is DeviceRecord => isRecord(value) && typeof value.id === 'string' && typeof value.state === 'string';

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

const isTrust = (value: unknown): value is TrustSummary =>
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
export function isAuditPage(value: unknown): value is AuditPage {
  return (
    isRecord(value) &&
    arrayOf(value.entries, (entry) => isRecord(entry) && typeof entry.seq === 'number' && typeof entry.type === 'string') &&
    typeof value.cursor === 'number' &&
    typeof value.more === 'boolean' &&
    typeof value.head === 'number'
  );
}

/** Checks GET /v1/audit/verify. */
export function isAuditVerification(value: unknown): value is AuditVerification {
  return isRecord(value) && typeof value.ok === 'boolean' && typeof value.entries === 'number';
}
