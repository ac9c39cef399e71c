import test from 'ava';
import { createPublicKey, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { SoftwareKeyProvider } from '../device-sdk/src/keys.ts';

/*
 * The SDK writes a P-256 key's SubjectPublicKeyInfo itself (keys.ts): it must be, byte for byte,
 * what OpenSSL writes for the same key, for every key, and any other key must still get OpenSSL's.
 */

const openSslSpki = (key: KeyObject | string): Buffer => createPublicKey(key).export({ type: 'spki', format: 'der' });
const pem = (key: KeyObject): string => key.export({ type: 'pkcs8', format: 'pem' }) as string;

test('generated keys: the SPKI is what OpenSSL writes, and the stored key signs what that SPKI verifies', async (t) => {
  const keys = new SoftwareKeyProvider();
  for (let i = 0; i < 20; i++) {
    const key = await keys.generate();
    t.deepEqual(key.spki, openSslSpki(key.stored));
    const data = Buffer.from(`csr ${i}`);
    t.true(verify('sha256', data, { key: key.spki, format: 'der', type: 'spki' }, await key.sign(data)));
  }
});

test('a loaded key: P-256 with a coordinate that starts with a zero octet, P-384, secp256k1 and RSA all read as OpenSSL writes them', async (t) => {
  const keys = new SoftwareKeyProvider();
  // A coordinate with a leading zero octet (1 key in 128): JWK keeps its full 32 octets.
  let leadingZero: KeyObject | undefined;
  for (let tries = 0; tries < 20_000 && !leadingZero; tries++) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { x, y } = publicKey.export({ format: 'jwk' });
    if (Buffer.from(x ?? '', 'base64url')[0] === 0 || Buffer.from(y ?? '', 'base64url')[0] === 0) leadingZero = privateKey;
  }
  t.truthy(leadingZero, 'found a P-256 key with a leading zero octet in a coordinate');
  const others: [string, KeyObject][] = [
    ['P-256, leading zero', leadingZero as KeyObject],
    ['P-384', generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey],
    // 32-octet coordinates too, on another curve: must not be written as a P-256 key.
    ['secp256k1', generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey],
    ['RSA', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey],
  ];
  for (const [what, privateKey] of others) {
    const loaded = await keys.load(pem(privateKey));
    t.deepEqual(loaded.spki, openSslSpki(privateKey), what);
  }
});
