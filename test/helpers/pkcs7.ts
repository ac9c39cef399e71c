import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';

/**
 * Certificates of a base64 certs-only PKCS#7 response, parsed with pkijs (an implementation
 * independent of the server's DER encoder). Returned as DER, in the order they appear.
 */
export function certificatesFromCertsOnly(base64Body: string): Buffer[] {
  const der = Buffer.from(base64Body.replace(/\s+/g, ''), 'base64');
  const asn1 = asn1js.fromBER(new Uint8Array(der).buffer);
  if (asn1.offset === -1) throw new Error('not BER');
  const contentInfo = new pkijs.ContentInfo({ schema: asn1.result });
  if (contentInfo.contentType !== pkijs.ContentInfo.SIGNED_DATA) throw new Error(`not SignedData: ${contentInfo.contentType}`);
  const signedData = new pkijs.SignedData({ schema: contentInfo.content });
  return (signedData.certificates ?? []).map((certificate) => Buffer.from((certificate as pkijs.Certificate).toSchema().toBER(false)));
}
