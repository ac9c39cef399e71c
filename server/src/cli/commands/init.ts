import { initDataDir } from '../../datadir/init.ts';
import { PASSPHRASE_ENV } from '../../datadir/authorities.ts';
import { resolveDataDir } from '../../datadir/layout.ts';
import type { Command } from '../args.ts';
import { registryUrlOption } from '../registry-option.ts';

/** What init did to a PostgreSQL registry. */
interface RegistryReport {
  readonly location: string;
  readonly schemaVersion: number;
  /** The schema version before (0: the database was empty). */
  readonly migratedFrom: number;
}

/** Creates or upgrades the schema of a PostgreSQL registry (the driver is loaded only here). */
async function prepareRegistry(url: string): Promise<RegistryReport> {
  const [{ PostgresRegistry }, { redactUrl }] = await Promise.all([import('../../registry/postgres/postgres-registry.ts'), import('../../registry/registry-url.ts')]);
  const registry = await PostgresRegistry.open(url);
  try {
    return { location: redactUrl(url), schemaVersion: registry.schemaVersion, migratedFrom: registry.migratedFrom };
  } finally {
    await registry.close();
  }
}

export const initCommand: Command = {
  path: ['init'],
  help: `Usage: fleetgate init [--data DIR] [--hostname NAME ...] [--registry URL] [--json]

Creates in DIR (default ./data, or $FLEETGATE_DATA):
  ca/root.crt, ca/root.key          root CA (P-256); devices pin root.crt
  ca/issuing.crt, ca/issuing.key    device-issuing CA (operational certificates)
  ca/factory.crt, ca/factory.key    factory CA (bootstrap certificates)
  tls/server.crt, tls/server.key    certificate of every listener (localhost, 127.0.0.1, ::1, --hostname)
  tls/ticket.secret                 secret of the TLS session ticket keys (mode 0600; copy it to every node)
  operator/operator.crt, .key       operator client certificate for the admin API
  config.json                       server configuration with every default written out

Running it again never overwrites a key; it reports what already exists, re-makes a missing
certificate from its key, and re-issues the server certificate when new --hostname values are given.
Keys are PKCS#8 PEM with mode 0600. Set ${PASSPHRASE_ENV} to encrypt the CA keys at rest.

With --registry URL (or $FLEETGATE_REGISTRY_URL) the registry lives on PostgreSQL: init creates or
upgrades its schema (under an advisory lock, safe while other processes start) and records the URL
as registry.url in config.json, without its password (give that as PGPASSWORD), so that a later
\`fleetgate serve --data DIR\` uses it with no flag and no variable.
Without it, \`fleetgate serve\` keeps the registry in <data>/registry (LevelDB). docs/postgres.md

Options:
  --data DIR          data directory
  --hostname NAME     extra DNS name or IP address for the server certificate (repeatable)
  --registry URL      a PostgreSQL registry (postgres://user@host:port/database)
  --json              print the report as JSON
  -h, --help          this help`,
  options: {
    data: { type: 'string' },
    hostname: { type: 'string', multiple: true },
    registry: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(values) {
    const dataDir = resolveDataDir(values.data as string | undefined);
    const registryUrl = registryUrlOption(values);
    // The database first: a URL that does not answer changes nothing in the data directory.
    const registry = registryUrl === undefined ? undefined : await prepareRegistry(registryUrl);
    const report = await initDataDir({
      dataDir,
      hostnames: (values.hostname as string[] | undefined) ?? [],
      passphrase: process.env[PASSPHRASE_ENV] || undefined,
      registryUrl,
    });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(registry ? { ...report, registry } : report, null, 2)}\n`);
      return 0;
    }
    for (const path of report.created) process.stdout.write(`created  ${path}\n`);
    for (const path of report.updated) process.stdout.write(`updated  ${path}\n`);
    for (const path of report.existing) process.stdout.write(`exists   ${path} (kept)\n`);
    if (registry) process.stdout.write(`registry ${registry.location}: PostgreSQL schema version ${registry.schemaVersion}${registry.migratedFrom === registry.schemaVersion ? ' (current)' : ` (from ${registry.migratedFrom})`}\n`);
    process.stdout.write(`\nfleetgate data directory ready: ${dataDir}\nDevices pin ${dataDir}/ca/root.crt. Next: fleetgate serve --data ${dataDir}\n`);
    return 0;
  },
};
