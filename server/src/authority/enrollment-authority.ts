import { X509Certificate } from 'node:crypto';
import { deviceIdentityUri } from '@fleetgate/device-sdk/protocol';
import { policyForModel, type EnrollmentPolicy } from '../config/config.ts';
import { issueCertificate, type CertificateAuthority } from '../pki/ca.ts';
import { serialToHex } from '../pki/certificate.ts';
import { IssuerCheck } from '../pki/issuer-check.ts';
import { OID } from '../pki/oids.ts';
import { RegistryError } from '../registry/errors.ts';
import type { AuditEvent, CertificateRecord, DeviceRecord, IssuanceCommit, Registry } from '../registry/types.ts';
import { validateCsr } from './csr-policy.ts';
import { EnrollmentError } from './errors.ts';
import { deviceClaims, type CertificateClaims } from './identity.ts';
import { TrustScopeError, type BootstrapGrant, type BootstrapProvisioner } from './provisioners.ts';
import { serialKey } from '../pki/serial.ts';

/**
 * A client certificate as the authority reads it: its DER (for issuer checks) and the fields the
 * TLS stack already decoded. Not an `X509Certificate`: making one costs ~0.2-0.3 ms (OpenSSL 3
 * decodes the certificate again), more than the rest of authenticating the request.
 */
export interface ClientCertificate {
  readonly raw: Buffer;
  /** Uppercase hex, as Node renders it. */
  readonly serialNumber: string;
  /** As Node renders it (`Mar 25 12:00:00 2027 GMT`). */
  readonly validTo: string;
  readonly fingerprint256: string;
  /** CN, OU and SAN URIs: claims, trusted only once the issuer is checked. */
  readonly claims: CertificateClaims;
}

/** The authenticated TLS client of a request, as the transport saw it. */
export interface ClientCredential {
  readonly certificate: ClientCertificate;
  /**
   * The certificate has expired. The TLS layer cannot vouch for such a certificate (OpenSSL
   * reports only its last verification error, so `CERT_HAS_EXPIRED` says nothing about the
   * chain): the transport passes one on only after {@link EnrollmentAuthority.isIssuedByTrustedCa}
   * verified its signature. Only renewal tolerates it, within the grace.
   */
  readonly expired: boolean;
  readonly peer?: string;
}

/** How one issuance request is handled beyond the rules. */
export interface IssuanceOptions {
  /**
   * Asked before a refusal is written to the audit log; false leaves it to the transport's
   * logs (the transport bounds audit writes per source, see docs/enrollment.md). Default: audit.
   */
  readonly mayAuditRefusal?: (error: EnrollmentError) => boolean;
}

/** What an enrollment hands back to the transport. */
export interface IssuanceResult {
  readonly deviceId: string;
  readonly certificate: Buffer;
  /** The chain to send with it (the issuing CA). */
  readonly chain: readonly Buffer[];
  readonly serial: string;
  readonly notAfter: Date;
}

/**
 * What the issuance pipeline reads and writes: a device and a certificate by key, an issuance
 * commit, and refusals for the audit log. Nothing else of the registry.
 */
type EnrollmentStore = Pick<Registry, 'getDevice' | 'getCertificate' | 'commitIssuance' | 'audit'>;

/** Collaborators of the authority. */
export interface EnrollmentAuthorityOptions {
  readonly issuing: CertificateAuthority;
  readonly registry: EnrollmentStore;
  readonly policy: EnrollmentPolicy;
  /** Bootstrap trusts, tried in order. */
  readonly provisioners: readonly BootstrapProvisioner[];
  readonly now?: () => Date;
}

/**
 * The issuance pipeline of fleetgate, free of HTTP: authenticate the credential, parse and verify
 * the CSR, authorize against the registry, apply the profile, sign, record durably, and only
 * then return the certificate. Every refusal is audited.
 */
export class EnrollmentAuthority {
  private readonly now: () => Date;
  private provisioners: readonly BootstrapProvisioner[];
  /** Signature checks against the device-issuing CA (renewal). */
  private readonly issuingCa: IssuerCheck;

  constructor(private readonly options: EnrollmentAuthorityOptions) {
    this.now = options.now ?? (() => new Date());
    this.provisioners = options.provisioners;
    this.issuingCa = new IssuerCheck(options.issuing.x509);
  }

  /** Replaces the bootstrap trusts (an operator trusted or untrusted a manufacturer CA). */
  setProvisioners(provisioners: readonly BootstrapProvisioner[]): void {
    this.provisioners = provisioners;
  }

  /** The CA certificates a device needs (issuing CA; the root is pinned separately). */
  get chain(): readonly Buffer[] {
    return [this.options.issuing.certificate];
  }

  /**
   * Whether a certificate was signed by a CA this authority trusts for enrollment: the
   * device-issuing CA (renewal) or a bootstrap trust (the factory CA, a trusted manufacturer CA).
   * A signature check, not a name match: a self-signed certificate that copies a device's name
   * is not trusted.
   */
  isIssuedByTrustedCa(certificate: ClientCertificate): boolean {
    return this.issuingCa.issued(certificate.raw) || this.provisioners.some((provisioner) => provisioner.recognises(certificate));
  }

  /** First enrollment with a factory bootstrap credential (EST simpleenroll). */
  async enroll(client: ClientCredential, csrDer: Buffer, options: IssuanceOptions = {}): Promise<IssuanceResult> {
    return this.audited(client, 'simpleenroll', options, async () => {
      if (client.expired) throw new EnrollmentError('ENROLL_CLIENT_CERT_EXPIRED', 'the bootstrap certificate has expired');
      const grant = this.authorizeBootstrap(client.certificate);
      const csr = validateCsr(csrDer, grant.deviceId, this.options.policy);
      const device = await this.options.registry.getDevice(grant.deviceId);
      // A reset asks for a new certificate line, so it never resends the old certificate.
      const sameLine = device !== undefined && grant.bootstrapKey === device.bootstrap.key && device.renewals === 0 && !device.resetPending;
      const resend = await this.lostAnswerRetry(device, sameLine, csr.subjectPublicKeyInfo, client, 'simpleenroll');
      if (resend) return resend;
      const previous = this.checkBootstrapEnrollment(device, grant);
      const issued = await this.issue(grant.deviceId, grant.model, csr.subjectPublicKeyInfo);
      const timestamp = this.now().toISOString();
      const record: DeviceRecord = {
        id: grant.deviceId,
        model: grant.model,
        state: 'enrolled',
        certSerial: issued.serial,
        certNotAfter: issued.notAfter.toISOString(),
        bootstrap: { key: grant.bootstrapKey, trust: grant.trust, serial: grant.bootstrapSerial },
        enrollments: (device?.enrollments ?? 0) + 1,
        renewals: device?.renewals ?? 0,
        resetPending: false,
        enrolledAt: timestamp,
        createdAt: device?.createdAt ?? timestamp,
        updatedAt: timestamp,
        // Where a provisioned id came from stays on its record once it enrolled.
        ...(device?.batch !== undefined ? { batch: device.batch } : {}),
        ...(device?.provisionedAt !== undefined ? { provisionedAt: device.provisionedAt } : {}),
      };
      await this.commit({
        kind: 'enroll',
        device: record,
        certificate: issued.record,
        expect: { currentSerial: device?.certSerial },
        ...(previous ? { previous: { serial: previous, status: 'revoked', reason: 'superseded' } } : {}),
        audit: { type: 'enrolled', deviceId: record.id, serial: issued.serial, detail: `model=${grant.model} trust=${grant.trust}`, actor: `device:${record.id}`, peer: client.peer },
      });
      return issued.result;
    });
  }

  /** Renewal with the current operational certificate (EST simplereenroll). */
  async reenroll(client: ClientCredential, csrDer: Buffer, options: IssuanceOptions = {}): Promise<IssuanceResult> {
    return this.audited(client, 'simplereenroll', options, async () => {
      const certificate = client.certificate;
      if (!this.issuingCa.issued(certificate.raw)) {
        if (this.provisioners.some((provisioner) => provisioner.recognises(certificate))) {
          throw new EnrollmentError('ENROLL_OPERATIONAL_REQUIRED', 'renewal needs the current operational certificate, not a bootstrap certificate');
        }
        throw new EnrollmentError('ENROLL_CLIENT_CERT_UNTRUSTED', 'the client certificate was not issued by this fleet');
      }
      const claims = deviceClaims(certificate.claims);
      if (!claims) throw new EnrollmentError('ENROLL_IDENTITY_MISMATCH', 'the client certificate does not carry a device identity');
      if (client.expired) {
        const graceEnd = new Date(certificate.validTo).getTime() + this.options.policy.renewalGraceSeconds * 1000;
        if (this.now().getTime() > graceEnd) {
          throw new EnrollmentError('ENROLL_CLIENT_CERT_EXPIRED', 'the certificate expired beyond the renewal grace; enroll again with the bootstrap certificate');
        }
      }
      const csr = validateCsr(csrDer, claims.deviceId, this.options.policy);
      const device = await this.options.registry.getDevice(claims.deviceId);
      const serial = serialKey(certificate.serialNumber);
      const record = await this.options.registry.getCertificate(serial);
      if (!device || !record || record.deviceId !== device.id) {
        throw new EnrollmentError('ENROLL_CERT_UNKNOWN', 'this certificate is not on record for the device');
      }
      this.checkDeviceState(device);
      if (record.status === 'revoked') throw new EnrollmentError('ENROLL_DEVICE_REVOKED', 'this certificate has been revoked');
      if (serial !== device.certSerial) {
        const resend = await this.lostAnswerRetry(device, serial === device.previousSerial, csr.subjectPublicKeyInfo, client, 'simplereenroll');
        if (resend) return resend;
        // A superseded key (perhaps a stolen one) cannot keep a device line alive.
        throw new EnrollmentError('ENROLL_CERT_SUPERSEDED', 'this certificate has been replaced by a renewal; renew with the current certificate');
      }
      const issued = await this.issue(device.id, device.model, csr.subjectPublicKeyInfo);
      const now = this.now();
      const updated: DeviceRecord = {
        ...device,
        certSerial: issued.serial,
        certNotAfter: issued.notAfter.toISOString(),
        renewals: device.renewals + 1,
        previousSerial: serial,
        updatedAt: now.toISOString(),
      };
      await this.commit({
        kind: 'renew',
        device: updated,
        certificate: issued.record,
        expect: { currentSerial: device.certSerial },
        // make before break: the old certificate stays valid until it expires or is revoked
        previous: { serial: device.certSerial, status: 'superseded', reason: 'superseded' },
        audit: { type: 'renewed', deviceId: device.id, serial: issued.serial, detail: `previous=${serial}`, actor: `device:${device.id}`, peer: client.peer },
      });
      return issued.result;
    });
  }

  /** Which provisioner admits this credential; an operational certificate is not a bootstrap one. */
  private authorizeBootstrap(certificate: ClientCertificate): BootstrapGrant {
    const provisioner = this.provisioners.find((candidate) => candidate.recognises(certificate));
    if (provisioner) return provisioner.authorize(certificate);
    if (this.issuingCa.issued(certificate.raw)) {
      throw new EnrollmentError('ENROLL_BOOTSTRAP_REQUIRED', 'simpleenroll needs a factory bootstrap certificate; renew with simplereenroll');
    }
    throw new EnrollmentError('ENROLL_CLIENT_CERT_UNTRUSTED', 'the client certificate does not come from a trusted bootstrap CA');
  }

  private checkDeviceState(device: DeviceRecord): void {
    if (device.state === 'revoked') throw new EnrollmentError('ENROLL_DEVICE_REVOKED', `device ${device.id} is revoked`);
    if (device.state === 'disabled') throw new EnrollmentError('ENROLL_DEVICE_DISABLED', `device ${device.id} is disabled`);
  }

  /**
   * Idempotent retry: a device whose answer was lost asks again with the same credential and the
   * same key. If that key is already certified as the device's current certificate, the same
   * certificate is sent again; nothing new is issued. Safe, because the CSR proves possession of
   * the certified key and the credential is the one that obtained it.
   */
  private async lostAnswerRetry(
    device: DeviceRecord | undefined,
    sameCredential: boolean,
    subjectPublicKeyInfo: Buffer,
    client: ClientCredential,
    operation: string,
  ): Promise<IssuanceResult | undefined> {
    if (!device || !sameCredential || device.state !== 'enrolled') return undefined;
    const current = await this.options.registry.getCertificate(device.certSerial);
    if (!current || current.status !== 'valid') return undefined;
    const der = Buffer.from(current.der, 'base64');
    const certified = new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' });
    if (!certified.equals(subjectPublicKeyInfo)) return undefined;
    await this.options.registry.audit({ type: 'resent', deviceId: device.id, serial: current.serial, detail: `${operation}: same key, answer presumed lost`, actor: `device:${device.id}`, peer: client.peer });
    return { deviceId: device.id, certificate: der, chain: this.chain, serial: current.serial, notAfter: new Date(current.notAfter) };
  }

  /**
   * A bootstrap identity enrolls once, unless an operator reset or the policy allows again.
   * Returns the serial of the operational certificate the new enrollment revokes, if any.
   */
  private checkBootstrapEnrollment(device: DeviceRecord | undefined, grant: BootstrapGrant): string | undefined {
    if (!device) return undefined;
    // Also before the first enrollment: a provisioned id that an operator revoked or disabled (a
    // unit lost or stolen before its first boot) is refused with the factory credential in hand.
    this.checkDeviceState(device);
    // Issued a credential, never enrolled: this is its first enrollment. The trust that admits the
    // credential already bound the id (fleetgate factory ids are reserved, trusts have disjoint
    // scopes), so the record's trust is not compared again.
    if (device.state === 'provisioned') return undefined;
    if (device.bootstrap.key !== grant.bootstrapKey && !device.resetPending) {
      throw new EnrollmentError('ENROLL_CONFLICT', `device ${device.id} is enrolled with a different bootstrap credential`);
    }
    const policy = this.options.policy.bootstrapReenroll;
    const graceEnd = new Date(device.certNotAfter).getTime() + this.options.policy.renewalGraceSeconds * 1000;
    const allowed =
      device.resetPending || policy === 'always' || (policy === 'after-expiry' && this.now().getTime() > graceEnd);
    if (!allowed) {
      throw new EnrollmentError('ENROLL_ALREADY_ENROLLED', `device ${device.id} has already enrolled; renew with simplereenroll, or ask an operator to reset it`);
    }
    return device.certSerial;
  }

  private async issue(deviceId: string, model: string, subjectPublicKeyInfo: Buffer) {
    const now = this.now();
    const lifetime = policyForModel(this.options.policy, model).certificateLifetimeSeconds;
    const issued = await issueCertificate(this.options.issuing, {
      subject: [
        { type: OID.organizationName, value: 'fleetgate devices' },
        { type: OID.organizationalUnitName, value: model },
        { type: OID.commonName, value: deviceId },
      ],
      subjectPublicKeyInfo,
      profile: { kind: 'device', deviceIdentityUri: deviceIdentityUri(deviceId) },
      notBefore: new Date(now.getTime() - this.options.policy.clockSkewSeconds * 1000),
      notAfter: new Date(now.getTime() + lifetime * 1000),
    });
    const serial = serialToHex(issued.serial);
    const record: CertificateRecord = {
      serial,
      deviceId,
      kind: 'operational',
      notBefore: issued.notBefore.toISOString(),
      notAfter: issued.notAfter.toISOString(),
      issuedAt: now.toISOString(),
      status: 'valid',
      der: issued.der.toString('base64'),
    };
    const result: IssuanceResult = { deviceId, certificate: issued.der, chain: this.chain, serial, notAfter: issued.notAfter };
    return { serial, notAfter: issued.notAfter, record, result };
  }

  /** Durable record before the certificate leaves; a concurrent change turns into a refusal. */
  private async commit(commit: IssuanceCommit): Promise<void> {
    try {
      await this.options.registry.commitIssuance(commit);
    } catch (error) {
      if (error instanceof RegistryError && error.code === 'REGISTRY_CONFLICT') {
        throw new EnrollmentError('ENROLL_CONFLICT', `device ${commit.device.id} changed while this request was processed; retry`, { cause: error });
      }
      if (error instanceof RegistryError && error.code === 'REGISTRY_DEVICE_BLOCKED') {
        const device = await this.options.registry.getDevice(commit.device.id);
        if (device) this.checkDeviceState(device);
        throw new EnrollmentError('ENROLL_CONFLICT', `device ${commit.device.id} changed while this request was processed; retry`, { cause: error });
      }
      throw error;
    }
  }

  /** Runs one operation and audits its refusal, if it is refused. */
  private async audited<T>(client: ClientCredential, operation: string, options: IssuanceOptions, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (caught) {
      const error = registryUnavailable(caught) ?? caught;
      // A registry that does not answer cannot take the refusal either: not audited.
      if (error instanceof EnrollmentError && error.code !== 'ENROLL_UNAVAILABLE' && (options.mayAuditRefusal?.(error) ?? true)) await this.auditRefusal(client, operation, error);
      throw error;
    }
  }

  /**
   * Records a refusal in the audit log. The entry names the device of `client`'s certificate, so
   * only a credential whose chain was verified may be passed (anonymous and unverified refusals
   * are the transport's to log).
   */
  async auditRefusal(client: ClientCredential | undefined, operation: string, error: EnrollmentError): Promise<void> {
    const claimed = client ? deviceClaims(client.certificate.claims)?.deviceId : undefined;
    const event: AuditEvent = {
      type: 'refused',
      deviceId: claimed,
      code: error.code,
      detail: `${operation}: ${error.message}`,
      // A trust that tried to vouch for an id outside its scope is the actor, not that device.
      actor: error instanceof TrustScopeError ? `trust:${error.trust}` : claimed ? `device:${claimed}` : 'anonymous',
      peer: client?.peer,
    };
    await this.options.registry.audit(event);
  }
}

/** How long a device waits before retrying when the registry does not answer. */
const REGISTRY_RETRY_AFTER_SECONDS = 5;

/**
 * The refusal a device gets when the registry cannot be used: shutting down (REGISTRY_CLOSED) or
 * its database down (REGISTRY_UNAVAILABLE) is 503 with Retry-After, never a 500 and never a hang;
 * nothing was issued (the certificate leaves only after its record is committed).
 */
function registryUnavailable(error: unknown): EnrollmentError | undefined {
  if (!(error instanceof RegistryError)) return undefined;
  if (error.code === 'REGISTRY_CLOSED') return new EnrollmentError('ENROLL_UNAVAILABLE', 'the server is shutting down; retry', { cause: error, retryAfterSeconds: REGISTRY_RETRY_AFTER_SECONDS });
  if (error.code === 'REGISTRY_UNAVAILABLE') return new EnrollmentError('ENROLL_UNAVAILABLE', 'the registry is unavailable; retry later', { cause: error, retryAfterSeconds: REGISTRY_RETRY_AFTER_SECONDS });
  return undefined;
}
