import { verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { extractSubject, isIssuedBy } from './ca.ts';
import { algorithmMatchesKey, describeKey, SIGNATURE_ALGORITHMS, type KeyDescription, type SignatureAlgorithm } from './algorithms.ts';
import { children, decodeBitStringBytes, decodeNamedBits, decodeOid, decodeSingle, Tag, type DerNode } from './der.ts';
import { OID } from './oids.ts';

/** The parts of a certificate that an issuer check reads; nothing else is interpreted. */
interface CertificateParts {
  /** TBSCertificate as encoded: what the signature covers. */
  readonly tbs: Buffer;
  /** TBSCertificate.signature and Certificate.signatureAlgorithm (RFC 5280 §4.1.1.2: the same). */
  readonly innerAlgorithm: Buffer;
  readonly outerAlgorithm: Buffer;
  readonly signature: Buffer;
  readonly issuer: Buffer;
  /** extnValue contents by extension OID; undefined when an extension appears twice. */
  readonly extensions: ReadonlyMap<string, Buffer> | undefined;
}

/** Splits a certificate (RFC 5280 §4.1); undefined for anything that does not have its shape. */
function certificateParts(der: Buffer): CertificateParts | undefined {
  try {
    const root = decodeSingle(der);
    const [tbs, outer, signature, ...extra] = children(root);
    if (root.tag !== Tag.SEQUENCE || !tbs || !outer || !signature || extra.length > 0 || tbs.tag !== Tag.SEQUENCE) return undefined;
    const fields = children(tbs);
    // v3: version [0], serial, signature, issuer, validity, subject, spki, then [1] [2] [3].
    const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
    const inner = fields[offset + 1];
    const issuer = fields[offset + 2];
    if (!inner || !issuer || inner.tag !== Tag.SEQUENCE || issuer.tag !== Tag.SEQUENCE) return undefined;
    const extensionsField = fields.slice(offset + 6).find((field) => field.tag === 0xa3);
    return {
      tbs: tbs.raw,
      innerAlgorithm: inner.raw,
      outerAlgorithm: outer.raw,
      signature: decodeBitStringBytes(signature, 'signatureValue'),
      issuer: issuer.raw,
      extensions: extensionsField ? extensionValues(extensionsField) : new Map(),
    };
  } catch {
    return undefined;
  }
}

/** extnValue contents by OID of an explicit [3] Extensions field; undefined on a duplicate. */
function extensionValues(field: DerNode): Map<string, Buffer> | undefined {
  const [list] = children(field);
  const out = new Map<string, Buffer>();
  for (const extension of list ? children(list) : []) {
    const parts = children(extension);
    const id = parts[0];
    const value = parts.at(-1);
    if (!id || !value || value.tag !== Tag.OCTET_STRING) return undefined;
    const oid = decodeOid(id);
    if (out.has(oid)) return undefined;
    out.set(oid, value.content);
  }
  return out;
}

/** The keyIdentifier of an AuthorityKeyIdentifier holding only one (RFC 5280 §4.2.1.1). */
function onlyKeyIdentifier(value: Buffer): Buffer | undefined {
  const node = decodeSingle(value);
  const parts = node.tag === Tag.SEQUENCE ? children(node) : [];
  return parts.length === 1 && parts[0]?.tag === 0x80 ? parts[0].content : undefined;
}

/**
 * "Was this certificate signed by this CA?", answered for one CA many times. The same question as
 * `certificate.checkIssued(ca) && certificate.verify(ca.publicKey)` (pki/ca.ts isIssuedBy), without
 * making an `X509Certificate` of the certificate: OpenSSL 3 spends ~0.2 ms decoding one, more than
 * the signature check itself, and an enrollment asks for every request.
 *
 * The common shape is checked here, strictly: the certificate names this CA's subject as its issuer
 * (the same bytes), its AuthorityKeyIdentifier, if any, is exactly this CA's key id, the two
 * signature AlgorithmIdentifiers are the same encoding of an algorithm fleetgate knows that fits the
 * CA's key, and the CA may sign certificates (keyUsage absent or with keyCertSign). The signature is
 * then verified by OpenSSL over the TBSCertificate bytes with the CA's public key: the proof that the
 * CA's key signed this certificate, as in X509_verify. Anything else (another encoding of the same
 * name, an AKI naming issuer and serial, an algorithm fleetgate does not use) goes to OpenSSL's own
 * checkIssued and verify, so no certificate is accepted here that OpenSSL would refuse for its issuer
 * or signature.
 */
export class IssuerCheck {
  private readonly subject: Buffer;
  private readonly publicKey: KeyObject;
  private readonly key: KeyDescription | undefined;
  /** The CA's subjectKeyIdentifier, if it has one. */
  private readonly keyId: Buffer | undefined;
  /** keyUsage absent, or present with keyCertSign (bit 5), as OpenSSL requires of an issuer. */
  private readonly maySign: boolean;

  constructor(readonly ca: X509Certificate) {
    const parts = certificateParts(ca.raw);
    this.subject = extractSubject(ca.raw);
    this.publicKey = ca.publicKey;
    this.key = describeKey(this.publicKey);
    const ski = parts?.extensions?.get(OID.subjectKeyIdentifier);
    this.keyId = ski ? decodeSingle(ski).content : undefined;
    const keyUsage = parts?.extensions?.get(OID.keyUsage);
    this.maySign = parts?.extensions !== undefined && (keyUsage === undefined || keyCertSignAllowed(keyUsage));
  }

  /** Whether `certificate` (DER) was signed by this CA: a signature check, not a name match. */
  issued(certificate: Buffer): boolean {
    const parts = certificateParts(certificate);
    const algorithm = parts ? this.commonShape(parts) : undefined;
    if (!parts || !algorithm) return this.checkedByOpenSsl(certificate);
    try {
      return cryptoVerify(algorithm.hash, parts.tbs, this.publicKey, parts.signature);
    } catch {
      return false;
    }
  }

  /** The signature algorithm when `parts` has the shape checked here, else undefined. */
  private commonShape(parts: CertificateParts): SignatureAlgorithm | undefined {
    if (!this.maySign || !this.key || !parts.extensions) return undefined;
    if (!parts.issuer.equals(this.subject) || !parts.innerAlgorithm.equals(parts.outerAlgorithm)) return undefined;
    const aki = parts.extensions.get(OID.authorityKeyIdentifier);
    if (aki !== undefined) {
      const keyId = safely(() => onlyKeyIdentifier(aki));
      if (!keyId || !this.keyId || !keyId.equals(this.keyId)) return undefined;
    }
    const algorithmOid = safely(() => decodeOid(children(decodeSingle(parts.outerAlgorithm))[0] as DerNode));
    const algorithm = algorithmOid === undefined ? undefined : SIGNATURE_ALGORITHMS.get(algorithmOid);
    if (!algorithm || !algorithm.der.equals(parts.outerAlgorithm) || !algorithmMatchesKey(algorithm.oid, this.key)) return undefined;
    return algorithm;
  }

  private checkedByOpenSsl(certificate: Buffer): boolean {
    let x509: X509Certificate;
    try {
      x509 = new X509Certificate(certificate);
    } catch {
      return false;
    }
    return isIssuedBy(x509, this.ca);
  }
}

/** Whether a keyUsage extnValue has keyCertSign (bit 5, RFC 5280 §4.2.1.3). */
function keyCertSignAllowed(value: Buffer): boolean {
  return safely(() => decodeNamedBits(decodeSingle(value), 'keyUsage').includes(5)) ?? false;
}

function safely<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}
