import type { X509Certificate } from 'node:crypto';
import { isIssuedBy } from '../pki/ca.ts';
import { createHash } from 'node:crypto';
import { EnrollmentError } from './errors.ts';
import { deviceClaims } from './identity.ts';

/** What a provisioner grants: who the device is and which policy applies. */
export interface BootstrapGrant {
  readonly deviceId: string;
  readonly model: string;
  /** Name of the trust that admitted the credential. */
  readonly trust: string;
  /** Stable key of the bootstrap credential (issuer key id + serial). */
  readonly bootstrapKey: string;
  readonly bootstrapSerial: string;
}

/**
 * One way of proving "I may enroll" (STYLE §2, step-ca provisioners). A provisioner recognises the
 * credentials it is responsible for and says what the issuance may contain, or refuses.
 */
export interface BootstrapProvisioner {
  readonly name: string;
  /** Whether `certificate` is one of this provisioner's credentials (issuer signature check). */
  recognises(certificate: X509Certificate): boolean;
  /** Grants or refuses (throws EnrollmentError) a recognised credential. */
  authorize(certificate: X509Certificate): BootstrapGrant;
}

/** A short fingerprint of a CA's public key (first half of the key's SHA-256). */
export function issuerKeyFingerprint(issuer: X509Certificate): string {
  return createHash('sha256').update(issuer.publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

/** Key of a bootstrap credential: a fingerprint of the issuer's key and the serial, both hex. */
export function bootstrapCredentialKey(issuerFingerprint: string, certificate: X509Certificate): string {
  return `${issuerFingerprint}:${certificate.serialNumber.toLowerCase()}`;
}

/** The base every provisioner starts from: recognises nothing and refuses everything. */
export class DenyAllProvisioner implements BootstrapProvisioner {
  readonly name: string = 'deny-all';
  recognises(_certificate: X509Certificate): boolean {
    return false;
  }
  authorize(_certificate: X509Certificate): BootstrapGrant {
    throw new EnrollmentError('ENROLL_CLIENT_CERT_UNTRUSTED', 'this credential is not accepted for enrollment');
  }
}

/**
 * Factory certificates issued by a CA: fleetgate's own factory CA, or (issue #5) a manufacturer's.
 * The model comes from the certificate's OU, or from the trust registration when it fixes one.
 */
export class CaBootstrapProvisioner extends DenyAllProvisioner {
  override readonly name: string;
  /** Computed once: exporting a key costs ~0.2 ms, and every enrollment needs this. */
  private readonly issuerFingerprint: string;

  constructor(
    name: string,
    private readonly issuer: X509Certificate,
    private readonly options: { readonly model?: string; readonly allowList?: ReadonlySet<string> } = {},
  ) {
    super();
    this.name = name;
    this.issuerFingerprint = issuerKeyFingerprint(issuer);
  }

  override recognises(certificate: X509Certificate): boolean {
    return isIssuedBy(certificate, this.issuer);
  }

  override authorize(certificate: X509Certificate): BootstrapGrant {
    const claims = deviceClaims(certificate);
    if (!claims) {
      throw new EnrollmentError('ENROLL_IDENTITY_MISMATCH', 'the bootstrap certificate does not carry a valid device identity (CN)');
    }
    const model = this.options.model ?? claims.model;
    if (!model) throw new EnrollmentError('ENROLL_MODEL_UNKNOWN', 'the bootstrap certificate does not name a device model (OU)');
    if (this.options.allowList && !this.options.allowList.has(claims.deviceId)) {
      throw new EnrollmentError('ENROLL_CLIENT_CERT_UNTRUSTED', `device ${claims.deviceId} is not on the allow-list of ${this.name}`);
    }
    return {
      deviceId: claims.deviceId,
      model,
      trust: this.name,
      bootstrapKey: bootstrapCredentialKey(this.issuerFingerprint, certificate),
      bootstrapSerial: certificate.serialNumber.toLowerCase(),
    };
  }
}
