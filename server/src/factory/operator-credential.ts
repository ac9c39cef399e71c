import { join } from 'node:path';
import { issueCertificate, type CertificateAuthority } from '../pki/ca.ts';
import { serialToHex } from '../pki/certificate.ts';
import { generateKeyPair, spkiDer } from '../pki/keys.ts';
import { OID } from '../pki/oids.ts';
import { toPem } from '../pki/pem.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { writeCredentialFiles } from './credential-files.ts';

/** Syntax of an operator name: it becomes `urn:fleetgate:operator:<name>` and the audit actor `operator:<name>`. */
export const OPERATOR_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/** Longest operator certificate lifetime, in days. */
export const MAX_OPERATOR_DAYS = 3650;

/** What `fleetgate operator issue` made. */
export interface OperatorCredential {
  readonly name: string;
  readonly serial: string;
  readonly expiry: string;
  /** `<out>/<name>.crt`: the certificate followed by the issuing CA. */
  readonly cert: string;
  /** `<out>/<name>.key`: PKCS#8 PEM, mode 0600. */
  readonly key: string;
  /** `<out>/root.crt`: the trust anchor that verifies the admin API's server certificate. */
  readonly root: string;
}

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
}): Promise<OperatorCredential> {
  if (!OPERATOR_NAME.test(options.name)) throw new TypeError(`invalid operator name ${JSON.stringify(options.name)}`);
  if (!Number.isInteger(options.validDays) || options.validDays < 1 || options.validDays > MAX_OPERATOR_DAYS) {
    throw new TypeError(`invalid operator certificate lifetime ${options.validDays}`);
  }
  const now = options.now ?? new Date();
  const pair = generateKeyPair('ec-p256');
  const issued = await issueCertificate(options.issuing, {
    subject: [
      { type: OID.organizationName, value: 'fleetgate operators' },
      { type: OID.commonName, value: options.name },
    ],
    subjectPublicKeyInfo: spkiDer(pair.publicKey),
    profile: { kind: 'operator', operatorName: options.name },
    notBefore: new Date(now.getTime() - 5 * 60_000),
    notAfter: new Date(now.getTime() + options.validDays * 86_400_000),
  });
  await writeCredentialFiles(options.outDir, options.name, pair.privateKey, issued.der, options.issuing.certificate);
  const root = join(options.outDir, 'root.crt');
  await writeFileAtomic(root, toPem('CERTIFICATE', options.root));
  return {
    name: options.name,
    serial: serialToHex(issued.serial),
    expiry: issued.notAfter.toISOString(),
    cert: join(options.outDir, `${options.name}.crt`),
    key: join(options.outDir, `${options.name}.key`),
    root,
  };
}
