import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeviceId, MODEL_PATTERN } from '@fleetgate/device-sdk/protocol';
import { FleetgateError } from '@fleetgate/device-sdk/errors';
import type { OperatorCode } from '../cli/errors.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import type { BatchImport, CredentialKind, CredentialRecord, ProvisionedId, Registry } from '../registry/types.ts';

/*
 * How offline issuance reaches the registry (docs/operator.md, "What the registry knows of
 * offline issuance").
 *
 * `fleetgate bootstrap issue`, `operator issue` and `service issue` run offline, and while
 * `fleetgate serve` runs it holds the LevelDB lock: the CLI cannot write the registry. So each of
 * them writes a record file into `<data>/batches/` (atomically: temporary file, fsync, rename),
 * and the server imports every file there at start and when told (`POST /v1/batches/import`,
 * `fleetgate bootstrap import`). Importing is idempotent: a known id or serial is left as it is,
 * so a file imported twice, or a file whose ids have enrolled, been revoked or reset meanwhile,
 * changes nothing. Files are never deleted by the server: they are small, and they are the
 * record of what the factory made. An unreadable or invalid file is reported (BATCH_FILE_INVALID)
 * and skipped; the others are imported.
 *
 * Chosen over "the CLI posts to the admin API": a factory line often has no route to the server,
 * and a record that exists only when a server answered would make the registry's knowledge
 * depend on timing. A file in the data directory is there whether or not a server runs.
 */

/** Format tag of a record file. */
export const BATCH_FILE_FORMAT = 'fleetgate-batch/1';

/** Largest record file the server reads (a batch of 100,000 ids is about 8 MiB). */
export const MAX_BATCH_FILE_BYTES = 32 * 1024 * 1024;

/** At most this many record files are read per import (bounded work per request). */
export const MAX_BATCH_FILES = 10_000;

/** The folder of record files in a data directory. */
export function batchDirectory(dataDir: string): string {
  return join(dataDir, 'batches');
}

/** A `fleetgate bootstrap issue` batch: the ids it issued bootstrap credentials for. */
export interface BootstrapBatchFile {
  readonly format: typeof BATCH_FILE_FORMAT;
  readonly kind: 'bootstrap';
  readonly id: string;
  readonly model: string;
  readonly trust: string;
  readonly issuedAt: string;
  readonly devices: readonly ProvisionedId[];
}

/** An operator or service certificate made offline. */
export interface CredentialFile {
  readonly format: typeof BATCH_FILE_FORMAT;
  readonly kind: CredentialKind;
  readonly name: string;
  readonly serial: string;
  readonly issuedAt: string;
  readonly expiresAt: string;
}

/** One record file. */
export type BatchFile = BootstrapBatchFile | CredentialFile;

/** A record file cannot be read or does not hold a valid record. */
export class BatchFileError extends FleetgateError<OperatorCode<'BATCH_FILE_INVALID'>> {
  override readonly name = 'BatchFileError';
  constructor(message: string, options?: ErrorOptions) {
    super('BATCH_FILE_INVALID', message, options);
  }
}

const BATCH_ID = /^[a-z0-9][a-z0-9-]{0,63}$/;
const NAME = /^[a-z][a-z0-9-]{0,31}$/;
const SERIAL = /^[0-9a-f]{1,40}$/;

/** The file name of a record: `bootstrap-<batch id>.json`, `<kind>-<serial>.json`. */
function fileName(file: BatchFile): string {
  return file.kind === 'bootstrap' ? `bootstrap-${file.id}.json` : `${file.kind}-${file.serial}.json`;
}

/** Writes a record file into `<data>/batches/`, atomically; returns its path. */
export async function writeBatchFile(dataDir: string, file: BatchFile): Promise<string> {
  const path = join(batchDirectory(dataDir), fileName(file));
  await writeFileAtomic(path, `${JSON.stringify(file)}\n`);
  return path;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isTime = (value: unknown): value is string => typeof value === 'string' && value.length <= 40 && !Number.isNaN(Date.parse(value));

/** Checks the contents of a record file; throws {@link BatchFileError} with what is wrong. */
export function parseBatchFile(text: string, label: string): BatchFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new BatchFileError(`${label} is not valid JSON`, { cause: error });
  }
  if (!isRecord(value) || value.format !== BATCH_FILE_FORMAT) throw new BatchFileError(`${label} is not a fleetgate record file ("format": "${BATCH_FILE_FORMAT}")`);
  if (value.kind === 'bootstrap') {
    const { id, model, trust, issuedAt, devices } = value;
    if (typeof id !== 'string' || !BATCH_ID.test(id)) throw new BatchFileError(`${label}: "id" must be a batch id (lower-case letters, digits, dashes)`);
    if (typeof model !== 'string' || !MODEL_PATTERN.test(model)) throw new BatchFileError(`${label}: "model" must be a model name`);
    if (typeof trust !== 'string' || !NAME.test(trust)) throw new BatchFileError(`${label}: "trust" must be a trust name`);
    if (!isTime(issuedAt)) throw new BatchFileError(`${label}: "issuedAt" must be an ISO 8601 time`);
    if (!Array.isArray(devices) || devices.length > 100_000) throw new BatchFileError(`${label}: "devices" must be a list of at most 100000 entries`);
    const entries = devices.map((entry: unknown, index): ProvisionedId => {
      if (!isRecord(entry) || typeof entry.id !== 'string' || !isDeviceId(entry.id)) throw new BatchFileError(`${label}: devices[${index}] has no valid device id`);
      if (entry.serial !== undefined && (typeof entry.serial !== 'string' || !SERIAL.test(entry.serial))) throw new BatchFileError(`${label}: devices[${index}].serial must be lower-case hex`);
      return typeof entry.serial === 'string' ? { id: entry.id, serial: entry.serial } : { id: entry.id };
    });
    return { format: BATCH_FILE_FORMAT, kind: 'bootstrap', id, model, trust, issuedAt, devices: entries };
  }
  if (value.kind === 'operator' || value.kind === 'service') {
    const { kind, name, serial, issuedAt, expiresAt } = value;
    if (typeof name !== 'string' || !NAME.test(name)) throw new BatchFileError(`${label}: "name" must be an ${kind} name`);
    if (typeof serial !== 'string' || !SERIAL.test(serial)) throw new BatchFileError(`${label}: "serial" must be lower-case hex`);
    if (!isTime(issuedAt) || !isTime(expiresAt)) throw new BatchFileError(`${label}: "issuedAt" and "expiresAt" must be ISO 8601 times`);
    return { format: BATCH_FILE_FORMAT, kind, name, serial, issuedAt, expiresAt };
  }
  throw new BatchFileError(`${label}: "kind" must be bootstrap, operator or service`);
}

/** What one import of `<data>/batches/` did. */
export interface BatchImportReport {
  readonly batches: readonly BatchImport[];
  /** Operator and service certificates; `added` false when the registry knew the serial. */
  readonly credentials: readonly { readonly kind: CredentialKind; readonly name: string; readonly serial: string; readonly added: boolean }[];
  /** Files skipped, with why. */
  readonly invalid: readonly { readonly file: string; readonly code: 'BATCH_FILE_INVALID'; readonly message: string }[];
}

/** Reads one record file, bounded in size. */
async function readBatchFile(path: string, name: string): Promise<BatchFile> {
  let text: string;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new BatchFileError(`${name} is not a regular file`);
    if (info.size > MAX_BATCH_FILE_BYTES) throw new BatchFileError(`${name} is ${info.size} bytes, more than ${MAX_BATCH_FILE_BYTES}`);
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof BatchFileError) throw error;
    throw new BatchFileError(`${name} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { cause: error });
  }
  return parseBatchFile(text, name);
}

/** What an import writes: provisioned batches, and credentials the registry does not know yet. */
type BatchImportStore = Pick<Registry, 'importBatch' | 'getCredential' | 'recordCredential'>;

/**
 * Imports every record file of `<data>/batches/` into the registry (see the note at the top of
 * this module). Files are taken in name order; temporary files of a write in progress are not
 * `.json` files and are skipped.
 */
export async function importBatchFiles(dataDir: string, registry: BatchImportStore, actor: string): Promise<BatchImportReport> {
  const directory = batchDirectory(dataDir);
  let names: string[];
  try {
    names = (await readdir(directory)).filter((name) => name.endsWith('.json')).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { batches: [], credentials: [], invalid: [] };
    throw error;
  }
  const batches: BatchImport[] = [];
  const credentials: { kind: CredentialKind; name: string; serial: string; added: boolean }[] = [];
  const invalid: { file: string; code: 'BATCH_FILE_INVALID'; message: string }[] = [];
  for (const name of names.slice(0, MAX_BATCH_FILES)) {
    let file: BatchFile;
    try {
      file = await readBatchFile(join(directory, name), name);
    } catch (error) {
      if (!(error instanceof BatchFileError)) throw error;
      invalid.push({ file: name, code: error.code, message: error.message });
      continue;
    }
    if (file.kind === 'bootstrap') {
      batches.push(await registry.importBatch({ id: file.id, model: file.model, trust: file.trust, issuedAt: file.issuedAt, devices: file.devices }, actor));
      continue;
    }
    const record: CredentialRecord = {
      kind: file.kind,
      name: file.name,
      serial: file.serial,
      issuedAt: file.issuedAt,
      expiresAt: file.expiresAt,
      state: 'valid',
      recordedVia: 'issue',
      recordedAt: new Date().toISOString(),
    };
    const known = (await registry.getCredential(file.serial)) !== undefined;
    if (!known) await registry.recordCredential(record, actor);
    credentials.push({ kind: file.kind, name: file.name, serial: file.serial, added: !known });
  }
  if (names.length > MAX_BATCH_FILES) {
    invalid.push({ file: directory, code: 'BATCH_FILE_INVALID', message: `${names.length} record files; only the first ${MAX_BATCH_FILES} were read` });
  }
  return { batches, credentials, invalid };
}
