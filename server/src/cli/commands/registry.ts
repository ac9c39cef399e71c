import { access, open } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { DEFAULT_REGISTRY, loadConfig } from '../../config/config.ts';
import { dataLayout, resolveDataDir } from '../../datadir/layout.ts';
import { readRegistryExport, writeRegistryExport, type ExportSummary } from '../../registry/export-file.ts';
import { openRegistry } from '../../registry/open-registry.ts';
import type { Registry, RegistryStatus } from '../../registry/types.ts';
import { RegistryError } from '../../registry/errors.ts';
import { requireString, type Command } from '../args.ts';
import { CliError } from '../errors.ts';
import { exportSink } from '../export-sink.ts';
import { print, printJson } from '../format.ts';
import { registryUrlOption } from '../registry-option.ts';

/*
 * `fleetgate registry status|export|import`: the registry itself, opened directly (not through the
 * admin API). A LevelDB registry can be opened by one process only: stop `fleetgate serve` first.
 * A PostgreSQL registry can be read and exported while servers run.
 */

const WHICH_REGISTRY = `Which registry: --registry URL (PostgreSQL), else $FLEETGATE_REGISTRY_URL, else registry.url of
<data>/config.json, else the LevelDB registry in <data>/registry (stop \`fleetgate serve\` first: one
process at a time may open it).`;

const REGISTRY_OPTIONS = {
  data: { type: 'string' },
  registry: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** Opens the registry the options name. `mustExist`: refuse to create an empty LevelDB registry. */
async function openNamedRegistry(values: Record<string, unknown>, mustExist: boolean, migrate = true): Promise<Registry> {
  const dataDir = resolveDataDir(values.data as string | undefined);
  const layout = dataLayout(dataDir);
  const config = await loadConfig(layout.config);
  const url = registryUrlOption(values) ?? config.registry?.url;
  if (url === undefined && mustExist) {
    await access(layout.registry).catch((error: unknown) => {
      throw new CliError('CLI_INPUT_INVALID', `no LevelDB registry at ${layout.registry} (give --data DIR, or --registry URL for PostgreSQL)`, { cause: error });
    });
  }
  return openRegistry({ url, levelPath: layout.registry, settings: config.registry ?? DEFAULT_REGISTRY, migrate });
}

/** Runs `work` on the registry, closing it whatever happens. */
async function withRegistry<T>(values: Record<string, unknown>, mustExist: boolean, work: (registry: Registry) => Promise<T>, migrate = true): Promise<T> {
  const registry = await openNamedRegistry(values, mustExist, migrate);
  try {
    return await work(registry);
  } finally {
    await registry.close();
  }
}

function statusText(status: RegistryStatus): string {
  const devices = Object.values(status.devices).reduce((sum, count) => sum + count, 0);
  const states = Object.entries(status.devices)
    .map(([state, count]) => `${count} ${state}`)
    .join(', ');
  return [
    `engine          ${status.engine}`,
    `location        ${status.location}`,
    `schema version  ${status.schemaVersion ?? '- (LevelDB has no schema migrations)'}`,
    `devices         ${devices} (${states})`,
    `certificates    ${status.certificates}`,
    `trusts          ${status.trusts}`,
    `credentials     ${status.credentials}`,
    `audit entries   ${status.audit.entries}, head ${status.audit.head}`,
    `CRL number      ${status.crlNumber}`,
  ].join('\n');
}

export const registryStatusCommand: Command = {
  path: ['registry', 'status'],
  help: `Usage: fleetgate registry status [--data DIR] [--registry URL] [--json]

Shows which registry fleetgate uses and what it holds: engine, location (a PostgreSQL URL without
its password), schema version (PostgreSQL), devices by state, certificates, trusts, credentials,
audit entries with the head hash, and the last CRL number.
${WHICH_REGISTRY}

Options:
  --data DIR          data directory (default ./data or $FLEETGATE_DATA)
  --registry URL      a PostgreSQL registry (postgres://user@host:port/database)
  --json              print the status as JSON
  -h, --help          this help`,
  options: REGISTRY_OPTIONS,
  async run(values) {
    // A look changes nothing: no schema migration (a database without the schema is refused).
    const status = await withRegistry(values, true, (registry) => registry.status(), false);
    if (values.json) printJson(status);
    else print(statusText(status));
    return 0;
  },
};

function summaryText(verb: string, summary: ExportSummary, where: string): string {
  const { counts } = summary;
  return `${verb} ${counts.device} devices, ${counts.certificate} certificates, ${counts.trust} trusts, ${counts.credential} credentials, ${counts.batch} batches, ${counts.audit} audit entries ${where}\naudit head ${summary.auditHead}`;
}

/** Progress on stderr for a terminal, every 10,000 records. */
function progress(verb: string): ((records: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let next = 10_000;
  return (records) => {
    if (records < next) return;
    next = records + 10_000;
    process.stderr.write(`${verb} ${records} records...\n`);
  };
}

export const registryExportCommand: Command = {
  path: ['registry', 'export'],
  help: `Usage: fleetgate registry export --out FILE|- [--data DIR] [--registry URL] [--json]

Writes the whole registry to FILE as JSON Lines: devices, certificates, trusts, credentials,
provisioning batches, presence, broker history, the audit log with its hash chain, and the CRL
number, with a last line that counts them. It is a backup, and the way to move a fleet from
LevelDB to PostgreSQL (\`fleetgate registry import\`). No private key is in it. The file is written
under a temporary name and renamed when complete (mode 0600); --out - writes to stdout.
A PostgreSQL registry is exported from one consistent snapshot while servers run.
${WHICH_REGISTRY}

Options:
  --out FILE|-        where to write (required)
  --data DIR          data directory (default ./data or $FLEETGATE_DATA)
  --registry URL      a PostgreSQL registry to export
  --json              print the summary as JSON ({ "file", "counts", "auditHead" })
  -h, --help          this help`,
  options: { ...REGISTRY_OPTIONS, out: { type: 'string' } },
  async run(values) {
    const outFlag = requireString(values, 'out');
    const out = outFlag === '-' ? undefined : resolve(outFlag);
    const summary = await withRegistry(values, true, async (registry) => {
      const sink = await exportSink(out, 0o600);
      try {
        const written = await writeRegistryExport(registry, (text) => sink.write(text), { progress: progress('exported') });
        await sink.commit();
        return written;
      } catch (error) {
        await sink.abandon();
        throw error;
      }
    });
    const line = values.json ? JSON.stringify({ file: out ?? '-', ...summary }, null, 2) : summaryText('exported', summary, `to ${out ?? 'stdout'}`);
    if (out === undefined) process.stderr.write(`${line}\n`);
    else print(line);
    return 0;
  },
};

export const registryImportCommand: Command = {
  path: ['registry', 'import'],
  help: `Usage: fleetgate registry import --in FILE|- [--registry URL] [--data DIR] [--json]

Reads a file of \`fleetgate registry export\` into an empty registry, all or nothing: the file is
checked as it is read (its format, each record, the audit hash chain from entry 1, and the counts
and head of its last line), and a file cut short or altered writes nothing. The devices keep their
certificates: they connect without enrolling again. Importing into a registry that holds devices or
audit entries is refused (REGISTRY_NOT_EMPTY): an import never merges two fleets.
To move a fleet to PostgreSQL: stop fleetgate serve, export from --data DIR, import with
--registry URL, then serve with --registry URL (or set registry.url in config.json).
${WHICH_REGISTRY}

Options:
  --in FILE|-         the export to read (required)
  --registry URL      the PostgreSQL registry to fill
  --data DIR          data directory (default ./data or $FLEETGATE_DATA)
  --json              print the summary as JSON ({ "file", "counts", "auditHead" })
  -h, --help          this help`,
  options: { ...REGISTRY_OPTIONS, in: { type: 'string' } },
  async run(values) {
    const inFlag = requireString(values, 'in');
    let input: Readable;
    if (inFlag === '-') input = process.stdin;
    else {
      try {
        input = (await open(resolve(inFlag), 'r')).createReadStream();
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        throw new CliError('CLI_INPUT_INVALID', `cannot read --in ${inFlag}${code ? ` (${code})` : ''}`, { cause: error });
      }
    }
    let summary: ExportSummary | undefined;
    await withRegistry(values, false, (registry) => registry.importRecords(readRegistryExport(input, (read) => (summary = read)))).catch((error: unknown) => {
      // The reader names the line; the operator also needs the file.
      if (error instanceof RegistryError && error.code === 'REGISTRY_EXPORT_INVALID') throw new RegistryError(error.code, `${inFlag}: ${error.message}`, { cause: error });
      throw error;
    });
    if (!summary) throw new CliError('CLI_INPUT_INVALID', `${inFlag} was not read to its end`);
    if (values.json) printJson({ file: inFlag, ...summary });
    else print(summaryText('imported', summary, `from ${inFlag}`));
    return 0;
  },
};
