import { X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';

/**
 * Certificates of a base64 certs-only PKCS#7 body (RFC 7030 §4.2.3), parsed with pkijs: a parser
 * independent of the server's own DER encoder.
 */
function certificatesOf(base64Body: Buffer): X509Certificate[] {
  const der = Buffer.from(base64Body.toString('latin1').replace(/\s+/g, ''), 'base64');
  const asn1 = asn1js.fromBER(new Uint8Array(der));
  if (asn1.offset === -1) throw new Error('the response is not BER');
  const contentInfo = new pkijs.ContentInfo({ schema: asn1.result });
  if (contentInfo.contentType !== pkijs.ContentInfo.SIGNED_DATA) throw new Error(`the response is not SignedData (${contentInfo.contentType})`);
  const signedData = new pkijs.SignedData({ schema: contentInfo.content });
  return (signedData.certificates ?? [])
    .filter((certificate): certificate is pkijs.Certificate => certificate instanceof pkijs.Certificate)
    .map((certificate) => new X509Certificate(Buffer.from(certificate.toSchema().toBER(false))));
}

/**
 * Checks that an enrollment answer really is a certificate for `deviceId` signed by the issuing
 * CA. Run on the warm-up answers only, outside the timed phase: a benchmark that counted fast
 * wrong answers as enrollments would be worse than none.
 */
export function checkIssuedCertificate(base64Body: Buffer, deviceId: string, issuing: X509Certificate): void {
  const [leaf] = certificatesOf(base64Body);
  if (!leaf) throw new Error(`the answer for ${deviceId} holds no certificate`);
  const commonName = leaf.subject.split('\n').find((line) => line.startsWith('CN='))?.slice(3);
  if (commonName !== deviceId) throw new Error(`the certificate for ${deviceId} names CN=${commonName ?? 'none'}`);
  if (!leaf.checkIssued(issuing) || !leaf.verify(issuing.publicKey)) {
    throw new Error(`the certificate for ${deviceId} is not signed by the issuing CA`);
  }
}
