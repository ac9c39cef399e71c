import { bitString, explicit, integer, octetString, oid, sequence, time, tlv } from './der.ts';
import { authorityKeyIdentifier, crlNumber } from './extensions.ts';
import type { CertificateAuthority } from './ca.ts';
import { OID } from './oids.ts';

/** RFC 5280 §5.3.1 reason codes. */
export const CRL_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
} as const;

export type CrlReason = keyof typeof CRL_REASONS;

/** One revoked certificate. */
export interface RevokedEntry {
  readonly serial: bigint;
  readonly revokedAt: Date;
  readonly reason?: CrlReason;
}

/** What a CRL states. */
export interface CrlContent {
  /** cRLNumber, strictly increasing. */
  readonly number: bigint;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly revoked: readonly RevokedEntry[];
}

function revokedCertificate(entry: RevokedEntry): Buffer {
  const parts = [integer(entry.serial), time(entry.revokedAt)];
  // reasonCode is omitted for "unspecified" (RFC 5280 §5.3.1: SHOULD be absent).
  if (entry.reason && entry.reason !== 'unspecified') {
    const reasonCode = sequence(oid(OID.crlReason), octetString(tlv(0x0a, Buffer.from([CRL_REASONS[entry.reason]]))));
    parts.push(sequence(reasonCode));
  }
  return sequence(...parts);
}

/**
 * A v2 CRL (RFC 5280 §5) signed by `issuer`, with authorityKeyIdentifier and cRLNumber.
 * Entries are sorted by serial, so the same revocations always give the same list.
 */
export async function signCrl(issuer: CertificateAuthority, content: CrlContent): Promise<Buffer> {
  const entries = [...content.revoked].sort((a, b) => (a.serial < b.serial ? -1 : a.serial > b.serial ? 1 : 0));
  const fields = [
    integer(1n), // v2
    issuer.signer.algorithm.der,
    issuer.subject,
    time(content.thisUpdate),
    time(content.nextUpdate),
  ];
  if (entries.length > 0) fields.push(sequence(...entries.map(revokedCertificate)));
  fields.push(explicit(0, sequence(authorityKeyIdentifier(issuer.keyId), crlNumber(content.number))));
  const tbs = sequence(...fields);
  const signature = await issuer.signer.sign(tbs);
  return sequence(tbs, issuer.signer.algorithm.der, bitString(signature));
}
