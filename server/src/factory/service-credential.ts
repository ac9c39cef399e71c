import type { CertificateAuthority } from '../pki/ca.ts';
import { SERVICE_NAME } from '../config/schema.ts';
import { writeBatchFile } from './batch-files.ts';
import { serialKey } from '../pki/serial.ts';
import { issueClientCredential, type WrittenCredential } from './client-credential.ts';
import { FleetgateError } from '@fleetgate/device-sdk/errors';
import type { OperatorCode } from '../cli/errors.ts';

/** A service credential request is invalid. */
export class ServiceCredentialError extends FleetgateError<OperatorCode<'SERVICE_INVALID'>> {
  override readonly name = 'ServiceCredentialError';
  constructor(message: string, options?: ErrorOptions) {
    super('SERVICE_INVALID', message, options);
  }
}

/** What `fleetgate service issue` made. */
export type ServiceCredential = WrittenCredential;

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
  /** The data directory: the certificate is recorded in `<data>/batches/` for the server to import (revocable one by one). */
  dataDir?: string;
}): Promise<ServiceCredential> {
  if (!SERVICE_NAME.test(options.name)) throw new ServiceCredentialError(`invalid service name "${options.name}": lower-case letters, digits and dashes, starting with a letter`);
  if (!Number.isInteger(options.validDays) || options.validDays < 1 || options.validDays > 3650) throw new ServiceCredentialError('--valid-days must be a whole number from 1 to 3650');
  const { dataDir, ...rest } = options;
  const credential = await issueClientCredential({ ...rest, organization: 'fleetgate services', profile: { kind: 'service', serviceName: options.name } });
  if (dataDir !== undefined) {
    await writeBatchFile(dataDir, { format: 'fleetgate-batch/1', kind: 'service', name: credential.name, serial: serialKey(credential.serial), issuedAt: credential.issued, expiresAt: credential.expiry });
  }
  return credential;
}
