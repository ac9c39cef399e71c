import { KeyObject, sign as cryptoSign, webcrypto } from 'node:crypto';
import { generateDeviceKeyPair as generatePair } from './webcrypto-keys.ts';
import type { DeviceKey } from './keys.ts';
import { SdkError } from './errors.ts';
import { deviceIdentityUri, isDeviceId } from './protocol.ts';

export { DEVICE_KEY_ALGORITHM } from './keys.ts';

/** OIDs the SDK writes into a CSR, DER encoded (tag 06, length, arcs). */
const OID_COMMON_NAME_DER = Buffer.from('0603550403', 'hex'); // 2.5.4.3
const OID_EXTENSION_REQUEST_DER = Buffer.from('06092a864886f70d01090e', 'hex'); // 1.2.840.113549.1.9.14
const OID_SUBJECT_ALT_NAME_DER = Buffer.from('0603551d11', 'hex'); // 2.5.29.17
/** AlgorithmIdentifier ecdsa-with-SHA256 (1.2.840.10045.4.3.2), parameters absent (RFC 5758 §3.2). */
const ECDSA_WITH_SHA256_ALGORITHM = Buffer.from('300a06082a8648ce3d040302', 'hex');
/** INTEGER 0: the PKCS#10 version. */
const VERSION_0 = Buffer.from('020100', 'hex');

/** Generates an extractable ECDSA P-256 WebCrypto key pair. */
export const generateDeviceKeyPair = generatePair;

/** What signs a CSR: the public key it certifies and an ECDSA-SHA256 signer producing DER. */
interface CsrSigner {
  readonly spki: Buffer;
  sign(data: Uint8Array): Promise<Buffer>;
}

async function signerOf(key: DeviceKey | webcrypto.CryptoKeyPair): Promise<CsrSigner> {
  if ('spki' in key) return key;
  const privateKey = KeyObject.from(key.privateKey);
  return {
    spki: Buffer.from(await webcrypto.subtle.exportKey('spki', key.publicKey)),
    sign: async (data) => cryptoSign('sha256', data, privateKey),
  };
}

/**
 * Builds a PKCS#10 request for `deviceId`, signed with ECDSA SHA-256 (explicitly: libraries like
 * pkijs default to SHA-1). Subject CN and a SAN URI carry the identity; nothing else is
 * requested, because the server's profile decides every extension. The key signs through its
 * own `sign`, so a secure element can hold it.
 */
export async function createCsr(deviceId: string, key: DeviceKey | webcrypto.CryptoKeyPair): Promise<Uint8Array> {
  if (!isDeviceId(deviceId)) throw new SdkError('SDK_CSR_INVALID', `invalid device id ${deviceId}`);
  const signer = await signerOf(key);
  const spki = signer.spki;
  // A DER SubjectPublicKeyInfo is one SEQUENCE that fills the buffer.
  const spkiLength = derLength(spki.subarray(1));
  if (spki[0] !== 0x30 || 1 + spkiLength.end + spkiLength.length !== spki.length) throw new SdkError('SDK_CSR_INVALID', 'the public key is not DER');
  const sanUri = der(0x86, Buffer.from(deviceIdentityUri(deviceId), 'utf8'));
  const extensionRequest = der(0x30, OID_EXTENSION_REQUEST_DER, der(0x31, der(0x30, der(0x30, OID_SUBJECT_ALT_NAME_DER, der(0x04, der(0x30, sanUri))))));
  // CertificationRequestInfo (RFC 2986 §4.1), written as DER directly: a fixed shape with two
  // variable strings. asn1js objects cost about a millisecond per CSR (measured: 0.97 ms CPU with
  // asn1js, the signature included), which a simulator enrolling thousands of devices feels.
  const info = der(0x30, VERSION_0, der(0x30, der(0x31, der(0x30, OID_COMMON_NAME_DER, der(0x0c, Buffer.from(deviceId, 'utf8'))))), spki, der(0xa0, extensionRequest));
  const signature = await signer.sign(info);
  // BIT STRING with no unused bits (X.690 §8.6.2.2): a leading 0 octet.
  return new Uint8Array(der(0x30, info, ECDSA_WITH_SHA256_ALGORITHM, der(0x03, Buffer.of(0), signature)));
}

/** The length octets of a DER element starting at `input` (after the tag): its value's length and where the value starts. */
function derLength(input: Buffer): { length: number; end: number } {
  const first = input[0] ?? 0;
  if (first < 0x80) return { length: first, end: 1 };
  const count = first & 0x7f;
  let length = 0;
  for (let index = 1; index <= count; index++) length = length * 256 + (input[index] ?? 0);
  return { length, end: 1 + count };
}

/** One DER element: tag, definite length (X.690 §8.1.3, shortest form), then the contents. */
function der(tag: number, ...contents: Buffer[]): Buffer {
  const length = contents.reduce((sum, part) => sum + part.length, 0);
  let header: Buffer;
  if (length < 0x80) header = Buffer.of(tag, length);
  else if (length < 0x100) header = Buffer.of(tag, 0x81, length);
  else if (length < 0x10000) header = Buffer.of(tag, 0x82, length >> 8, length & 0xff);
  else throw new SdkError('SDK_CSR_INVALID', 'a CSR field is too long');
  return Buffer.concat([header, ...contents]);
}