import { randomBytes } from 'node:crypto';
import { bitString, explicit, integer, sequence, time, children, decodeSingle, expectTag, Tag, decodeBitStringBytes } from './der.ts';
import { extensionsField, type EncodedExtension } from './extensions.ts';
import type { Signer } from './signer.ts';

/** Everything that goes into a certificate, decided by a profile, never by the requester. */
export interface CertificateTemplate {
  readonly serial: bigint;
  /** Issuer Name DER: the issuing CA's subject, byte for byte. */
  readonly issuer: Buffer;
  /** Subject Name DER. */
  readonly subject: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SubjectPublicKeyInfo DER of the certified key. */
  readonly subjectPublicKeyInfo: Buffer;
  readonly extensions: readonly EncodedExtension[];
}

/**
 * A 128-bit random positive serial (CA/B BR §7.1 asks for at least 64 bits of entropy; RFC 5280
 * §4.1.2.2 caps serials at 20 octets). The top bit is cleared so the INTEGER is positive and at
 * most 16 octets; the value is never zero.
 */
export function randomSerial(): bigint {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  const value = BigInt(`0x${bytes.toString('hex')}`);
  return value === 0n ? 1n : value;
}

/** Serial as lower-case hex without leading zeros: the registry key for a certificate. */
export function serialToHex(serial: bigint): string {
  return serial.toString(16);
}

/** Encodes the TBSCertificate of an X.509 v3 certificate (RFC 5280 §4.1). */
export function encodeTbsCertificate(template: CertificateTemplate, signatureAlgorithm: Buffer): Buffer {
  return sequence(
    explicit(0, integer(2n)), // version v3
    integer(template.serial),
    signatureAlgorithm,
    template.issuer,
    sequence(time(template.notBefore), time(template.notAfter)),
    template.subject,
    template.subjectPublicKeyInfo,
    extensionsField(template.extensions),
  );
}

/** Builds and signs a certificate; returns its DER. */
export async function signCertificate(template: CertificateTemplate, signer: Signer): Promise<Buffer> {
  const tbs = encodeTbsCertificate(template, signer.algorithm.der);
  const signature = await signer.sign(tbs);
  return sequence(tbs, signer.algorithm.der, bitString(signature));
}

/** The subjectPublicKey BIT STRING bytes of a SubjectPublicKeyInfo (input to key identifiers). */
export function subjectPublicKeyBits(spki: Buffer): Buffer {
  const node = decodeSingle(spki);
  expectTag(node, Tag.SEQUENCE, 'SubjectPublicKeyInfo');
  const [, keyBits] = children(node);
  expectTag(keyBits, Tag.BIT_STRING, 'subjectPublicKey');
  return decodeBitStringBytes(keyBits);
}
