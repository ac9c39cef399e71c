import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { link, mkdir, readFile, unlink } from 'node:fs/promises';
import { writeSyncedTemporary } from '../fs-atomic.ts';
import { dirname } from 'node:path';
import type { KeyKind } from './algorithms.ts';
import { PkiError } from './errors.ts';

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
 * PKCS#8 PEM of a private key; with a passphrase, encrypted PKCS#8 (PBES2, AES-256-CBC).
 */
export function privateKeyToPem(key: KeyObject, passphrase?: string): string {
  if (passphrase) {
    return key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string;
  }
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
