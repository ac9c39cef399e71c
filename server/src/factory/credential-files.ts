import { join } from 'node:path';
import { writeFileAtomic } from '../fs-atomic.ts';
import { privateKeyToPem, writeSecretFileExclusive } from '../pki/keys.ts';
import { toPem } from '../pki/pem.ts';
import type { KeyObject } from 'node:crypto';

/**
 * Writes `<name>.key` (PKCS#8, mode 0600, never over an existing file) and `<name>.crt` (the
 * certificate followed by its issuing CA). Key first: a certificate without its key is useless,
 * a key without a certificate merely unused.
 */
export async function writeCredentialFiles(outDir: string, name: string, privateKey: KeyObject, certificate: Buffer, issuer: Buffer): Promise<void> {
  await writeSecretFileExclusive(join(outDir, `${name}.key`), privateKeyToPem(privateKey));
  await writeFileAtomic(join(outDir, `${name}.crt`), toPem('CERTIFICATE', certificate) + toPem('CERTIFICATE', issuer));
}
