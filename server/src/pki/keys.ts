import { createCipheriv, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, scryptSync, type KeyObject } from 'node:crypto';
import { link, mkdir, readFile, unlink } from 'node:fs/promises';
import { writeSyncedTemporary } from '../fs-atomic.ts';
import { dirname } from 'node:path';
import type { KeyKind } from './algorithms.ts';
import { integer, octetString, oid, sequence } from './der.ts';
import { PkiError } from './errors.ts';
import { OID } from './oids.ts';
import { toPem } from './pem.ts';

/** A freshly generated key pair. */
export interface KeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** Generates a key pair of the given kind (RSA: 3072 bits unless told). */
export function generateKeyPair(kind: Exclude<KeyKind, 'rsa'> | { kind: 'rsa'; bits: number }): KeyPair {
  if (typeof kind === 'object') return generateKeyPairSync('rsa', { modulusLength: kind.bits });
  switch (kind) {
    case 'ec-p256':
      return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    case 'ec-p384':
      return generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    case 'ec-p521':
      return generateKeyPairSync('ec', { namedCurve: 'secp521r1' });
    case 'ed25519':
      return generateKeyPairSync('ed25519');
  }
}

/**
 * scrypt cost for passphrase-encrypted keys (RFC 7914). N=2^14, r=8, p=5 is one of OWASP's
 * equivalent minimum settings (as strong as N=2^17, p=1) that stays inside OpenSSL's 32 MiB scrypt
 * memory cap (128 * r * N = 16 MiB), so `openssl pkey` and Node's `createPrivateKey` both read the
 * file. About 0.5 s per key on the CI machine, paid once per key at start-up.
 */
export const KEY_SCRYPT = { N: 2 ** 14, r: 8, p: 5 } as const;

/**
 * Encrypted PKCS#8 (RFC 5958 §3) under PBES2 (RFC 8018 §6.2) with scrypt as the key derivation
 * (RFC 7914 §7) and AES-256-CBC. Written by hand because Node's `KeyObject.export({ cipher })`
 * always derives with PBKDF2 at 2,048 iterations and offers no way to raise it.
 */
function encryptPkcs8(key: KeyObject, passphrase: string): Buffer {
  const plain = key.export({ type: 'pkcs8', format: 'der' });
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const derived = scryptSync(passphrase, salt, 32, { ...KEY_SCRYPT, maxmem: 64 * 1024 * 1024 });
  const cipher = createCipheriv('aes-256-cbc', derived, iv);
  const encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);
  const scryptParams = sequence(octetString(salt), integer(BigInt(KEY_SCRYPT.N)), integer(BigInt(KEY_SCRYPT.r)), integer(BigInt(KEY_SCRYPT.p)), integer(32n));
  const pbes2 = sequence(sequence(oid(OID.scrypt), scryptParams), sequence(oid(OID.aes256Cbc), octetString(iv)));
  return sequence(sequence(oid(OID.pbes2), pbes2), octetString(encrypted));
}

/**
 * PKCS#8 PEM of a private key; with a passphrase, encrypted PKCS#8 (PBES2 with scrypt and
 * AES-256-CBC, see {@link KEY_SCRYPT}). Older files written with Node's PBKDF2 default still read.
 */
export function privateKeyToPem(key: KeyObject, passphrase?: string): string {
  if (passphrase) return toPem('ENCRYPTED PRIVATE KEY', encryptPkcs8(key, passphrase));
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** SubjectPublicKeyInfo DER of a key (public, or the public half of a private key). */
export function spkiDer(key: KeyObject): Buffer {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return publicKey.export({ type: 'spki', format: 'der' });
}

/**
 * Writes `contents` to `path` with mode 0600, atomically and never over an existing file:
 * the bytes go to a temporary file that is fsynced, then hard-linked into place (link fails if
 * the target exists), so a crash leaves either no file or the whole file.
 */
export async function writeSecretFileExclusive(path: string, contents: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = await writeSyncedTemporary(path, contents, 0o600);
  try {
    await link(temporary, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new PkiError('PKI_KEY_EXISTS', `${path} already exists; refusing to overwrite a key`, { cause: error });
    }
    throw error;
  } finally {
    await unlink(temporary).catch(() => undefined);
  }
}

/** Reads a PKCS#8 (or SEC1/PKCS#1) PEM private key, decrypting it with `passphrase` if needed. */
export async function readPrivateKey(path: string, passphrase?: string): Promise<KeyObject> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (error) {
    throw new PkiError('PKI_KEY_FILE', `cannot read key file ${path}`, { cause: error });
  }
  return parsePrivateKeyPem(pem, path, passphrase);
}

/** Parses a PEM private key; `label` names it in errors. */
export function parsePrivateKeyPem(pem: string, label: string, passphrase?: string): KeyObject {
  const encrypted = pem.includes('ENCRYPTED PRIVATE KEY');
  if (encrypted && !passphrase) {
    throw new PkiError('PKI_PASSPHRASE', `${label} is encrypted: set FLEETGATE_CA_PASSPHRASE`);
  }
  try {
    return createPrivateKey(encrypted ? { key: pem, format: 'pem', passphrase: passphrase as string } : pem);
  } catch (error) {
    if (encrypted) throw new PkiError('PKI_PASSPHRASE', `cannot decrypt ${label}: wrong passphrase?`, { cause: error });
    throw new PkiError('PKI_KEY_FILE', `${label} is not a PEM private key`, { cause: error });
  }
}
