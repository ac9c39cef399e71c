import { join } from 'node:path';
import { issueCertificate, type CertificateAuthority } from '../pki/ca.ts';
import { formatSerial } from '../pki/serial.ts';
import { generateKeyPair, spkiDer } from '../pki/keys.ts';
import { OID } from '../pki/oids.ts';
import { toPem } from '../pki/pem.ts';
import type { Profile } from '../pki/profiles.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { writeCredentialFiles } from './credential-files.ts';

/** A client credential written to disk: `<name>.crt`, `<name>.key` (0600) and `root.crt`. */
export interface WrittenCredential {
  readonly name: string;
  /** In openssl's form, as `openssl x509 -noout -serial` prints it (pki/serial.ts). */
  readonly serial: string;
  /** notBefore, ISO 8601. */
  readonly issued: string;
  readonly expiry: string;
  /** `<out>/<name>.crt`: the certificate followed by the issuing CA. */
  readonly cert: string;
  /** `<out>/<name>.key`: PKCS#8 PEM, mode 0600. */
  readonly key: string;
  /** `<out>/root.crt`: the trust anchor. */
  readonly root: string;
}

/**
 * Issues a non-device client certificate (operator, backend service) from the issuing CA,
 * offline, and writes it with its key and the root. The key is never written over an existing
 * file. Callers validate the name and lifetime (their errors differ).
 */
export async function issueClientCredential(options: {
  issuing: CertificateAuthority;
  root: Buffer;
  name: string;
  organization: string;
  profile: Profile;
  outDir: string;
  validDays: number;
  now?: Date;
}): Promise<WrittenCredential> {
  const now = options.now ?? new Date();
  const pair = generateKeyPair('ec-p256');
  const issued = await issueCertificate(options.issuing, {
    subject: [
      { type: OID.organizationName, value: options.organization },
      { type: OID.commonName, value: options.name },
    ],
    subjectPublicKeyInfo: spkiDer(pair.publicKey),
    profile: options.profile,
    notBefore: new Date(now.getTime() - 5 * 60_000),
    notAfter: new Date(now.getTime() + options.validDays * 86_400_000),
  });
  await writeCredentialFiles(options.outDir, options.name, pair.privateKey, issued.der, options.issuing.certificate);
  const root = join(options.outDir, 'root.crt');
  await writeFileAtomic(root, toPem('CERTIFICATE', options.root));
  return {
    name: options.name,
    serial: formatSerial(issued.serial),
    issued: issued.notBefore.toISOString(),
    expiry: issued.notAfter.toISOString(),
    cert: join(options.outDir, `${options.name}.crt`),
    key: join(options.outDir, `${options.name}.key`),
    root,
  };
}
