import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENROLL_ERROR_CODES, type EnrollErrorCode } from '../device-sdk/src/protocol.ts';
import { ENROLL_HTTP_STATUS } from '../server/src/enrollment/errors.ts';

/*
 * docs/errors.md and the code stay in step (STYLE §4): every code the code defines is listed
 * under its package's table, every listed code exists, and the HTTP statuses are the server's.
 * PkiErrorCode, RegistryErrorCode and SdkErrorCode are type unions with no runtime value, so their
 * codes are read from the source files as quoted string literals.
 */

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const CATALOGUE = join(REPO_ROOT, 'docs', 'errors.md');

/** A row of a catalogue table: the code in the first column and the other cells. */
interface CatalogueRow {
  readonly code: string;
  readonly cells: readonly string[];
  readonly line: number;
}

/** The tables of docs/errors.md, by `## ` section title. Rows whose first cell is not a `CODE` are skipped. */
function catalogueSections(markdown: string): Map<string, CatalogueRow[]> {
  const sections = new Map<string, CatalogueRow[]>();
  let rows: CatalogueRow[] | undefined;
  markdown.split('\n').forEach((text, index) => {
    const heading = /^## (.+)$/.exec(text);
    if (heading) {
      rows = [];
      sections.set((heading[1] ?? '').trim(), rows);
      return;
    }
    if (!rows || !text.startsWith('|')) return;
    const cells = text
      .replace(/^\|/, '')
      .replace(/\|\s*$/, '')
      .split('|')
      .map((cell) => cell.trim());
    const code = /^`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`$/.exec(cells[0] ?? '');
    if (code?.[1]) rows.push({ code: code[1], cells, line: index + 1 });
  });
  return sections;
}

/** The rows of the section whose title starts with `title`. */
function section(sections: Map<string, CatalogueRow[]>, title: string): CatalogueRow[] {
  const found = [...sections.entries()].find(([name]) => name.startsWith(title));
  if (!found) throw new Error(`docs/errors.md has no "## ${title}..." section`);
  return found[1];
}

/** Quoted string literals `'PREFIX_...'` in a source file. */
async function quotedCodes(path: string, prefix: RegExp): Promise<Set<string>> {
  const source = await readFile(join(REPO_ROOT, path), 'utf8');
  const pattern = new RegExp(`'(${prefix.source}_[A-Z0-9_]+)'`, 'g');
  return new Set([...source.matchAll(pattern)].map((match) => match[1] as string));
}

/** Every .ts file under a directory of the repository. */
async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(join(REPO_ROOT, dir), { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile() && entry.name.endsWith('.ts')).map((entry) => join(entry.parentPath, entry.name).slice(REPO_ROOT.length));
}

const sorted = (codes: Iterable<string>): string[] => [...codes].sort();

const loaded = (async () => {
  const markdown = await readFile(CATALOGUE, 'utf8');
  return { markdown, sections: catalogueSections(markdown) };
})();

test('the enrollment table lists exactly ENROLL_ERROR_CODES, each with its ENROLL_HTTP_STATUS', async (t) => {
  const rows = section((await loaded).sections, 'Enrollment');
  t.deepEqual(sorted(rows.map((row) => row.code)), sorted(ENROLL_ERROR_CODES), 'codes in docs/errors.md vs ENROLL_ERROR_CODES');
  const known = new Set<string>(ENROLL_ERROR_CODES);
  for (const row of rows) {
    if (!known.has(row.code)) continue; // reported by the set comparison above
    t.is(row.cells[1], String(ENROLL_HTTP_STATUS[row.code as EnrollErrorCode]), `docs/errors.md line ${row.line}: HTTP status of ${row.code}`);
    t.true((row.cells[2] ?? '').length > 20, `docs/errors.md line ${row.line}: ${row.code} needs a meaning`);
  }
});

test('the PKI table lists exactly the PkiErrorCode union, with the enrollment code each CSR error becomes', async (t) => {
  const rows = section((await loaded).sections, 'PKI');
  const defined = await quotedCodes('server/src/pki/errors.ts', /PKI/);
  t.true(defined.size > 0, 'read PkiErrorCode from server/src/pki/errors.ts');
  t.deepEqual(sorted(rows.map((row) => row.code)), sorted(defined), 'codes in docs/errors.md vs PkiErrorCode');
  // The authority translates CSR errors (server/src/authority/csr-policy.ts, PKI_TO_ENROLL).
  const policy = await readFile(join(REPO_ROOT, 'server/src/authority/csr-policy.ts'), 'utf8');
  const translations = [...policy.matchAll(/\b(PKI_[A-Z_]+): '(ENROLL_[A-Z_]+)'/g)];
  t.true(translations.length > 0, 'read PKI_TO_ENROLL from csr-policy.ts');
  for (const [, pki, enroll] of translations) {
    const row = rows.find((candidate) => candidate.code === pki);
    t.is(row?.cells[1], `\`${enroll}\``, `docs/errors.md: ${pki} maps to ${enroll}`);
  }
});

test('the registry table lists exactly the RegistryErrorCode union', async (t) => {
  const rows = section((await loaded).sections, 'Registry');
  const defined = await quotedCodes('server/src/registry/errors.ts', /REGISTRY/);
  t.true(defined.size > 0, 'read RegistryErrorCode from server/src/registry/errors.ts');
  t.deepEqual(sorted(rows.map((row) => row.code)), sorted(defined), 'codes in docs/errors.md vs RegistryErrorCode');
});

test('the device SDK table lists exactly the SdkErrorCode union', async (t) => {
  const rows = section((await loaded).sections, 'Device SDK');
  const defined = await quotedCodes('device-sdk/src/errors.ts', /SDK/);
  t.true(defined.size > 0, 'read SdkErrorCode from device-sdk/src/errors.ts');
  t.deepEqual(sorted(rows.map((row) => row.code)), sorted(defined), 'codes in docs/errors.md vs SdkErrorCode');
});

test('the operator table lists exactly the config, bootstrap, data directory and CLI codes of the server', async (t) => {
  const rows = section((await loaded).sections, 'Operator');
  const defined = new Set<string>();
  for (const file of await sourceFiles('server/src')) {
    for (const code of await quotedCodes(file, /(?:CONFIG|BOOTSTRAP|DATA|CLI|SERVE|INIT|SERVICE)/)) defined.add(code);
  }
  t.true(['CONFIG_INVALID', 'BOOTSTRAP_INVALID', 'DATA_NOT_INITIALIZED', 'DATA_FILE_INVALID', 'CLI_USAGE'].every((code) => defined.has(code)), sorted(defined).join(', '));
  t.deepEqual(sorted(rows.map((row) => row.code)), sorted(defined), 'codes in docs/errors.md vs codes in server/src');
  for (const row of rows) t.true(['1', '2'].includes(row.cells[1] ?? ''), `docs/errors.md line ${row.line}: exit status of ${row.code}`);
});

test('every code is listed once, and every enrollment code the page mentions exists', async (t) => {
  const { markdown, sections } = await loaded;
  const all = [...sections.values()].flat().map((row) => row.code);
  t.deepEqual(all.filter((code, index) => all.indexOf(code) !== index), [], 'codes listed twice');
  // The names of the two constants are not codes.
  const known = new Set<string>([...ENROLL_ERROR_CODES, 'ENROLL_ERROR_CODES', 'ENROLL_HTTP_STATUS']);
  const mentioned = new Set([...markdown.matchAll(/\bENROLL_[A-Z_]+\b/g)].map((match) => match[0]));
  t.deepEqual(sorted([...mentioned].filter((code) => !known.has(code))), [], 'ENROLL_ codes in docs/errors.md that do not exist');
});

test('the broker table lists exactly the broker codes, with their CONNACK return codes', async (t) => {
  const { BROKER_ERRORS } = await import('../server/src/broker/errors.ts');
  const rows = section((await loaded).sections, 'MQTT broker');
  t.deepEqual(sorted(rows.map((row) => row.code)), sorted(Object.keys(BROKER_ERRORS)), 'codes in docs/errors.md vs BROKER_ERRORS');
  for (const row of rows) {
    const defined = BROKER_ERRORS[row.code as keyof typeof BROKER_ERRORS];
    const expected = defined.returnCode === 0 ? '-' : String(defined.returnCode);
    t.is(row.cells[1], expected, `docs/errors.md line ${row.line}: CONNACK of ${row.code}`);
  }
});

test('the admin API table lists exactly ADMIN_ERRORS, each with its HTTP status', async (t) => {
  const { ADMIN_ERRORS } = await import('../server/src/admin/errors.ts');
  const rows = section((await loaded).sections, 'Admin API');
  t.deepEqual(sorted(rows.map((row) => row.code)), sorted(Object.keys(ADMIN_ERRORS)), 'codes in docs/errors.md vs ADMIN_ERRORS');
  for (const row of rows) {
    if (!Object.hasOwn(ADMIN_ERRORS, row.code)) continue; // reported by the set comparison above
    t.is(row.cells[1], String(ADMIN_ERRORS[row.code as keyof typeof ADMIN_ERRORS]), `docs/errors.md line ${row.line}: HTTP status of ${row.code}`);
    t.true((row.cells[2] ?? '').length > 20, `docs/errors.md line ${row.line}: ${row.code} needs a meaning`);
  }
});
