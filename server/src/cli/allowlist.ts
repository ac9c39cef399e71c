import { isDeviceId } from '@fleetgate/device-sdk/protocol';
import { CliError } from './errors.ts';

/** Where the ids of an allow-list came from. */
export type AllowListFormat = 'manifest.json' | 'manifest.csv' | 'json list' | 'text';

/** An allow-list read from a file. */
export interface AllowList {
  /** Device ids, in file order, without duplicates. */
  readonly ids: string[];
  readonly format: AllowListFormat;
  /** Models the file names (manifests only). */
  readonly models: string[];
  /** SHA-256 fingerprint of the CA that issued the batch (manifest.json only). */
  readonly factoryCa?: string;
}

/** The manifest `fleetgate bootstrap issue` writes. */
const MANIFEST_FORMAT = 'fleetgate-bootstrap-manifest/1';

const invalid = (message: string): CliError => new CliError('CLI_INPUT_INVALID', message);

function checkId(id: unknown, where: string): string {
  if (typeof id !== 'string' || !isDeviceId(id)) {
    throw invalid(`${where}: ${JSON.stringify(id)} is not a device id (lower-case letters, digits, '.', '_', '-'; at most 64 characters)`);
  }
  return id;
}

function fromJson(text: string, label: string): AllowList {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw invalid(`${label} is not valid JSON (${(error as Error).message})`);
  }
  if (Array.isArray(parsed)) return { ids: parsed.map((id, index) => checkId(id, `${label} [${index}]`)), format: 'json list', models: [] };
  const manifest = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  if (manifest.format !== MANIFEST_FORMAT || !Array.isArray(manifest.devices)) {
    throw invalid(`${label} is neither a bootstrap manifest ("format": "${MANIFEST_FORMAT}", as \`fleetgate bootstrap issue\` writes) nor a JSON list of device ids`);
  }
  const models = new Set<string>();
  const ids = manifest.devices.map((entry: unknown, index) => {
    const record = typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>) : {};
    if (typeof record.model === 'string') models.add(record.model);
    return checkId(record.id, `${label} devices[${index}].id`);
  });
  return { ids, format: 'manifest.json', models: [...models], ...(typeof manifest.factoryCa === 'string' ? { factoryCa: manifest.factoryCa } : {}) };
}

function fromCsv(lines: readonly string[], headerIndex: number, label: string): AllowList {
  const header = (lines[headerIndex] ?? '').split(',').map((cell) => cell.trim().toLowerCase());
  const idColumn = header.indexOf('id');
  const modelColumn = header.indexOf('model');
  const models = new Set<string>();
  const ids: string[] = [];
  lines.forEach((line, index) => {
    if (index <= headerIndex || line.trim() === '') return;
    const cells = line.split(',').map((cell) => cell.trim());
    ids.push(checkId(cells[idColumn], `${label} line ${index + 1}`));
    const model = cells[modelColumn];
    if (modelColumn >= 0 && model) models.add(model);
  });
  return { ids, format: 'manifest.csv', models: [...models] };
}

function fromText(lines: readonly string[], label: string): AllowList {
  const ids: string[] = [];
  lines.forEach((line, index) => {
    const text = line.trim();
    if (text === '' || text.startsWith('#')) return;
    ids.push(checkId(text, `${label} line ${index + 1}`));
  });
  return { ids, format: 'text', models: [] };
}

/**
 * Reads an allow-list, recognising it by its content: the `manifest.json` or `manifest.csv` of
 * `fleetgate bootstrap issue`, a JSON list of ids, or plain text with one device id per line
 * (blank lines and `#` comments ignored). Every id is checked; the first bad one is reported with
 * its line. An allow-list without ids is refused: it would admit no device at all.
 */
export function parseAllowList(contents: string, label: string): AllowList {
  const text = contents.replace(/^\uFEFF/, '');
  const trimmed = text.trim();
  if (trimmed === '') throw invalid(`${label} is empty: an allow-list needs at least one device id`);
  let list: AllowList;
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    list = fromJson(trimmed, label);
  } else {
    const lines = text.split(/\r?\n/);
    const headerIndex = lines.findIndex((line) => line.trim() !== '');
    const header = (lines[headerIndex] ?? '').split(',').map((cell) => cell.trim().toLowerCase());
    list = header.length > 1 && header.includes('id') ? fromCsv(lines, headerIndex, label) : fromText(lines, label);
  }
  if (list.ids.length === 0) throw invalid(`${label} holds no device ids: an allow-list needs at least one`);
  return { ...list, ids: [...new Set(list.ids)] };
}
