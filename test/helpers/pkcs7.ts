import { parseCertsOnly } from '../../device-sdk/src/pkcs7.ts';

/**
 * Certificates of a base64 certs-only PKCS#7 response, parsed by the SDK's pkijs-based reader
 * (an implementation independent of the server's DER encoder). DER, in the order they appear.
 */
export function certificatesFromCertsOnly(base64Body: string): Buffer[] {
  return parseCertsOnly(base64Body);
}
