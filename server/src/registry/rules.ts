import { serialKey } from '../pki/serial.ts';
import { RegistryError } from './errors.ts';
import type {
  AuditEvent,
  BatchRecord,
  CertificateRecord,
  RevocationReason,
  StateChange,
  CredentialRecord,
  CredentialRevocation,
  DeviceActionRequest,
  DeviceActionResult,
  DeviceRecord,
  IssuanceCommit,
  ProvisionBatch,
  ProvisionedId,
  TrustRecord,
} from './types.ts';

/*
 * The registry's own rules, shared by every engine (LevelDB, PostgreSQL): what a device action
 * does to a device, when an issuance may be committed, what a provisioned id looks like, which
 * credentials a revocation takes. Engines decide how to read and write atomically; the outcome
 * must not depend on the engine.
 */

/** The audit entry type of each state action (a reset is audited as `reset`). */
const ACTION_AUDIT_TYPE = { revoke: 'revoked', disable: 'disabled', enable: 'enabled', reset: 'reset' } as const;

/** What one action does to a device, without writing anything. */
export function decideDeviceAction(request: DeviceActionRequest, device: DeviceRecord | undefined, now: Date): DeviceActionResult {
  const { deviceId, action } = request;
  if (!device) return { deviceId, status: 'refused', code: 'REGISTRY_NOT_FOUND', message: `no device ${deviceId}` };
  const unchanged: DeviceActionResult = { deviceId, status: 'unchanged', device };
  const changed = (fields: Partial<DeviceRecord>): DeviceActionResult => ({ deviceId, status: 'changed', device: { ...device, ...fields, updatedAt: now.toISOString() } });
  switch (action) {
    case 'revoke':
      return device.state === 'revoked' ? unchanged : changed({ state: 'revoked', stateReason: request.reason ?? 'revoked' });
    case 'disable':
    case 'enable': {
      if (device.state === 'revoked') {
        return { deviceId, status: 'refused', code: 'REGISTRY_INVALID_STATE', message: `device ${deviceId} is revoked; revocation is final (reset it to re-enroll)` };
      }
      if (action === 'disable') return device.state === 'disabled' ? unchanged : changed({ state: 'disabled', stateReason: request.reason ?? 'disabled' });
      // Enabling a device that never enrolled puts it back where it was: provisioned.
      const enabled = device.enrollments === 0 ? 'provisioned' : 'enrolled';
      return device.state === enabled ? unchanged : changed({ state: enabled, stateReason: undefined });
    }
    case 'reset': {
      // A reset lifts a revocation (the next bootstrap enrollment starts a new certificate line;
      // the old certificates stay revoked), but not a disablement: enabling is a decision of its own.
      if (device.state !== 'revoked' && device.resetPending) return unchanged;
      const state = device.state === 'disabled' ? 'disabled' : device.enrollments === 0 ? 'provisioned' : 'enrolled';
      return changed({ state, stateReason: state === 'disabled' ? device.stateReason : undefined, resetPending: true });
    }
  }
}

/** The device action a {@link StateChange} asks for. */
export function stateChangeRequest(change: StateChange): DeviceActionRequest {
  const action = change.to === 'revoked' ? 'revoke' : change.to === 'disabled' ? 'disable' : 'enable';
  return { deviceId: change.deviceId, action, reason: change.reason, actor: change.actor, revocationReason: change.revocationReason };
}

/** The device a single action left, or its refusal thrown as a RegistryError (`changeState`, `resetDevice`). */
export function singleActionOutcome(results: readonly DeviceActionResult[], deviceId: string): DeviceRecord {
  const [result] = results;
  if (!result) throw new RegistryError('REGISTRY_NOT_FOUND', `no device ${deviceId}`);
  if (result.status === 'refused') throw new RegistryError(result.code, result.message);
  return result.device;
}

/**
 * A certificate marked superseded or revoked, and the audit entry of a revocation; undefined
 * when it is revoked already (revocation is final: its time and reason stay).
 */
export function markedCertificate(record: CertificateRecord, status: 'superseded' | 'revoked', reason: RevocationReason, now: Date): { record: CertificateRecord; audit?: AuditEvent } | undefined {
  if (record.status === 'revoked') return undefined;
  if (status === 'superseded') return { record: { ...record, status } };
  return {
    record: { ...record, status, revokedAt: now.toISOString(), revocationReason: reason },
    audit: { type: 'cert-revoked', deviceId: record.deviceId, serial: record.serial, detail: reason, actor: 'system' },
  };
}

/** The audit entry of an applied device action (`before`: the device as it was). */
export function deviceActionAudit(request: DeviceActionRequest, before: DeviceRecord): AuditEvent {
  if (request.action === 'reset') return { type: 'reset', deviceId: before.id, actor: request.actor };
  // A provisioned device has no certificate yet (certSerial '').
  return { type: ACTION_AUDIT_TYPE[request.action], deviceId: before.id, ...(before.certSerial === '' ? {} : { serial: before.certSerial }), detail: request.reason, actor: request.actor };
}

/**
 * Throws unless `commit` may be recorded over `stored` (the device as it is now): a provisioned
 * id enrolls for the first time, a disabled or revoked one (even before its first enrollment: a
 * unit lost in transit) may not, and the current certificate must still be the one the request
 * was authorized against.
 */
export function checkIssuance(stored: DeviceRecord | undefined, commit: IssuanceCommit): void {
  if (stored && stored.state !== 'enrolled' && stored.state !== 'provisioned') {
    throw new RegistryError('REGISTRY_DEVICE_BLOCKED', `device ${stored.id} is ${stored.state}`);
  }
  if (stored?.certSerial !== commit.expect.currentSerial) {
    throw new RegistryError('REGISTRY_CONFLICT', `device ${commit.device.id} changed while its request was processed`);
  }
}

/** The record of an id a batch provisions (it has never enrolled). */
export function provisionedDevice(batch: ProvisionBatch, entry: ProvisionedId, timestamp: string): DeviceRecord {
  return {
    id: entry.id,
    model: batch.model,
    state: 'provisioned',
    certSerial: '',
    certNotAfter: '',
    bootstrap: { key: '', trust: batch.trust, serial: entry.serial ?? '' },
    enrollments: 0,
    renewals: 0,
    resetPending: false,
    batch: batch.id,
    provisionedAt: batch.issuedAt,
    createdAt: timestamp,
    updatedAt: timestamp,
  };
}

/** What the registry keeps of a provisioning batch itself (its ids are device records). */
export type BatchSummary = BatchRecord;

/**
 * Whether importing `batch` again can change nothing: a `bootstrap issue` batch never changes
 * once written, so one imported whole before is done (the server imports every batch file at each
 * start). An allow-list can grow: it is re-read.
 */
export function batchAlreadyImported(known: BatchSummary | undefined, batch: ProvisionBatch): boolean {
  return known !== undefined && !batch.id.startsWith('trust:') && known.count === batch.devices.length;
}

/** The audit entry of a batch import that recorded something. */
export function batchImportAudit(batch: ProvisionBatch, added: number, existing: number, actor: string): AuditEvent {
  return { type: 'batch-imported', detail: `batch=${batch.id} model=${batch.model} trust=${batch.trust} added=${added} existing=${existing}`, actor };
}

/** The provisioning batch of a trust's allow-list (its ids are revocable before their first enrollment). */
export function allowListBatch(trust: TrustRecord): ProvisionBatch | undefined {
  if (!trust.allowList) return undefined;
  return { id: `trust:${trust.name}`, model: trust.model, trust: trust.name, issuedAt: trust.createdAt, devices: trust.allowList.map((id) => ({ id })) };
}

/** The audit entry of a trust added or replaced. */
export function trustAddedAudit(trust: TrustRecord): AuditEvent {
  const namespace = trust.namespace !== undefined ? ` namespace=${trust.namespace}` : '';
  const allowList = trust.allowList ? ` allowlist=${trust.allowList.length}` : '';
  return { type: 'trust-added', detail: `${trust.name} model=${trust.model} fingerprint=${trust.fingerprint}${namespace}${allowList}`, actor: trust.actor };
}

/** The audit entry of a credential recorded from its issue record (one seen at first use is not audited). */
export function credentialRecordedAudit(record: CredentialRecord, actor: string): AuditEvent | undefined {
  // A certificate seen at its first use is an observation, kept on its record (recordedVia,
  // recordedAt), not an event of the audit log; an issue record imported is audited.
  if (record.recordedVia !== 'issue') return undefined;
  return { type: 'credential-recorded', serial: record.serial, detail: `${record.kind} ${record.name} expires=${record.expiresAt}`, actor };
}

/** What a credential revocation does: every matched record, and the revoked ones among them. */
export interface CredentialRevocationPlan {
  /** The matched records as they are after the revocation. */
  readonly out: CredentialRecord[];
  /** The records this revocation changed (to write and audit). */
  readonly changed: CredentialRecord[];
}

/**
 * Decides a credential revocation over every credential on record: a serial is tried first, then
 * a name. `REGISTRY_NOT_FOUND` when nothing matches; `REGISTRY_LAST_CREDENTIAL` when it would
 * revoke the last valid, unexpired operator credential and is not forced.
 */
export function planCredentialRevocation(all: readonly CredentialRecord[], revocation: CredentialRevocation, now: Date): CredentialRevocationPlan {
  const ofKind = all.filter((record) => record.kind === revocation.kind);
  const bySerial = ofKind.filter((record) => record.serial === serialKey(revocation.ref));
  const matched = bySerial.length > 0 ? bySerial : ofKind.filter((record) => record.name === revocation.ref);
  if (matched.length === 0) throw new RegistryError('REGISTRY_NOT_FOUND', `no ${revocation.kind} credential with serial or name ${revocation.ref}`);
  const usable = (record: CredentialRecord): boolean => record.state === 'valid' && new Date(record.expiresAt) > now;
  const revoking = new Set(matched.filter((record) => record.state === 'valid').map((record) => record.serial));
  if (revocation.kind === 'operator' && !revocation.force && matched.some((record) => revoking.has(record.serial) && usable(record))) {
    const left = ofKind.filter((record) => usable(record) && !revoking.has(record.serial));
    if (left.length === 0) {
      throw new RegistryError('REGISTRY_LAST_CREDENTIAL', `revoking ${revocation.ref} would leave no valid operator credential on record; issue another first (fleetgate operator issue), or force it`);
    }
  }
  const timestamp = now.toISOString();
  const changed: CredentialRecord[] = [];
  const out = matched.map((record) => {
    if (!revoking.has(record.serial)) return record;
    const updated: CredentialRecord = { ...record, state: 'revoked', revokedAt: timestamp, revokedBy: revocation.actor };
    changed.push(updated);
    return updated;
  });
  return { out, changed };
}

/** The audit entry of a revoked credential. */
export function credentialRevokedAudit(record: CredentialRecord, actor: string): AuditEvent {
  return { type: 'credential-revoked', serial: record.serial, detail: `${record.kind} ${record.name}`, actor };
}

/** By name, then issue time: the order every engine lists credentials in. */
export function sortCredentials(records: CredentialRecord[]): CredentialRecord[] {
  return records.sort((a, b) => a.name.localeCompare(b.name) || a.issuedAt.localeCompare(b.issuedAt));
}
