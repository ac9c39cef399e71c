import { SdkError } from './errors.ts';
import { checkTree, decodeInteger, decodeOid, decodeSingle, expectChildren, expectCount, Tag } from './der-reader.ts';

/** id-signedData (RFC 5652 §5.1). */
const SIGNED_DATA = '1.2.840.113549.1.7.2';
/** id-data (RFC 5652 §4). */
const DATA = '1.2.840.113549.1.7.1';

/**
 * Certificates (DER) of a base64 certs-only PKCS#7 (RFC 7030 §4.1.3, §4.2.3), in order:
 * ContentInfo { signedData, [0] SignedData { version, digestAlgorithms, encapContentInfo,
 * [0] certificates, signerInfos } } (RFC 5652 §3, §5.1). Read with the strict
 * DER reader: an extra element, a child that runs past its parent or trailing bytes are refused.
 */
export function parseCertsOnly(base64Body: string): Buffer[] {
  const der = Buffer.from(base64Body.replace(/\s+/g, ''), 'base64');
  try {
    const [type, explicit] = expectCount(decodeSingle(der), Tag.SEQUENCE, 'ContentInfo', 2);
    if (decodeOid(type as NonNullable<typeof type>) !== SIGNED_DATA) throw new Error('not SignedData');
    const [signedData] = expectCount(explicit, 0xa0, 'ContentInfo content', 1);
    // A degenerate SignedData (RFC 7030 §4.1.3, RFC 5751 §3.8): no digest algorithms, no content,
    // no CRLs (fleetgate never sends them), no signers. Anything else is not what a server sends.
    const [version, digestAlgorithms, encapContentInfo, certificates, signerInfos] = expectCount(signedData, Tag.SEQUENCE, 'SignedData', 5);
    // RFC 5652 §5.1: version 1 for id-data content with X.509 certificates only.
    if (decodeInteger(version, 'SignedData version') !== 1n) throw new Error('SignedData version must be 1');
    expectCount(digestAlgorithms, Tag.SET, 'digestAlgorithms', 0);
    const [contentType] = expectCount(encapContentInfo, Tag.SEQUENCE, 'encapContentInfo', 1);
    if (decodeOid(contentType as NonNullable<typeof contentType>) !== DATA) throw new Error('encapContentInfo is not id-data');
    expectCount(signerInfos, Tag.SET, 'signerInfos', 0);
    const out = expectChildren(certificates, 0xa0, 'certificates').map((certificate) => {
      // Only X.509 certificates (not the other CertificateChoices), each one strict DER throughout.
      expectCount(certificate, Tag.SEQUENCE, 'Certificate', 3);
      checkTree(certificate);
      return Buffer.from(certificate.raw);
    });
    if (out.length === 0) throw new Error('no certificates');
    return out;
  } catch (error) {
    throw new SdkError('SDK_BAD_RESPONSE', 'the server answer is not a certs-only PKCS#7', { cause: error });
  }
}
