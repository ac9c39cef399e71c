import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { SdkError } from './errors.ts';

/** Certificates (DER) of a base64 certs-only PKCS#7 (RFC 7030 §4.1.3, §4.2.3), in order. */
export function parseCertsOnly(base64Body: string): Buffer[] {
  const der = Buffer.from(base64Body.replace(/\s+/g, ''), 'base64');
  try {
    const asn1 = asn1js.fromBER(new Uint8Array(der));
    if (asn1.offset === -1) throw new Error(asn1.result.error);
    const contentInfo = new pkijs.ContentInfo({ schema: asn1.result });
    if (contentInfo.contentType !== pkijs.ContentInfo.SIGNED_DATA) throw new Error(`content type ${contentInfo.contentType}`);
    const signedData = new pkijs.SignedData({ schema: contentInfo.content });
    const certificates = (signedData.certificates ?? []).filter((entry): entry is pkijs.Certificate => entry instanceof pkijs.Certificate);
    if (certificates.length === 0) throw new Error('no certificates');
    return certificates.map((certificate) => Buffer.from(certificate.toSchema().toBER(false)));
  } catch (error) {
    throw new SdkError('SDK_BAD_RESPONSE', 'the server answer is not a certs-only PKCS#7', { cause: error });
  }
}
