import { KeyObject, sign as cryptoSign, webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import { generateDeviceKeyPair as generatePair } from './webcrypto-keys.ts';
import type { DeviceKey } from './keys.ts';
import { SdkError } from './errors.ts';
import { deviceIdentityUri, isDeviceId } from './protocol.ts';

export { DEVICE_KEY_ALGORITHM } from './keys.ts';

/** OIDs the SDK writes into a CSR. */
const OID_COMMON_NAME = '2.5.4.3';
const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

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
  const spki = asn1js.fromBER(new Uint8Array(signer.spki));
  if (spki.offset === -1) throw new SdkError('SDK_CSR_INVALID', 'the public key is not DER');
  const sanUri = new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 6 }, valueHex: new TextEncoder().encode(deviceIdentityUri(deviceId)) });
  const extensionRequest = new asn1js.Sequence({
    value: [
      new asn1js.ObjectIdentifier({ value: OID_EXTENSION_REQUEST }),
      new asn1js.Set({
        value: [
          new asn1js.Sequence({
            value: [
              new asn1js.Sequence({
                value: [
                  new asn1js.ObjectIdentifier({ value: OID_SUBJECT_ALT_NAME }),
                  new asn1js.OctetString({ valueHex: new asn1js.Sequence({ value: [sanUri] }).toBER(false) }),
                ],
              }),
            ],
          }),
        ],
      }),
    ],
  });
  // CertificationRequestInfo (RFC 2986 §4.1), built directly with asn1js: the pkijs schema layer
  // costs a millisecond per CSR, which a simulator enrolling thousands of devices feels.
  const info = new asn1js.Sequence({
    value: [
      new asn1js.Integer({ value: 0 }),
      new asn1js.Sequence({
        value: [
          new asn1js.Set({
            value: [new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: OID_COMMON_NAME }), new asn1js.Utf8String({ value: deviceId })] })],
          }),
        ],
      }),
      spki.result,
      new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [extensionRequest] }),
    ],
  });
  const tbs = new Uint8Array(info.toBER(false));
  const signature = await signer.sign(tbs);
  const request = new asn1js.Sequence({
    value: [
      asn1js.fromBER(tbs).result,
      new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: OID_ECDSA_WITH_SHA256 })] }),
      new asn1js.BitString({ valueHex: new Uint8Array(signature) }),
    ],
  });
  return new Uint8Array(request.toBER(false));
}