import type { CertificateAuthority } from '../pki/ca.ts';
import { writeBatchFile } from './batch-files.ts';
import { issueClientCredential, type WrittenCredential } from './client-credential.ts';
import { serialKey } from '../pki/serial.ts';

/** Syntax of an operator name: it becomes `urn:fleetgate:operator:<name>` and the audit actor `operator:<name>`. */
export const OPERATOR_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/** Longest operator certificate lifetime, in days. */
export const MAX_OPERATOR_DAYS = 3650;

/** What `fleetgate operator issue` made. */
export type OperatorCredential = WrittenCredential;

/**
 * Issues an operator client certificate for the admin API from the device-issuing CA (the
 * 'operator' profile: clientAuth, SAN `urn:fleetgate:operator:<name>`), offline like
 * `fleetgate service issue`. The key is never written over an existing file.
 *
 * The caller validates `name` and `validDays` (the CLI reports them as usage errors); a bad value
 * here is a programming error.
 */
export async function issueOperatorCredential(options: {
  issuing: CertificateAuthority;
  root: Buffer;
  name: string;
  outDir: string;
  validDays: number;
  now?: Date;
  /** The data directory: the certificate is recorded in `<data>/batches/` for the server to import (revocable one by one). */
  dataDir?: string;
}): Promise<OperatorCredential> {
  if (!OPERATOR_NAME.test(options.name)) throw new TypeError(`invalid operator name ${JSON.stringify(options.name)}`);
  if (!Number.isInteger(options.validDays) || options.validDays < 1 || options.validDays > MAX_OPERATOR_DAYS) {
    throw new TypeError(`invalid operator certificate lifetime ${options.validDays}`);
  }
  const { dataDir, ...rest } = options;
  const credential = await issueClientCredential({ ...rest, organization: 'fleetgate operators', profile: { kind: 'operator', operatorName: options.name } });
  if (dataDir !== undefined) {
    await writeBatchFile(dataDir, { format: 'fleetgate-batch/1', kind: 'operator', name: credential.name, serial: serialKey(credential.serial), issuedAt: credential.issued, expiresAt: credential.expiry });
  }
  return credential;
}
