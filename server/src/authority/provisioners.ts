import { createHash, X509Certificate } from 'node:crypto';
import { IssuerCheck } from '../pki/issuer-check.ts';
import { fromPem } from '../pki/pem.ts';
import type { TrustRecord } from '../registry/types.ts';
import type { ClientCertificate } from './enrollment-authority.ts';
import { EnrollmentError } from './errors.ts';
import { deviceClaims, isFactoryDeviceId } from './identity.ts';

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
  recognises(certificate: ClientCertificate): boolean;
  /** Grants or refuses (throws EnrollmentError) a recognised credential. */
  authorize(certificate: ClientCertificate): BootstrapGrant;
}

/** A short fingerprint of a CA's public key (first half of the key's SHA-256). */
export function issuerKeyFingerprint(issuer: X509Certificate): string {
  return createHash('sha256').update(issuer.publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

/** Key of a bootstrap credential: a fingerprint of the issuer's key and the serial, both hex. */
export function bootstrapCredentialKey(issuerFingerprint: string, certificate: Pick<ClientCertificate, 'serialNumber'>): string {
  return `${issuerFingerprint}:${certificate.serialNumber.toLowerCase()}`;
}

/** The base every provisioner starts from: recognises nothing and refuses everything. */
export class DenyAllProvisioner implements BootstrapProvisioner {
  readonly name: string = 'deny-all';
  recognises(_certificate: ClientCertificate): boolean {
    return false;
  }
  authorize(_certificate: ClientCertificate): BootstrapGrant {
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
  /** The issuer's name, key id and key, prepared once for every signature check. */
  private readonly issuer: IssuerCheck;

  constructor(
    name: string,
    issuer: X509Certificate,
    private readonly options: { readonly model?: string } = {},
  ) {
    super();
    this.name = name;
    this.issuerFingerprint = issuerKeyFingerprint(issuer);
    this.issuer = new IssuerCheck(issuer);
  }

  override recognises(certificate: ClientCertificate): boolean {
    return this.issuer.issued(certificate.raw);
  }

  override authorize(certificate: ClientCertificate): BootstrapGrant {
    const claims = deviceClaims(certificate.claims);
    if (!claims) {
      throw new EnrollmentError('ENROLL_IDENTITY_MISMATCH', 'the bootstrap certificate does not carry a valid device identity (CN)');
    }
    this.admit(claims.deviceId);
    const model = this.options.model ?? claims.model;
    if (!model) throw new EnrollmentError('ENROLL_MODEL_UNKNOWN', 'the bootstrap certificate does not name a device model (OU)');
    return {
      deviceId: claims.deviceId,
      model,
      trust: this.name,
      bootstrapKey: bootstrapCredentialKey(this.issuerFingerprint, certificate),
      bootstrapSerial: certificate.serialNumber.toLowerCase(),
    };
  }

  /** Whether this provisioner may vouch for `deviceId` (throws if not); fleetgate's factory CA vouches for any id. */
  protected admit(_deviceId: string): void {}
}

/** Which device ids a manufacturer trust may vouch for. At least one of the two must be present. */
export interface TrustScope {
  /** Device-id prefix (`acme.`): the trust vouches for ids that start with it. */
  readonly namespace?: string;
  /** Exactly these device ids. */
  readonly allowList?: ReadonlySet<string>;
}

/**
 * A refusal because a trust may not vouch for the id its certificate names. The certificate is
 * genuine (its chain verified), but the id is not the trust's to give: the audit names the trust
 * as the actor, not the device it claimed to be.
 */
export class TrustScopeError extends EnrollmentError {
  constructor(
    code: 'ENROLL_ID_RESERVED' | 'ENROLL_TRUST_UNSCOPED' | 'ENROLL_ID_OUTSIDE_TRUST',
    message: string,
    readonly trust: string,
  ) {
    super(code, message);
  }
}

/**
 * A manufacturer's CA, trusted by an operator. Unlike fleetgate's factory CA it may only vouch for
 * the ids of its scope (namespace and/or allow-list), and never for an id of fleetgate's own
 * factory format (see {@link isFactoryDeviceId}): otherwise a manufacturer could enroll first under
 * the id of one of our devices, which would then be refused (409) for good.
 */
export class ManufacturerProvisioner extends CaBootstrapProvisioner {
  constructor(
    name: string,
    issuer: X509Certificate,
    model: string,
    private readonly scope: TrustScope,
  ) {
    super(name, issuer, { model });
  }

  protected override admit(deviceId: string): void {
    if (isFactoryDeviceId(deviceId)) {
      throw new TrustScopeError(
        'ENROLL_ID_RESERVED',
        `device id ${deviceId} has the form of fleetgate factory ids (<model>-<12 hex>), which only the fleetgate factory CA may vouch for; trust ${this.name} may not`,
        this.name,
      );
    }
    const { namespace, allowList } = this.scope;
    if (namespace === undefined && allowList === undefined) {
      // A trust stored before namespaces existed: refused until an operator scopes it (docs/operator.md).
      throw new TrustScopeError(
        'ENROLL_TRUST_UNSCOPED',
        `trust ${this.name} has neither an id namespace nor an allow-list; an operator must register it again with one (fleetgate bootstrap trust --namespace or --allowlist)`,
        this.name,
      );
    }
    if (namespace !== undefined && !deviceId.startsWith(namespace)) {
      throw new TrustScopeError('ENROLL_ID_OUTSIDE_TRUST', `device id ${deviceId} is outside the namespace ${namespace} of trust ${this.name}`, this.name);
    }
    if (allowList !== undefined && !allowList.has(deviceId)) {
      throw new TrustScopeError('ENROLL_ID_OUTSIDE_TRUST', `device ${deviceId} is not on the allow-list of ${this.name}`, this.name);
    }
  }
}

/** The provisioner of a stored trust: the first certificate of its chain signs the devices' certificates. */
export function trustProvisioner(trust: TrustRecord): ManufacturerProvisioner {
  const ca = new X509Certificate(fromPem(trust.caPem, 'CERTIFICATE'));
  return new ManufacturerProvisioner(trust.name, ca, trust.model, {
    ...(trust.namespace !== undefined ? { namespace: trust.namespace } : {}),
    ...(trust.allowList !== undefined ? { allowList: new Set(trust.allowList) } : {}),
  });
}
