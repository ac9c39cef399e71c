import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { AuditFileChecker, AUDIT_GENESIS } from './audit-chain.ts';
import { RegistryError } from './errors.ts';
import { REGISTRY_RECORD_KINDS, type Registry, type RegistryRecord } from './types.ts';

/*
 * The registry export file (`fleetgate registry export`, `registry import`; docs/postgres.md):
 * JSON Lines. The first line says what the file is, then one record a line, kinds in
 * REGISTRY_RECORD_KINDS order, and a last line with the count of each kind and the audit head,
 * so a file cut short or with lines taken out is refused, and the audit entries are checked as a
 * hash chain on the way in.
 */

const EXPORT_FORMAT = 'fleetgate-registry-export';
const EXPORT_VERSION = 1;

type RecordKind = (typeof REGISTRY_RECORD_KINDS)[number];

/** The first line. */
interface ExportHeader {
  readonly format: typeof EXPORT_FORMAT;
  readonly version: number;
  readonly exportedAt: string;
  /** Engine the records came from. */
  readonly source: string;
}

/** The last line. */
interface ExportEnd {
  readonly kind: 'end';
  readonly counts: Readonly<Record<RecordKind, number>>;
  readonly auditHead: string;
}

/** What was exported or imported: the count of each kind, and the audit head. */
export interface ExportSummary {
  readonly counts: Readonly<Record<RecordKind, number>>;
  readonly auditHead: string;
}

const zeroCounts = (): Record<RecordKind, number> => Object.fromEntries(REGISTRY_RECORD_KINDS.map((kind) => [kind, 0])) as Record<RecordKind, number>;

/** How many lines the writer gathers before it hands them on. */
const WRITE_CHUNK = 256;

/**
 * Writes every record of `registry` through `sink` (text, a chunk of lines at a time); resolves
 * with what it wrote. `progress` hears the number of records written so far, now and then.
 */
export async function writeRegistryExport(registry: Registry, sink: (text: string) => Promise<void>, options: { now?: Date; progress?: (records: number) => void } = {}): Promise<ExportSummary> {
  let buffered: string[] = [];
  let written = 0;
  const write = async (value: unknown): Promise<void> => {
    buffered.push(JSON.stringify(value));
    if (buffered.length < WRITE_CHUNK) return;
    await flush();
  };
  const flush = async (): Promise<void> => {
    if (buffered.length === 0) return;
    const text = `${buffered.join('\n')}\n`;
    written += buffered.length;
    buffered = [];
    await sink(text);
    options.progress?.(written);
  };
  const now = options.now ?? new Date();
  const status = await registry.status();
  const header: ExportHeader = { format: EXPORT_FORMAT, version: EXPORT_VERSION, exportedAt: now.toISOString(), source: status.engine };
  await write(header);
  const counts = zeroCounts();
  let auditHead = AUDIT_GENESIS;
  for await (const record of registry.exportRecords()) {
    counts[record.kind]++;
    if (record.kind === 'audit') auditHead = record.record.hash;
    await write(record);
  }
  const end: ExportEnd = { kind: 'end', counts, auditHead };
  await write(end);
  await flush();
  return { counts, auditHead };
}

const invalid = (line: number, message: string): RegistryError => new RegistryError('REGISTRY_EXPORT_INVALID', `line ${line}: ${message}`);

/** The field of a record that names it, per kind: present and a non-empty string (or number for audit). */
const KEY_FIELDS: Readonly<Record<Exclude<RecordKind, 'crl-number'>, readonly string[]>> = {
  trust: ['name', 'model', 'caPem', 'fingerprint'],
  batch: ['id', 'model', 'trust'],
  credential: ['serial', 'kind', 'name', 'state'],
  device: ['id', 'model', 'state', 'certSerial'],
  certificate: ['serial', 'deviceId', 'status', 'der'],
  presence: ['deviceId', 'lastSeen'],
  'device-event': ['deviceId', 'first', 'kind', 'code'],
  audit: ['type', 'actor', 'hash'],
};

/**
 * Reads an export file, checking as it goes: the header, each record's kind and naming fields,
 * the kinds' order, the audit hash chain (entry 1 onwards, no gap), and at the end the counts and
 * the head against the last line. Throws `REGISTRY_EXPORT_INVALID` naming the line; an importer
 * that writes as it reads must therefore write all or nothing.
 */
export async function* readRegistryExport(input: Readable, onSummary?: (summary: ExportSummary) => void): AsyncGenerator<RegistryRecord> {
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  const counts = zeroCounts();
  const chain = new AuditFileChecker();
  let number = 0;
  let header: ExportHeader | undefined;
  let end: ExportEnd | undefined;
  let lastKind = -1;
  for await (const text of lines) {
    number++;
    if (text.trim() === '') continue;
    if (end) throw invalid(number, 'there is more after the end line');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw invalid(number, 'not JSON');
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(number, 'not a JSON object');
    const object = value as Record<string, unknown>;
    if (!header) {
      if (object.format !== EXPORT_FORMAT) throw invalid(number, `not a fleetgate registry export (the first line names no format ${EXPORT_FORMAT})`);
      if (object.version !== EXPORT_VERSION) throw invalid(number, `export format version ${String(object.version)}; this fleetgate reads version ${EXPORT_VERSION}`);
      header = object as unknown as ExportHeader;
      continue;
    }
    if (object.kind === 'end') {
      end = object as unknown as ExportEnd;
      continue;
    }
    const kindIndex = REGISTRY_RECORD_KINDS.indexOf(object.kind as RecordKind);
    if (kindIndex < 0) throw invalid(number, `unknown record kind ${JSON.stringify(object.kind)}`);
    if (kindIndex < lastKind) throw invalid(number, `a ${String(object.kind)} record after the ${REGISTRY_RECORD_KINDS[lastKind]} records`);
    lastKind = kindIndex;
    const kind = object.kind as RecordKind;
    if (kind === 'crl-number') {
      if (typeof object.value !== 'string' || !/^\d+$/.test(object.value)) throw invalid(number, 'the crl-number is not a decimal string');
    } else {
      const record = object.record;
      if (typeof record !== 'object' || record === null || Array.isArray(record)) throw invalid(number, `the ${kind} record is not an object`);
      for (const field of KEY_FIELDS[kind]) {
        const fieldValue = (record as Record<string, unknown>)[field];
        if (typeof fieldValue !== 'string' || fieldValue === '') {
          if (!(kind === 'device' && field === 'certSerial' && fieldValue === '')) throw invalid(number, `the ${kind} record has no ${field}`);
        }
      }
      if (kind === 'audit') {
        const failure = chain.push(JSON.stringify(record));
        if (failure && !failure.ok) throw invalid(number, `audit chain: ${failure.reason}`);
      }
    }
    counts[kind]++;
    yield object as unknown as RegistryRecord;
  }
  if (!header) throw invalid(number, 'the file is empty');
  if (!end) throw invalid(number, 'the file has no end line: it was cut short');
  const verdict = chain.finish();
  if (!verdict.ok) throw invalid(number, `audit chain: ${verdict.reason}`);
  if (verdict.entries > 0 && verdict.first !== 1) throw invalid(number, `the audit log starts at entry ${verdict.first}, not 1`);
  for (const kind of REGISTRY_RECORD_KINDS) {
    if ((end.counts?.[kind] ?? 0) !== counts[kind]) throw invalid(number, `the end line counts ${end.counts?.[kind] ?? 0} ${kind} records, the file holds ${counts[kind]}`);
  }
  if (end.auditHead !== verdict.head) throw invalid(number, `the end line's audit head ${end.auditHead} is not the hash of the last entry (${verdict.head})`);
  onSummary?.({ counts, auditHead: verdict.head });
}
