import { webcrypto } from 'node:crypto';
import { DEVICE_KEY_ALGORITHM } from './keys.ts';

/** Generates an ECDSA P-256 key pair with WebCrypto (extractable unless told otherwise). */
export async function generateDeviceKeyPair(extractable = true): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(DEVICE_KEY_ALGORITHM, extractable, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}
