import { SdkError } from './errors.ts';
import { childrenOf, readTlv } from './der-reader.ts';

/** id-signedData (RFC 5652 §5.1), DER content bytes of the OID. */
const SIGNED_DATA = Buffer.from('2a864886f70d010702', 'hex');

/**
 * Certificates (DER) of a base64 certs-only PKCS#7 (RFC 7030 §4.1.3, §4.2.3), in order:
 * ContentInfo { signedData, [0] SignedData { version, digestAlgorithms, encapContentInfo,
 * [0] certificates, ... } }.
 */
export function parseCertsOnly(base64Body: string): Buffer[] {
  const der = Buffer.from(base64Body.replace(/\s+/g, ''), 'base64');
  try {
    const contentInfo = readTlv(der, 0);
    if (contentInfo.tag !== 0x30 || contentInfo.end !== der.length) throw new Error('not a ContentInfo');
    const [type, explicit] = childrenOf(der, contentInfo);
    if (!type || type.tag !== 0x06 || !der.subarray(type.contentStart, type.end).equals(SIGNED_DATA)) throw new Error('not SignedData');
    if (!explicit || explicit.tag !== 0xa0) throw new Error('no content');
    const [signedData] = childrenOf(der, explicit);
    if (!signedData || signedData.tag !== 0x30) throw new Error('SignedData is not a SEQUENCE');
    const certificates = childrenOf(der, signedData).find((field) => field.tag === 0xa0);
    if (!certificates) throw new Error('no certificates');
    const out = childrenOf(der, certificates)
      .filter((certificate) => certificate.tag === 0x30)
      .map((certificate) => Buffer.from(der.subarray(certificate.start, certificate.end)));
    if (out.length === 0) throw new Error('no certificates');
    return out;
  } catch (error) {
    throw new SdkError('SDK_BAD_RESPONSE', 'the server answer is not a certs-only PKCS#7', { cause: error });
  }
}
