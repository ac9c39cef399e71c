import { join } from 'node:path';
import { issueCertificate, type CertificateAuthority } from '../pki/ca.ts';
import { serialToHex } from '../pki/certificate.ts';
import { generateKeyPair, spkiDer } from '../pki/keys.ts';
import { OID } from '../pki/oids.ts';
import { toPem } from '../pki/pem.ts';
import { SERVICE_NAME } from '../config/config.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { writeCredentialFiles } from './credential-files.ts';

/** A service credential request is invalid. */
export class ServiceCredentialError extends Error {
  override readonly name = 'ServiceCredentialError';
  readonly code = 'SERVICE_INVALID';
}

/** What `fleetgate service issue` made. */
export interface ServiceCredential {
  readonly name: string;
  readonly serial: string;
  readonly expiry: string;
  readonly cert: string;
  readonly key: string;
}

/**
 * Issues an MQTT client certificate for a backend service (a telemetry consumer, a command
 * sender) from the device-issuing CA. The broker admits it only while `broker.services` lists
 * its name, with the topic rules given there.
 */
export async function issueServiceCredential(options: {
  issuing: CertificateAuthority;
  root: Buffer;
  name: string;
  outDir: string;
  validDays: number;
  now?: Date;
}): Promise<ServiceCredential> {
  if (!SERVICE_NAME.test(options.name)) throw new ServiceCredentialError(`invalid service name "${options.name}": lower-case letters, digits and dashes, starting with a letter`);
  if (!Number.isInteger(options.validDays) || options.validDays < 1 || options.validDays > 3650) throw new ServiceCredentialError('--valid-days must be a whole number from 1 to 3650');
  const now = options.now ?? new Date();
  const pair = generateKeyPair('ec-p256');
  const issued = await issueCertificate(options.issuing, {
    subject: [
      { type: OID.organizationName, value: 'fleetgate services' },
      { type: OID.commonName, value: options.name },
    ],
    subjectPublicKeyInfo: spkiDer(pair.publicKey),
    profile: { kind: 'service', serviceName: options.name },
    notBefore: new Date(now.getTime() - 5 * 60_000),
    notAfter: new Date(now.getTime() + options.validDays * 86_400_000),
  });
  await writeCredentialFiles(options.outDir, options.name, pair.privateKey, issued.der, options.issuing.certificate);
  await writeFileAtomic(join(options.outDir, 'root.crt'), toPem('CERTIFICATE', options.root));
  return {
    name: options.name,
    serial: serialToHex(issued.serial),
    expiry: issued.notAfter.toISOString(),
    cert: join(options.outDir, `${options.name}.crt`),
    key: join(options.outDir, `${options.name}.key`),
  };
}
