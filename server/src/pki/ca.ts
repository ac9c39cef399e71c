import { X509Certificate } from 'node:crypto';
import { children, decodeSingle } from './der.ts';
import { randomSerial, signCertificate, subjectPublicKeyBits } from './certificate.ts';
import { keyIdentifier } from './extensions.ts';
import { spkiDer } from './keys.ts';
import { encodeName, type NameAttribute } from './names.ts';
import { profileExtensions, type Profile } from './profiles.ts';
import type { Signer } from './signer.ts';

/** A CA that can sign: its certificate and the signer holding its key. */
export interface CertificateAuthority {
  /** DER of the CA certificate. */
  readonly certificate: Buffer;
  readonly x509: X509Certificate;
  /** Subject Name DER, used verbatim as the issuer of what it signs. */
  readonly subject: Buffer;
  /** subjectKeyIdentifier, used as the authorityKeyIdentifier of what it signs. */
  readonly keyId: Buffer;
  readonly signer: Signer;
}

/** What to certify. The validity is decided by the caller's policy, the extensions by the profile. */
export interface IssueRequest {
  readonly subject: readonly NameAttribute[] | Buffer;
  readonly subjectPublicKeyInfo: Buffer;
  readonly profile: Profile;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Defaults to a fresh 128-bit random serial. */
  readonly serial?: bigint;
}

/** An issued certificate and its serial. */
export interface IssuedCertificate {
  readonly der: Buffer;
  readonly serial: bigint;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Makes a CertificateAuthority from its certificate DER and signer. */
export function loadAuthority(certificate: Buffer, signer: Signer): CertificateAuthority {
  const x509 = new X509Certificate(certificate);
  const keyId = keyIdentifier(subjectPublicKeyBits(spkiDer(x509.publicKey)));
  // The subject bytes are taken from the certificate itself so issuer/subject chaining is exact.
  const subject = extractSubject(certificate);
  return { certificate, x509, subject, keyId, signer };
}

/** Issues a certificate. `notAfter` is clamped to the CA's own expiry (RFC 5280 §6 would fail it). */
export async function issueCertificate(ca: CertificateAuthority, request: IssueRequest): Promise<IssuedCertificate> {
  const caNotAfter = new Date(ca.x509.validTo);
  // Certificates carry whole seconds: report the validity exactly as encoded.
  const wholeSeconds = (date: Date): Date => new Date(Math.floor(date.getTime() / 1000) * 1000);
  const notBefore = wholeSeconds(request.notBefore);
  const notAfter = wholeSeconds(request.notAfter > caNotAfter ? caNotAfter : request.notAfter);
  const serial = request.serial ?? randomSerial();
  const subject = Buffer.isBuffer(request.subject) ? request.subject : encodeName(request.subject).der;
  const subjectKeyId = keyIdentifier(subjectPublicKeyBits(request.subjectPublicKeyInfo));
  const der = await signCertificate(
    {
      serial,
      issuer: ca.subject,
      subject,
      notBefore,
      notAfter,
      subjectPublicKeyInfo: request.subjectPublicKeyInfo,
      extensions: profileExtensions(request.profile, { subject: subjectKeyId, authority: ca.keyId }),
    },
    ca.signer,
  );
  return { der, serial, notBefore, notAfter };
}

/** Creates a self-signed root CA certificate. */
export async function createRootCertificate(options: {
  subject: readonly NameAttribute[];
  signer: Signer;
  notBefore: Date;
  notAfter: Date;
}): Promise<Buffer> {
  const spki = spkiDer(options.signer.publicKey);
  const keyId = keyIdentifier(subjectPublicKeyBits(spki));
  const name = encodeName(options.subject).der;
  return signCertificate(
    {
      serial: randomSerial(),
      issuer: name,
      subject: name,
      notBefore: options.notBefore,
      notAfter: options.notAfter,
      subjectPublicKeyInfo: spki,
      extensions: profileExtensions({ kind: 'root-ca' }, { subject: keyId, authority: keyId }),
    },
    options.signer,
  );
}

/** The subject Name DER of a certificate. */
export function extractSubject(certificate: Buffer): Buffer {
  const [tbs] = children(decodeSingle(certificate));
  if (!tbs) throw new TypeError('certificate without TBSCertificate');
  const fields = children(tbs);
  // version [0] is present in v3 certificates: serial, signature, issuer, validity, subject follow.
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
  const subject = fields[offset + 4];
  if (!subject) throw new TypeError('certificate without subject');
  return subject.raw;
}

/** Whether `certificate` was signed by `ca` (signature check, not just a name match). */
export function isIssuedBy(certificate: X509Certificate, issuer: X509Certificate): boolean {
  return certificate.checkIssued(issuer) && certificate.verify(issuer.publicKey);
}
