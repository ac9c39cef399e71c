import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { loadAuthority, type CertificateAuthority } from '../pki/ca.ts';
import { readPrivateKey } from '../pki/keys.ts';
import { fromPem } from '../pki/pem.ts';
import { KeyObjectSigner } from '../pki/signer.ts';
import { createPublicKey } from 'node:crypto';
import { dataLayout, type AuthorityName } from './layout.ts';
import { FleetgateError } from '@fleetgate/device-sdk/errors';
import type { OperatorCode } from '../cli/errors.ts';

/** The data directory has not been initialised, or is missing a file. */
export class DataDirError extends FleetgateError<OperatorCode<'DATA_NOT_INITIALIZED' | 'DATA_FILE_INVALID'>> {
  override readonly name = 'DataDirError';
}

/** Environment variable that holds the CA key passphrase. */
export const PASSPHRASE_ENV = 'FLEETGATE_CA_PASSPHRASE';

/** Reads a PEM certificate file as DER. */
export async function readCertificateFile(path: string): Promise<Buffer> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (error) {
    throw new DataDirError('DATA_NOT_INITIALIZED', `${path} is missing: run \`fleetgate init\` first`, { cause: error });
  }
  try {
    const der = fromPem(pem, 'CERTIFICATE');
    new X509Certificate(der);
    return der;
  } catch (error) {
    throw new DataDirError('DATA_FILE_INVALID', `${path} is not a PEM certificate`, { cause: error });
  }
}

/** Loads one CA (certificate and key) from the data directory. */
export async function loadAuthorityFromDataDir(dataDir: string, name: AuthorityName, passphrase = process.env[PASSPHRASE_ENV]): Promise<CertificateAuthority> {
  const layout = dataLayout(dataDir);
  const certificate = await readCertificateFile(layout.authorityCert(name));
  const privateKey = await readPrivateKey(layout.authorityKey(name), passphrase);
  const authority = loadAuthority(certificate, new KeyObjectSigner(privateKey, createPublicKey(privateKey)));
  if (!authority.x509.checkPrivateKey(privateKey)) {
    throw new DataDirError('DATA_FILE_INVALID', `${layout.authorityKey(name)} does not match ${layout.authorityCert(name)}`);
  }
  return authority;
}
