import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { certificateClaims } from '../authority/identity.ts';
import { isIssuedBy } from '../pki/ca.ts';
import { operatorIdentityUri } from '../pki/profiles.ts';
import type { CredentialRecord, Registry } from '../registry/types.ts';
import { AdminError } from './errors.ts';
import { serialKey } from '../pki/serial.ts';

/** What the admin API's operator check needs: the operator credentials on record, their changes, a first-use record. */
export type OperatorCredentialStore = Pick<Registry, 'listCredentials' | 'onCredentialChange' | 'recordCredential'>;

/** The operator certificate behind an admin request. */
export interface OperatorCertificate {
  readonly name: string;
  /** Lower-case hex without leading zeros (the registry's form). */
  readonly serial: string;
  readonly certificate: X509Certificate;
}

/**
 * The operator behind an admin request: a client certificate from the issuing CA carrying
 * `urn:fleetgate:operator:<name>`. Device and service certificates chain to the same CA and are
 * refused with 403; anything else gets 401.
 */
export function operatorCertificateOf(socket: TLSSocket, issuing: X509Certificate): OperatorCertificate {
  const certificate = socket.getPeerX509Certificate();
  if (!certificate) throw new AdminError('ADMIN_CLIENT_CERT_REQUIRED', 'an operator client certificate is required');
  if (!socket.authorized || !isIssuedBy(certificate, issuing)) {
    throw new AdminError('ADMIN_CLIENT_CERT_UNTRUSTED', `the client certificate is not trusted (${String(socket.authorizationError ?? 'not issued by this fleet')})`);
  }
  const prefix = operatorIdentityUri('');
  const uri = certificateClaims(certificate).uris.find((candidate) => candidate.startsWith(prefix));
  if (!uri) throw new AdminError('ADMIN_NOT_OPERATOR', 'this certificate is not an operator certificate');
  return { name: uri.slice(prefix.length), serial: serialKey(certificate.serialNumber), certificate };
}

/**
 * Operator certificates as the registry knows them, held in memory and kept current by the
 * registry's change events, so every admin request is checked without a disk read: a revoked
 * certificate is refused from the next request on, also on a kept-alive connection whose TLS
 * handshake happened before the revocation (the check runs per request, not per handshake).
 *
 * Operator certificates are issued offline (`fleetgate init`, `fleetgate operator issue`), where
 * the registry is locked by the running server: `operator issue` leaves a record file that the
 * server imports (factory/batch-files.ts), and a certificate the registry has not heard of is
 * recorded at its first use here. Either way `fleetgate operator list` shows it after one request.
 */
export class OperatorAccess {
  private readonly known = new Map<string, CredentialRecord>();
  private loading: Promise<void>;
  private loadFailed = false;
  private readonly unsubscribe: () => void;

  constructor(private readonly registry: OperatorCredentialStore) {
    // Subscribe first so a revocation that lands while loading is not missed.
    this.unsubscribe = registry.onCredentialChange((record) => {
      if (record.kind === 'operator') this.known.set(record.serial, record);
    });
    this.loading = this.load();
  }

  private load(): Promise<void> {
    const attempt = this.registry.listCredentials('operator').then((records) => {
      for (const record of records) if (!this.known.has(record.serial)) this.known.set(record.serial, record);
    });
    attempt.catch(() => {
      this.loadFailed = true;
    });
    return attempt;
  }

  /**
   * Resolves once the certificates on record are in memory (at start). A load that failed (the
   * registry's database down) is tried again by the next request, so the admin API recovers
   * when the database returns instead of answering 503 until a restart.
   */
  get ready(): Promise<void> {
    if (this.loadFailed) {
      this.loadFailed = false;
      this.loading = this.load();
    }
    return this.loading;
  }

  /**
   * Authenticates the operator of a request, from memory (call after {@link ready}): a trusted
   * operator certificate (see {@link operatorCertificateOf}) that has not been revoked (401
   * ADMIN_OPERATOR_REVOKED). Synchronous, so a refusal never waits on I/O.
   */
  authenticate(socket: TLSSocket, issuing: X509Certificate): OperatorCertificate {
    const operator = operatorCertificateOf(socket, issuing);
    const record = this.known.get(operator.serial);
    if (record?.state === 'revoked') {
      throw new AdminError('ADMIN_OPERATOR_REVOKED', `operator certificate ${operator.serial} (${operator.name}) was revoked${record.revokedBy ? ` by ${record.revokedBy}` : ''}`);
    }
    return operator;
  }

  /**
   * Records a certificate the registry has not heard of at its first use, so that `fleetgate
   * operator list` shows it (the request that recorded it included) and `operator revoke` can
   * name it. Nothing to do for a known one.
   */
  async recordFirstUse(operator: OperatorCertificate): Promise<void> {
    if (this.known.has(operator.serial)) return;
    const { certificate } = operator;
    const recorded = await this.registry.recordCredential(
      {
        kind: 'operator',
        name: operator.name,
        serial: operator.serial,
        issuedAt: new Date(certificate.validFrom).toISOString(),
        expiresAt: new Date(certificate.validTo).toISOString(),
        state: 'valid',
        recordedVia: 'first-use',
        recordedAt: new Date().toISOString(),
      },
      `operator:${operator.name}`,
    );
    if (!this.known.has(recorded.serial)) this.known.set(recorded.serial, recorded);
    // Recorded through an import and revoked in the meantime.
    if (recorded.state === 'revoked') throw new AdminError('ADMIN_OPERATOR_REVOKED', `operator certificate ${operator.serial} (${operator.name}) was revoked`);
  }

  close(): void {
    this.unsubscribe();
  }
}
