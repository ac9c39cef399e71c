import { randomBytes } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deviceIdentityUri, MODEL_PATTERN } from '@fleetgate/device-sdk/protocol';
import { issueCertificate, type CertificateAuthority } from '../pki/ca.ts';
import { formatSerial } from '../pki/serial.ts';
import { generateKeyPair, spkiDer } from '../pki/keys.ts';
import { OID } from '../pki/oids.ts';
import { toPem } from '../pki/pem.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { writeBatchFile } from './batch-files.ts';
import { serialKey } from '../pki/serial.ts';
import { writeCredentialFiles } from './credential-files.ts';
import { idPrefixProblem, newDeviceId, newPrefixedDeviceId } from './device-ids.ts';
import { FleetgateError } from '@fleetgate/device-sdk/errors';
import type { OperatorCode } from '../cli/errors.ts';

/** One line of the manifest a factory run writes (importable later as an allow-list). */
export interface ManifestEntry {
  readonly id: string;
  readonly model: string;
  /** In openssl's form (`openssl x509 -noout -serial`: upper-case hex, even length), see pki/serial.ts. */
  readonly serial: string;
  readonly expiry: string;
}

/** The manifest file, `<out>/manifest.json`; `manifest.csv` holds the same entries. */
export interface Manifest {
  readonly format: 'fleetgate-bootstrap-manifest/1';
  readonly factoryCa: string;
  readonly devices: ManifestEntry[];
}

export interface BootstrapBatchOptions {
  readonly factory: CertificateAuthority;
  /** Root certificate DER, copied to `<out>/root.crt` for the device to pin. */
  readonly root: Buffer;
  readonly model: string;
  readonly count: number;
  readonly outDir: string;
  readonly validDays: number;
  /**
   * Ids `<idPrefix><model>-<12 hex>` instead of fleetgate's own `<model>-<12 hex>`: for a
   * manufacturer whose devices another fleetgate trusts within a namespace (docs/operator.md).
   */
  readonly idPrefix?: string;
  readonly now?: Date;
  /**
   * The data directory: the batch is recorded in `<data>/batches/bootstrap-<batch id>.json` for
   * the server to import (its ids become `provisioned` devices; factory/batch-files.ts).
   */
  readonly dataDir?: string;
  /** The bootstrap trust the credentials belong to (default `fleetgate-factory`). */
  readonly trust?: string;
  /** Called after each device, for progress output. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** What a run issued: the whole manifest of the folder, and the id of this run's batch when recorded. */
export type IssuedBatch = Manifest & { readonly batch?: string };

/** A batch id: issue time and 32 random bits, e.g. `20261201t235500-9f1c2a7b`. */
function newBatchId(now: Date): string {
  return `${now.toISOString().replace(/[-:]/g, '').slice(0, 15).toLowerCase()}-${randomBytes(4).toString('hex')}`;
}

/** Largest batch one command makes (a factory line runs several batches). */
export const MAX_BATCH = 100_000;

/** A bootstrap batch request is invalid. */
export class BatchError extends FleetgateError<OperatorCode<'BOOTSTRAP_INVALID'>> {
  override readonly name = 'BatchError';
  constructor(message: string, options?: ErrorOptions) {
    super('BOOTSTRAP_INVALID', message, options);
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

function manifestCsv(entries: readonly ManifestEntry[]): string {
  return `id,model,serial,expiry\n${entries.map((entry) => `${entry.id},${entry.model},${entry.serial},${entry.expiry}`).join('\n')}\n`;
}

/**
 * Issues factory bootstrap credentials offline, from the factory CA alone (a factory line has no
 * registry). Keys are written with mode 0600 and never over an existing file; the manifest
 * accumulates across batches written into the same folder.
 */
export async function issueBootstrapBatch(options: BootstrapBatchOptions): Promise<IssuedBatch> {
  if (!MODEL_PATTERN.test(options.model)) {
    throw new BatchError(`invalid model "${options.model}": lower-case letters, digits and dashes, starting with a letter`);
  }
  if (!Number.isInteger(options.count) || options.count < 1 || options.count > MAX_BATCH) {
    throw new BatchError(`--count must be a whole number from 1 to ${MAX_BATCH}`);
  }
  const prefixProblem = options.idPrefix === undefined ? undefined : idPrefixProblem(options.idPrefix, options.model);
  if (prefixProblem) throw new BatchError(`invalid --id-prefix "${options.idPrefix}": ${prefixProblem}`);
  const nextId = (): string => (options.idPrefix === undefined ? newDeviceId(options.model) : newPrefixedDeviceId(options.idPrefix, options.model));
  if (!Number.isInteger(options.validDays) || options.validDays < 1 || options.validDays > 36_500) {
    throw new BatchError('--valid-days must be a whole number from 1 to 36500');
  }
  const manifestPath = join(options.outDir, 'manifest.json');
  const manifest: Manifest = (await exists(manifestPath))
    ? (JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest)
    : { format: 'fleetgate-bootstrap-manifest/1', factoryCa: options.factory.x509.fingerprint256, devices: [] };
  const now = options.now ?? new Date();
  const notBefore = new Date(now.getTime() - 5 * 60_000);
  const notAfter = new Date(now.getTime() + options.validDays * 86_400_000);
  await writeFileAtomic(join(options.outDir, 'root.crt'), toPem('CERTIFICATE', options.root));
  const known = new Set(manifest.devices.map((entry) => entry.id));
  const first = manifest.devices.length;
  const batch = options.dataDir === undefined ? undefined : newBatchId(now);
  try {
    for (let index = 0; index < options.count; index++) {
      let id = nextId();
      while (known.has(id)) id = nextId();
      known.add(id);
      const pair = generateKeyPair('ec-p256');
      const issued = await issueCertificate(options.factory, {
        subject: [
          { type: OID.organizationName, value: 'fleetgate factory' },
          { type: OID.organizationalUnitName, value: options.model },
          { type: OID.commonName, value: id },
        ],
        subjectPublicKeyInfo: spkiDer(pair.publicKey),
        profile: { kind: 'device', deviceIdentityUri: deviceIdentityUri(id) },
        notBefore,
        notAfter,
      });
      await writeCredentialFiles(options.outDir, id, pair.privateKey, issued.der, options.factory.certificate);
      manifest.devices.push({ id, model: options.model, serial: formatSerial(issued.serial), expiry: issued.notAfter.toISOString() });
      options.onProgress?.(index + 1, options.count);
    }
  } finally {
    // Whatever was issued is listed, even if the batch stopped part-way.
    await writeFileAtomic(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
    await writeFileAtomic(join(options.outDir, 'manifest.csv'), manifestCsv(manifest.devices));
    const issued = manifest.devices.slice(first);
    if (options.dataDir !== undefined && batch !== undefined && issued.length > 0) {
      await writeBatchFile(options.dataDir, {
        format: 'fleetgate-batch/1',
        kind: 'bootstrap',
        id: batch,
        model: options.model,
        trust: options.trust ?? 'fleetgate-factory',
        issuedAt: now.toISOString(),
        // The manifest shows serials as openssl prints them; the registry keys them in its own form.
        devices: issued.map((entry) => ({ id: entry.id, serial: serialKey(entry.serial) })),
      });
    }
  }
  return batch === undefined ? manifest : { ...manifest, batch };
}
