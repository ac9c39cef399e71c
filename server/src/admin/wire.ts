import type { BatchImportReport } from '../factory/batch-files.ts';
import type { AuditEntry, AuditPage, AuditVerification, CertificateRecord, CredentialRecord, DeviceEventRecord, DeviceRecord, PresenceRecord, TrustRecord } from '../registry/types.ts';

/*
 * The admin API's wire types: what its JSON answers hold (docs/admin-api.md), declared here and
 * nowhere else. The routes build them from the registry's records with the mapping functions
 * below, field by field and never by spreading a record, so a field added to a stored record
 * does not reach the API unless someone adds it here; the CLI (cli/api-types.ts checks them)
 * reads the same types. The unions of values (states, statuses, reasons) are spelt out too, so a
 * new stored value fails to compile in a mapping instead of reaching clients unannounced.
 *
 * Optional fields stay absent from the JSON when the record has no value (never `null`), and the
 * fields are written in one fixed order, whatever the storage engine's order was.
 */

/** `state` of a device. */
export type DeviceStateView = 'provisioned' | 'enrolled' | 'disabled' | 'revoked';

/** RFC 5280 §5.3.1 reason names the API takes and reports. */
export type RevocationReasonView = 'unspecified' | 'keyCompromise' | 'superseded' | 'cessationOfOperation' | 'affiliationChanged';

/** Kinds of client certificates other than devices'. */
export type CredentialKindView = 'operator' | 'service';

/** The bootstrap credential a device enrolled with (`key` and `serial` are `''` before its first enrollment). */
interface BootstrapView {
  readonly key: string;
  readonly trust: string;
  readonly serial: string;
}

/** A device (the `device` objects of docs/admin-api.md, "Devices"). */
export interface DeviceView {
  readonly id: string;
  readonly model: string;
  readonly state: DeviceStateView;
  readonly certSerial: string;
  readonly certNotAfter: string;
  readonly bootstrap: BootstrapView;
  readonly enrollments: number;
  readonly renewals: number;
  readonly resetPending: boolean;
  readonly enrolledAt?: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly batch?: string;
  readonly provisionedAt?: string;
  readonly previousSerial?: string;
  readonly stateReason?: string;
}

/** A certificate of a device, without its DER. */
export interface CertificateView {
  readonly serial: string;
  readonly deviceId: string;
  readonly kind: 'operational';
  readonly notBefore: string;
  readonly notAfter: string;
  readonly issuedAt: string;
  readonly status: 'valid' | 'superseded' | 'revoked';
  readonly revokedAt?: string;
  readonly revocationReason?: RevocationReasonView;
}

/**
 * An audit entry with its hash chain. `type` is an open set for clients (docs/admin-api.md lists
 * the types): a newer server may add one.
 */
export interface AuditEntryView {
  readonly type: string;
  readonly deviceId?: string;
  readonly serial?: string;
  readonly code?: string;
  readonly detail?: string;
  readonly actor: string;
  readonly peer?: string;
  readonly seq: number;
  readonly time: string;
  readonly prevHash: string;
  readonly hash: string;
}

/** Connection presence as the broker recorded it. */
export interface PresenceView {
  readonly deviceId: string;
  readonly connected: boolean;
  readonly lastSeen: string;
  readonly connectedAt?: string;
  readonly peer?: string;
  readonly disconnectedAt?: string;
  /** The node of the current or last connection (cluster mode; absent from servers before it). */
  readonly node?: string;
}

/** Presence of a device in a listing: connected now, and when last heard from. */
export interface PresenceSummary {
  readonly connected: boolean;
  readonly lastSeen: string;
}

/** One entry of a device's broker history. */
export interface DeviceEventView {
  readonly deviceId: string;
  readonly kind: 'refused' | 'dropped';
  readonly code: string;
  readonly first: string;
  readonly last: string;
  readonly count: number;
  readonly peer?: string;
  readonly detail?: string;
}

/** A trust as the API lists it: the allow-list is summarised by its size; no namespace is `null`. */
export interface TrustView {
  readonly name: string;
  readonly model: string;
  readonly caPem: string;
  readonly fingerprint: string;
  readonly namespace: string | null;
  readonly createdAt: string;
  readonly actor: string;
  readonly allowListSize: number | null;
}

/** An operator or service certificate on record. */
export interface CredentialView {
  readonly kind: CredentialKindView;
  readonly name: string;
  readonly serial: string;
  readonly issuedAt: string;
  readonly expiresAt: string;
  readonly state: 'valid' | 'revoked';
  readonly recordedVia: 'issue' | 'first-use';
  readonly recordedAt: string;
  readonly revokedAt?: string;
  readonly revokedBy?: string;
}

/** GET /v1/devices: one page; `next` is the id to continue after when the page is full. */
export interface DevicePage {
  readonly devices: DeviceView[];
  /** Presence by device id (null: never connected); absent from servers before issue 13. */
  readonly presence?: Readonly<Record<string, PresenceSummary | null>>;
  readonly next?: string;
}

/** GET /v1/devices/:id */
export interface DeviceDetail {
  readonly device: DeviceView;
  readonly presence: PresenceView | null;
  readonly connected: boolean;
  readonly certificates: CertificateView[];
  readonly history: AuditEntryView[];
  /** Broker refusals and session drops, newest first (absent from servers before it existed). */
  readonly brokerEvents?: DeviceEventView[];
}

/** POST /v1/devices/:id/{revoke,disable,enable,reset}: `changed` false when the device already was in that state. */
export interface DeviceAnswer {
  readonly device: DeviceView;
  readonly changed?: boolean;
}

/** One device of a bulk action's answer. */
export type BulkResult =
  | { readonly id: string; readonly status: 'changed' | 'unchanged' | 'skipped'; readonly device: DeviceView }
  | { readonly id: string; readonly status: 'refused'; readonly code: string; readonly message: string };

/** How many devices ended in each status. */
interface BulkSummary {
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

/** GET /v1/trusts */
export interface TrustList {
  readonly trusts: TrustView[];
}

/** PUT /v1/trusts/:name */
export interface TrustAnswer {
  readonly trust: TrustView;
  /** false: the registration was identical to the stored trust (nothing written). */
  readonly changed?: boolean;
  readonly replaced?: boolean;
}

/** DELETE /v1/trusts/:name */
export interface TrustRemoved {
  readonly removed: string;
}

/**
 * GET /v1/audit: one page, and where to go on from: pass `cursor` back as `before` (newest
 * first) or `after` (oldest first) while `more`; `head` is the newest entry when the read began.
 */
export interface AuditPageView {
  readonly entries: AuditEntryView[];
  readonly cursor: number;
  readonly more: boolean;
  readonly head: number;
}

/** GET /v1/audit/verify */
export type AuditVerificationView =
  | { readonly ok: true; readonly entries: number; readonly head: string }
  | { readonly ok: false; readonly entries: number; readonly brokenAt: number; readonly reason: string };

/** GET /v1/operators, GET /v1/services, and their revocations. */
export interface CredentialList {
  readonly credentials: CredentialView[];
}

/** POST /v1/batches/import */
export interface BatchImportView {
  readonly batches: { readonly batch: string; readonly added: number; readonly existing: number }[];
  readonly credentials: { readonly kind: CredentialKindView; readonly name: string; readonly serial: string; readonly added: boolean }[];
  readonly invalid: { readonly file: string; readonly code: string; readonly message: string }[];
}

/** A device as the API shows it. */
export function deviceView(device: DeviceRecord): DeviceView {
  return {
    id: device.id,
    model: device.model,
    state: device.state,
    certSerial: device.certSerial,
    certNotAfter: device.certNotAfter,
    bootstrap: { key: device.bootstrap.key, trust: device.bootstrap.trust, serial: device.bootstrap.serial },
    enrollments: device.enrollments,
    renewals: device.renewals,
    resetPending: device.resetPending,
    enrolledAt: device.enrolledAt,
    createdAt: device.createdAt,
    updatedAt: device.updatedAt,
    batch: device.batch,
    provisionedAt: device.provisionedAt,
    previousSerial: device.previousSerial,
    stateReason: device.stateReason,
  };
}

/** A certificate as the API shows it: everything but the DER. */
export function certificateView(certificate: CertificateRecord): CertificateView {
  return {
    serial: certificate.serial,
    deviceId: certificate.deviceId,
    kind: certificate.kind,
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
    issuedAt: certificate.issuedAt,
    status: certificate.status,
    revokedAt: certificate.revokedAt,
    revocationReason: certificate.revocationReason,
  };
}

/** An audit entry as the API shows it: every field its hash covers, and the hash. */
export function auditEntryView(entry: AuditEntry): AuditEntryView {
  return {
    type: entry.type,
    deviceId: entry.deviceId,
    serial: entry.serial,
    code: entry.code,
    detail: entry.detail,
    actor: entry.actor,
    peer: entry.peer,
    seq: entry.seq,
    time: entry.time,
    prevHash: entry.prevHash,
    hash: entry.hash,
  };
}

/** A page of the audit log as the API shows it. */
export function auditPageView(page: AuditPage): AuditPageView {
  return { entries: page.entries.map(auditEntryView), cursor: page.cursor, more: page.more, head: page.head };
}

/** The verdict of walking the hash chain. */
export function auditVerificationView(verification: AuditVerification): AuditVerificationView {
  return verification.ok
    ? { ok: true, entries: verification.entries, head: verification.head }
    : { ok: false, entries: verification.entries, brokenAt: verification.brokenAt, reason: verification.reason };
}

/** Presence as `GET /v1/devices/:id` shows it. */
export function presenceView(presence: PresenceRecord): PresenceView {
  return {
    deviceId: presence.deviceId,
    connected: presence.connected,
    lastSeen: presence.lastSeen,
    connectedAt: presence.connectedAt,
    peer: presence.peer,
    disconnectedAt: presence.disconnectedAt,
    node: presence.node,
  };
}

/** Presence as the device list shows it: online now, or when last seen (`null`: never connected). */
export function presenceSummary(presence: PresenceRecord | undefined): PresenceSummary | null {
  return presence ? { connected: presence.connected, lastSeen: presence.lastSeen } : null;
}

/** A broker history entry. */
export function deviceEventView(event: DeviceEventRecord): DeviceEventView {
  return {
    deviceId: event.deviceId,
    kind: event.kind,
    code: event.code,
    first: event.first,
    last: event.last,
    count: event.count,
    peer: event.peer,
    detail: event.detail,
  };
}

/** A trust as the API shows it: the allow-list by its size, the namespace `null` when there is none. */
export function trustView(trust: TrustRecord): TrustView {
  return {
    name: trust.name,
    model: trust.model,
    caPem: trust.caPem,
    fingerprint: trust.fingerprint,
    namespace: trust.namespace ?? null,
    createdAt: trust.createdAt,
    actor: trust.actor,
    allowListSize: trust.allowList?.length ?? null,
  };
}

/** An operator or service certificate as the API shows it. */
export function credentialView(credential: CredentialRecord): CredentialView {
  return {
    kind: credential.kind,
    name: credential.name,
    serial: credential.serial,
    issuedAt: credential.issuedAt,
    expiresAt: credential.expiresAt,
    state: credential.state,
    recordedVia: credential.recordedVia,
    recordedAt: credential.recordedAt,
    revokedAt: credential.revokedAt,
    revokedBy: credential.revokedBy,
  };
}

/** What an import of `<data>/batches/` did. */
export function batchImportView(report: BatchImportReport): BatchImportView {
  return {
    batches: report.batches.map((batch) => ({ batch: batch.batch, added: batch.added, existing: batch.existing })),
    credentials: report.credentials.map((credential) => ({ kind: credential.kind, name: credential.name, serial: credential.serial, added: credential.added })),
    invalid: report.invalid.map((skipped) => ({ file: skipped.file, code: skipped.code, message: skipped.message })),
  };
}

/** Devices of one state and model. */
export interface DeviceCount {
  readonly state: string;
  readonly model: string;
  readonly count: number;
}

/** GET /v1/summary */
export interface FleetSummary {
  readonly devices: readonly DeviceCount[];
  readonly total: number;
  /** Devices connected to this process's broker now (in a cluster, this node's). */
  readonly connected: number;
  readonly time: string;
}
