import { SdkError } from './errors.ts';
import { children, decodeInteger, decodeOid, decodeSingle, expectChildren, expectCount, expectTag, Tag } from './der-reader.ts';

/** id-signedData (RFC 5652 §5.1). */
const SIGNED_DATA = '1.2.840.113549.1.7.2';

/**
 * Certificates (DER) of a base64 certs-only PKCS#7 (RFC 7030 §4.1.3, §4.2.3), in order:
 * ContentInfo { signedData, [0] SignedData { version, digestAlgorithms, encapContentInfo,
 * [0] certificates, [1] crls OPTIONAL, signerInfos } } (RFC 5652 §3, §5.1). Read with the strict
 * DER reader: an extra element, a child that runs past its parent or trailing bytes are refused.
 */
export function parseCertsOnly(base64Body: string): Buffer[] {
  const der = Buffer.from(base64Body.replace(/\s+/g, ''), 'base64');
  try {
    const [type, explicit] = expectCount(decodeSingle(der), Tag.SEQUENCE, 'ContentInfo', 2);
    if (decodeOid(type as NonNullable<typeof type>) !== SIGNED_DATA) throw new Error('not SignedData');
    const [signedData] = expectCount(explicit, 0xa0, 'ContentInfo content', 1);
    const fields = expectCount(signedData, Tag.SEQUENCE, 'SignedData', 5, 6);
    const [version, digestAlgorithms, encapContentInfo, certificates, ...rest] = fields;
    // RFC 5652 §5.1: version 1 for id-data content with X.509 certificates only.
    if (decodeInteger(version, 'SignedData version') !== 1n) throw new Error('SignedData version must be 1');
    expectChildren(digestAlgorithms, Tag.SET, 'digestAlgorithms');
    expectChildren(encapContentInfo, Tag.SEQUENCE, 'encapContentInfo');
    const [crls, signerInfos] = rest.length === 2 ? rest : [undefined, rest[0]];
    if (crls) expectTag(crls, 0xa1, 'crls');
    expectChildren(signerInfos, Tag.SET, 'signerInfos');
    const out = expectChildren(certificates, 0xa0, 'certificates').map((certificate) => {
      // Only X.509 certificates (not the other CertificateChoices) and each one whole DER.
      expectCount(certificate, Tag.SEQUENCE, 'Certificate', 3);
      children(children(certificate)[0] as NonNullable<typeof certificate>);
      return Buffer.from(certificate.raw);
    });
    if (out.length === 0) throw new Error('no certificates');
    return out;
  } catch (error) {
    throw new SdkError('SDK_BAD_RESPONSE', 'the server answer is not a certs-only PKCS#7', { cause: error });
  }
}
