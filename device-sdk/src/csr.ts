import { webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { deviceIdentityUri, isDeviceId } from './protocol.ts';

/** OIDs the SDK writes into a CSR. */
const OID_COMMON_NAME = '2.5.4.3';
const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';

/** Key generation parameters for device keys: ECDSA P-256 (WebCrypto names). */
export const DEVICE_KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };

/**
 * Generates the device's key pair on the device. The private key is created non-extractable
 * unless the caller needs to store it (the file store exports it as PKCS#8 once, then keeps it).
 */
export async function generateDeviceKeyPair(extractable = true): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(DEVICE_KEY_ALGORITHM, extractable, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

/** Thrown when a CSR cannot be built. */
export class CsrError extends Error {
  override readonly name = 'CsrError';
  readonly code = 'SDK_CSR_INVALID';
}

/**
 * Builds a PKCS#10 request for `deviceId`, signed with ECDSA SHA-256 (pkijs would default to
 * SHA-1 if not told). Subject CN and a SAN URI carry the identity; nothing else is requested,
 * since the server's profile decides every extension.
 */
export async function createCsr(deviceId: string, keys: webcrypto.CryptoKeyPair): Promise<Uint8Array> {
  if (!isDeviceId(deviceId)) throw new CsrError(`invalid device id ${deviceId}`);
  const request = new pkijs.CertificationRequest();
  request.subject.typesAndValues.push(
    new pkijs.AttributeTypeAndValue({ type: OID_COMMON_NAME, value: new asn1js.Utf8String({ value: deviceId }) }),
  );
  await request.subjectPublicKeyInfo.importKey(keys.publicKey);
  const altNames = new pkijs.GeneralNames({
    names: [new pkijs.GeneralName({ type: 6, value: deviceIdentityUri(deviceId) })],
  });
  request.attributes = [
    new pkijs.Attribute({
      type: OID_EXTENSION_REQUEST,
      values: [
        new pkijs.Extensions({
          extensions: [new pkijs.Extension({ extnID: OID_SUBJECT_ALT_NAME, critical: false, extnValue: altNames.toSchema().toBER(false) })],
        }).toSchema(),
      ],
    }),
  ];
  await request.sign(keys.privateKey, 'SHA-256');
  return new Uint8Array(request.toSchema().toBER(false));
}
