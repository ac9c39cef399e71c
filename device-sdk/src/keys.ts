import { createPrivateKey, createPublicKey, KeyObject, sign as cryptoSign, webcrypto } from 'node:crypto';

/** Key generation parameters for device keys: ECDSA P-256 (WebCrypto names). */
export const DEVICE_KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };

/** Private key material the TLS stack can use: a PEM key, or an OpenSSL engine reference (HSM, TPM, secure element). */
export type TlsKeyMaterial =
  | { readonly key: string }
  | { readonly privateKeyEngine: string; readonly privateKeyIdentifier: string };

/**
 * A device key. The SDK never needs the private key bytes: it asks the key to sign the CSR and
 * hands the TLS stack whatever the key says identifies it. A secure element or TPM implements
 * this with its own API for `sign` and an OpenSSL engine reference for `tls`.
 */
export interface DeviceKey {
  /** SubjectPublicKeyInfo DER of the public key. */
  readonly spki: Buffer;
  /** ECDSA-SHA256 signature of `data`, DER encoded (as X.509/PKCS#10 carry it). */
  sign(data: Uint8Array): Promise<Buffer>;
  readonly tls: TlsKeyMaterial;
  /** What the credential store keeps to load this key again: PKCS#8 PEM, or a hardware reference. */
  readonly stored: string;
}

/** Makes and reloads device keys. */
export interface KeyProvider {
  generate(): Promise<DeviceKey>;
  load(stored: string): Promise<DeviceKey>;
}

function softwareKey(privateKey: KeyObject, pem: string, spki: Buffer): DeviceKey {
  return {
    spki,
    async sign(data) {
      return cryptoSign('sha256', data, privateKey);
    },
    tls: { key: pem },
    stored: pem,
  };
}

/**
 * A stored software key, parsed only when something needs more than its PEM: TLS takes the PEM
 * as it is, and parsing a key (OpenSSL 3 decoders) costs a few hundred microseconds.
 */
function lazySoftwareKey(pem: string): DeviceKey {
  let parsed: { privateKey: KeyObject; spki: Buffer } | undefined;
  const parse = (): { privateKey: KeyObject; spki: Buffer } => {
    if (!parsed) {
      const privateKey = createPrivateKey(pem);
      parsed = { privateKey, spki: spkiOf(createPublicKey(privateKey)) };
    }
    return parsed;
  };
  return {
    get spki() {
      return parse().spki;
    },
    async sign(data) {
      return cryptoSign('sha256', data, parse().privateKey);
    },
    tls: { key: pem },
    stored: pem,
  };
}

/**
 * SubjectPublicKeyInfo of a P-256 key up to its point (RFC 5480 §2): SEQUENCE { SEQUENCE {
 * id-ecPublicKey, prime256v1 }, BIT STRING { 00, 04 (uncompressed) ... } }, what OpenSSL writes.
 */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex');

/**
 * A public key's SPKI DER. A P-256 key's is written from its JWK coordinates: 7 µs, where OpenSSL
 * 3's `export({ type: 'spki', format: 'der' })` (its encoder framework) costs 156 µs (measured in
 * process, Node 20.20, OpenSSL 3.0.22). `generate()` as a whole: 315-350 against 387-441 µs of
 * process CPU per key (3 alternating rounds of 2,000 keys). Any other key goes to OpenSSL.
 */
function spkiOf(publicKey: KeyObject): Buffer {
  const jwk = publicKey.asymmetricKeyType === 'ec' ? publicKey.export({ format: 'jwk' }) : undefined;
  const point = [Buffer.from(jwk?.x ?? '', 'base64url'), Buffer.from(jwk?.y ?? '', 'base64url')];
  // RFC 7518 §6.2.1.2: each coordinate is the full 32 octets for P-256. Any other key: OpenSSL.
  if (jwk?.crv !== 'P-256' || point.some((coordinate) => coordinate.length !== 32)) return publicKey.export({ type: 'spki', format: 'der' });
  return Buffer.concat([P256_SPKI_PREFIX, ...point]);
}

/**
 * Keys in software: ECDSA P-256 generated with WebCrypto on the device. The private key never
 * leaves the device; it is kept as PKCS#8 PEM in the credential store (mode 0600 in the file store).
 */
export class SoftwareKeyProvider implements KeyProvider {
  async generate(): Promise<DeviceKey> {
    const pair = (await webcrypto.subtle.generateKey(DEVICE_KEY_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    // KeyObject.from wraps the same key without encoding and decoding it again.
    const privateKey = KeyObject.from(pair.privateKey);
    const spki = spkiOf(KeyObject.from(pair.publicKey));
    return softwareKey(privateKey, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, spki);
  }

  async load(stored: string): Promise<DeviceKey> {
    return lazySoftwareKey(stored);
  }
}
