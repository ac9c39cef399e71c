import type { Logger } from 'pino';
import type { BatchImportReport } from '../factory/batch-files.ts';
import { RegistryError } from '../registry/errors.ts';
import type { CredentialKind, CredentialRecord, DeviceActionRequest, DeviceActionResult, DeviceRecord, Registry, RevocationReason, TrustRecord } from '../registry/types.ts';
import { OperatorAuthorityError } from './errors.ts';
import { namespacesOverlap, sameTrust, validateTrust, type TrustRegistration } from './trust-registration.ts';

/**
 * What the operator authority changes in the registry: device states (one writer job for one or
 * many devices), trusts and credentials. It reads only the trusts, to check a registration
 * against them.
 */
export type OperatorStore = Pick<Registry, 'applyDeviceActions' | 'listTrusts' | 'putTrust' | 'deleteTrust' | 'revokeCredentials'>;

/** The CRL publisher as far as a revocation waits for it (crl/crl-publisher.ts). */
interface RevocationPublisher {
  /** Settles once the published CRL lists every revocation the registry has announced. */
  revocationsPublished(): Promise<void>;
}

/** Collaborators of the operator authority. */
export interface OperatorAuthorityOptions {
  readonly store: OperatorStore;
  readonly crl: RevocationPublisher;
  /** Imports the record files of `<data>/batches/` (factory/batch-files.ts), `actor` being who asked. */
  readonly importBatches: (actor: string) => Promise<BatchImportReport>;
  readonly logger: Logger;
  readonly now?: () => Date;
}

/**
 * One operator action on a device, with what it takes: a revocation an RFC 5280 reason (recorded
 * on the certificates and in the CRL; `unspecified` when absent) and a free-text note, a disable
 * a free-text reason.
 */
export type DeviceCommand =
  | { readonly action: 'revoke'; readonly revocationReason?: RevocationReason; readonly note?: string }
  | { readonly action: 'disable'; readonly reason?: string }
  | { readonly action: 'enable' | 'reset' };

/** What a device action did: the device after it, and whether anything was written. */
export interface DeviceChangeOutcome {
  readonly device: DeviceRecord;
  /** false: the device already was in that state (nothing written, nothing audited). */
  readonly changed: boolean;
}

/** The codes a device of a bulk action may be refused with. */
type DeviceRefusalCode = 'OPERATOR_DEVICE_NOT_FOUND' | 'OPERATOR_INVALID_STATE';

/** What happened to one device of a bulk action (see {@link DeviceActionResult}). */
export type DeviceOutcome =
  | { readonly deviceId: string; readonly status: 'changed' | 'unchanged' | 'skipped'; readonly device: DeviceRecord }
  | { readonly deviceId: string; readonly status: 'refused'; readonly code: DeviceRefusalCode; readonly message: string };

/** What a bulk action did, device by device in the order asked, and how many ended in each status. */
export interface BulkOutcome {
  readonly results: readonly DeviceOutcome[];
  readonly summary: Readonly<Record<DeviceOutcome['status'], number>>;
}

/** What a trust registration did. */
export interface TrustOutcome {
  /** The trust as stored now (the stored one, unchanged, when `changed` is false). */
  readonly trust: TrustRecord;
  /** false: the registration was identical to the stored trust (nothing written, nothing audited). */
  readonly changed: boolean;
  /** An existing trust of that name was replaced. */
  readonly replaced: boolean;
}

/** The operator authority's code for a registry refusal of a device action. */
const DEVICE_REFUSALS: Readonly<Record<'REGISTRY_NOT_FOUND' | 'REGISTRY_INVALID_STATE', DeviceRefusalCode>> = {
  REGISTRY_NOT_FOUND: 'OPERATOR_DEVICE_NOT_FOUND',
  REGISTRY_INVALID_STATE: 'OPERATOR_INVALID_STATE',
};

/** The actor an operator's changes are audited under. */
function operatorActor(operator: string): string {
  return `operator:${operator}`;
}

/** The reason a command leaves on the device (`stateReason`): a revocation's is "reason: note". */
function stateReason(command: DeviceCommand): string | undefined {
  if (command.action === 'disable') return command.reason;
  if (command.action !== 'revoke') return undefined;
  return [command.revocationReason, command.note].filter((part) => part !== undefined && part !== '').join(': ') || undefined;
}

/** A device command as the registry's action request. */
function actionRequest(deviceId: string, command: DeviceCommand, actor: string): DeviceActionRequest {
  switch (command.action) {
    case 'revoke':
      // The CRL carries the RFC 5280 reason alone.
      return { deviceId, action: 'revoke', actor, reason: stateReason(command), revocationReason: command.revocationReason ?? 'unspecified' };
    case 'disable':
      return { deviceId, action: 'disable', actor, reason: stateReason(command) };
    default:
      return { deviceId, action: command.action, actor };
  }
}

/**
 * The operator's side of fleetgate, free of HTTP (STYLE §1), beside the `EnrollmentAuthority`
 * of the devices' side: device actions (revoke, disable, enable, reset; one device or many, all or
 * nothing), trusted manufacturer CAs (add, replace, remove), operator and service credential
 * revocation, and the import of offline record files. It applies the rules, writes through the
 * registry (which audits every change under `operator:<name>`), and refuses with an
 * {@link OperatorAuthorityError} whose code the front end translates (admin/errors.ts). A refused
 * action writes and audits nothing.
 */
export class OperatorAuthority {
  private readonly now: () => Date;

  constructor(private readonly options: OperatorAuthorityOptions) {
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Applies one action to one device. Exact (issue 13): an action that would change nothing
   * (revoking a revoked device, disabling a disabled one, enabling an enabled one, a reset still
   * pending) answers `changed: false` and keeps the stored reason. A revocation settles once the
   * published CRL lists the device's certificates, so whoever fetches the CRL next sees them.
   */
  async changeDevice(deviceId: string, command: DeviceCommand, operator: string): Promise<DeviceChangeOutcome> {
    const request = actionRequest(deviceId, command, operatorActor(operator));
    const [result] = await this.apply([request], true);
    if (!result) throw new Error(`the registry answered no result for ${command.action} ${deviceId}`);
    if (result.status === 'refused') throw new OperatorAuthorityError(result.code, result.message);
    const changed = result.status === 'changed';
    if (changed) {
      this.options.logger.info({ deviceId, action: command.action, operator, reason: stateReason(command) }, 'device state changed');
      if (command.action === 'revoke') await this.options.crl.revocationsPublished();
    }
    return { device: result.device, changed };
  }

  /**
   * Applies one action to many devices in one job of the registry's single writer: every device
   * is checked first, then every change is written in one batch. Unless `continueOnError`, one
   * refused device means nothing is written (the others are `skipped`). A revocation settles once
   * the CRL lists every certificate it revoked.
   */
  async changeDevices(deviceIds: readonly string[], command: DeviceCommand, options: { readonly operator: string; readonly continueOnError: boolean }): Promise<BulkOutcome> {
    const actor = operatorActor(options.operator);
    const results = await this.apply(
      deviceIds.map((deviceId) => actionRequest(deviceId, command, actor)),
      !options.continueOnError,
    );
    const summary = { changed: 0, unchanged: 0, refused: 0, skipped: 0 };
    for (const result of results) summary[result.status]++;
    if (summary.changed > 0) {
      this.options.logger.info({ action: command.action, operator: options.operator, reason: stateReason(command), changed: summary.changed }, 'device states changed');
      if (command.action === 'revoke') await this.options.crl.revocationsPublished();
    }
    return { results, summary };
  }

  /** The registry's action results, its refusals under the authority's codes. */
  private async apply(requests: readonly DeviceActionRequest[], allOrNothing: boolean): Promise<DeviceOutcome[]> {
    let results: DeviceActionResult[];
    try {
      results = await this.options.store.applyDeviceActions(requests, { allOrNothing });
    } catch (error) {
      if (error instanceof RegistryError && (error.code === 'REGISTRY_NOT_FOUND' || error.code === 'REGISTRY_INVALID_STATE')) {
        throw new OperatorAuthorityError(DEVICE_REFUSALS[error.code], error.message, { cause: error });
      }
      throw error;
    }
    return results.map((result) => (result.status === 'refused' ? { deviceId: result.deviceId, status: 'refused', code: DEVICE_REFUSALS[result.code], message: result.message } : result));
  }

  /**
   * Trusts a manufacturer CA for bootstrap ({@link validateTrust} for what a registration must
   * hold). Exact: a CA trusted under another name is refused with that name; an existing name is
   * changed only with `replace`; a registration identical to the stored one changes nothing; a
   * namespace may not overlap another trust's.
   */
  async addTrust(registration: TrustRegistration, options: { readonly operator: string; readonly replace: boolean }): Promise<TrustOutcome> {
    const trust = validateTrust(registration, operatorActor(options.operator), this.now());
    // Checked before the write, outside the registry's writer queue: two operators registering
    // the same CA or overlapping namespaces in the same instant could both pass; registrations are rare.
    const trusts = await this.options.store.listTrusts();
    const sameCa = trusts.find((existing) => existing.name !== trust.name && existing.fingerprint === trust.fingerprint);
    if (sameCa) {
      throw new OperatorAuthorityError(
        'OPERATOR_TRUST_EXISTS',
        `this CA (${trust.fingerprint.slice(0, 23)}...) is already trusted as ${sameCa.name} (model ${sameCa.model}): change that trust with name ${sameCa.name} and replace, or remove it first`,
      );
    }
    const current = trusts.find((existing) => existing.name === trust.name);
    if (current && sameTrust(current, trust)) return { trust: current, changed: false, replaced: false };
    if (current && !options.replace) {
      throw new OperatorAuthorityError('OPERATOR_TRUST_EXISTS', `trust ${trust.name} exists (model ${current.model}, CA ${current.fingerprint.slice(0, 23)}...): replace it explicitly (replace=true, \`--replace\`) or choose another name`);
    }
    const { namespace } = trust;
    if (namespace !== undefined) {
      // Two trusts sharing ids would let one manufacturer enroll first under the other's ids.
      const other = trusts.find((existing) => existing.name !== trust.name && existing.namespace !== undefined && namespacesOverlap(existing.namespace, namespace));
      if (other) throw new OperatorAuthorityError('OPERATOR_TRUST_CONFLICT', `namespace ${namespace} overlaps the namespace ${String(other.namespace)} of trust ${other.name}`);
    }
    await this.options.store.putTrust(trust);
    this.options.logger.info({ trust: trust.name, model: trust.model, namespace, operator: options.operator, replaced: current !== undefined }, 'manufacturer CA trusted');
    return { trust, changed: true, replaced: current !== undefined };
  }

  /** Stops trusting a manufacturer CA. Devices it admitted keep their operational certificates. */
  async removeTrust(name: string, operator: string): Promise<void> {
    if (!(await this.options.store.deleteTrust(name, operatorActor(operator)))) throw new OperatorAuthorityError('OPERATOR_TRUST_NOT_FOUND', `no trust named ${name}`);
  }

  /**
   * Revokes the operator or service certificate with serial `ref`, or every valid one named
   * `ref`. Revoking the last valid operator certificate needs `force`.
   */
  async revokeCredentials(kind: CredentialKind, ref: string, options: { readonly operator: string; readonly force: boolean }): Promise<CredentialRecord[]> {
    let revoked: CredentialRecord[];
    try {
      revoked = await this.options.store.revokeCredentials({ kind, ref, actor: operatorActor(options.operator), force: options.force });
    } catch (error) {
      if (error instanceof RegistryError && error.code === 'REGISTRY_NOT_FOUND') throw new OperatorAuthorityError('OPERATOR_CREDENTIAL_NOT_FOUND', error.message, { cause: error });
      if (error instanceof RegistryError && error.code === 'REGISTRY_LAST_CREDENTIAL') throw new OperatorAuthorityError('OPERATOR_LAST_CREDENTIAL', error.message, { cause: error });
      throw error;
    }
    this.options.logger.info({ kind, ref, serials: revoked.map((record) => record.serial), operator: options.operator }, 'credential revoked');
    return revoked;
  }

  /** Imports the record files of `<data>/batches/` now (idempotent; the server also does it at start). */
  async importRecordFiles(operator: string): Promise<BatchImportReport> {
    const report = await this.options.importBatches(operatorActor(operator));
    this.options.logger.info({ batches: report.batches.length, credentials: report.credentials.length, invalid: report.invalid.length, operator }, 'record files imported');
    return report;
  }
}
