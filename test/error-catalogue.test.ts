import test from 'ava';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as sdkErrorsModule from '../device-sdk/src/errors.ts';
import { CONNACK_REFUSALS, SDK_ERRORS, SdkError } from '../device-sdk/src/errors.ts';
import { FleetgateError } from '../device-sdk/src/fleetgate-error.ts';
import * as sdkConnectorModule from '../device-sdk/src/connector.ts';
import { ConnectError } from '../device-sdk/src/connector.ts';
import * as sdkLifecycleModule from '../device-sdk/src/lifecycle-errors.ts';
import { Refusal, Retry } from '../device-sdk/src/lifecycle-errors.ts';
import * as sdkIndexModule from '../device-sdk/src/index.ts';
import { ENROLL_ERROR_CODES, ENROLL_ERRORS } from '../device-sdk/src/protocol.ts';
import * as adminModule from '../server/src/admin/errors.ts';
import * as dashboardModule from '../server/src/dashboard/errors.ts';
import { DASHBOARD_ERRORS, DashboardError } from '../server/src/dashboard/errors.ts';
import { ADMIN_CODE_OF_OPERATOR_REFUSAL, ADMIN_ERRORS, AdminError } from '../server/src/admin/errors.ts';
import * as authorityModule from '../server/src/authority/errors.ts';
import { EnrollmentError, OPERATOR_AUTHORITY_ERRORS, OperatorAuthorityError } from '../server/src/authority/errors.ts';
import * as brokerModule from '../server/src/broker/errors.ts';
import { BROKER_ERRORS, BrokerError } from '../server/src/broker/errors.ts';
import * as adminClientModule from '../server/src/cli/admin-client.ts';
import * as argsModule from '../server/src/cli/args.ts';
import { UsageError } from '../server/src/cli/args.ts';
import * as cliModule from '../server/src/cli/errors.ts';
import { CliError, OPERATOR_ERRORS } from '../server/src/cli/errors.ts';
import * as configModule from '../server/src/config/config.ts';
import { ConfigError } from '../server/src/config/config.ts';
import * as authoritiesModule from '../server/src/datadir/authorities.ts';
import { DataDirError } from '../server/src/datadir/authorities.ts';
import * as initModule from '../server/src/datadir/init.ts';
import { InitError } from '../server/src/datadir/init.ts';
import { ENROLL_HTTP_STATUS } from '../server/src/enrollment/errors.ts';
import * as batchModule from '../server/src/factory/bootstrap-batch.ts';
import { BatchError } from '../server/src/factory/bootstrap-batch.ts';
import * as serviceModule from '../server/src/factory/service-credential.ts';
import * as clusterModule from '../server/src/cluster/errors.ts';
import { ServiceCredentialError } from '../server/src/factory/service-credential.ts';
import * as derModule from '../server/src/pki/der.ts';
import { DerError } from '../server/src/pki/der.ts';
import { DER_ERRORS } from '../device-sdk/src/der-reader.ts';
import * as pkiModule from '../server/src/pki/errors.ts';
import { PKI_ERRORS, PkiError } from '../server/src/pki/errors.ts';
import * as registryModule from '../server/src/registry/errors.ts';
import { REGISTRY_ERRORS, RegistryError } from '../server/src/registry/errors.ts';
import * as simModule from '../simulator/src/errors.ts';
import { SIM_ERRORS, SimUsageError } from '../simulator/src/errors.ts';
import { LISTENER_CLOSE_CODES } from '../server/src/tls/listener-guard.ts';

/*
 * docs/errors.md and the code stay in step (STYLE §4). Every catalogue is a runtime object
 * imported here: each of its codes is listed in the section of the page named after it, with its
 * metadata (HTTP status, CONNACK return code, exit status, enrollment code); every code the page
 * lists or mentions exists; and every error class of the packages extends FleetgateError.
 */

const CATALOGUE_PAGE = fileURLToPath(new URL('../docs/errors.md', import.meta.url));

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

/**
 * One catalogue and its section of the page: `metadata` is what the second column must say for a
 * code (undefined: the section has no metadata column, only the meaning).
 */
interface Catalogue {
  readonly section: string;
  readonly name: string;
  readonly codes: readonly string[];
  readonly metadata?: (code: string) => string;
}

/** A value of a catalogue object, looked up by a code known to be in it. */
const entry = <T extends object>(catalogue: T, code: string): T[keyof T] => catalogue[code as keyof T];

const CATALOGUES: readonly Catalogue[] = [
  { section: 'Enrollment (EST)', name: 'ENROLL_ERRORS', codes: Object.keys(ENROLL_ERRORS), metadata: (code) => String(entry(ENROLL_ERRORS, code)) },
  {
    section: 'PKI core',
    name: 'PKI_ERRORS',
    codes: Object.keys(PKI_ERRORS),
    metadata: (code) => {
      const { enroll } = entry(PKI_ERRORS, code);
      return enroll ? `\`${enroll}\`` : 'CLI, exit 1';
    },
  },
  { section: 'DER reader', name: 'DER_ERRORS', codes: Object.keys(DER_ERRORS) },
  { section: 'Registry', name: 'REGISTRY_ERRORS', codes: Object.keys(REGISTRY_ERRORS) },
  {
    section: 'Operator authority',
    name: 'OPERATOR_AUTHORITY_ERRORS',
    codes: Object.keys(OPERATOR_AUTHORITY_ERRORS),
    // The admin code each refusal becomes.
    metadata: (code) => `\`${entry(ADMIN_CODE_OF_OPERATOR_REFUSAL, code)}\``,
  },
  {
    section: 'MQTT broker',
    name: 'BROKER_ERRORS',
    codes: Object.keys(BROKER_ERRORS),
    // 0: not a connection refusal (the action is in the meaning).
    metadata: (code) => (entry(BROKER_ERRORS, code).returnCode === 0 ? '-' : String(entry(BROKER_ERRORS, code).returnCode)),
  },
  // Reasons a listener closes a socket before any protocol answer: no error class, no metadata.
  { section: 'TLS listeners', name: 'LISTENER_CLOSE_CODES', codes: Object.keys(LISTENER_CLOSE_CODES) },
  { section: 'Admin API', name: 'ADMIN_ERRORS', codes: Object.keys(ADMIN_ERRORS), metadata: (code) => String(entry(ADMIN_ERRORS, code)) },
  { section: 'Dashboard', name: 'DASHBOARD_ERRORS', codes: Object.keys(DASHBOARD_ERRORS), metadata: (code) => String(entry(DASHBOARD_ERRORS, code)) },
  { section: 'Operator (CLI and data directory)', name: 'OPERATOR_ERRORS', codes: Object.keys(OPERATOR_ERRORS), metadata: (code) => String(entry(OPERATOR_ERRORS, code)) },
  { section: 'Device SDK', name: 'SDK_ERRORS', codes: Object.keys(SDK_ERRORS) },
  {
    section: 'Device SDK: broker refusals (CONNACK_<n>)',
    name: 'CONNACK_REFUSALS',
    codes: Object.keys(CONNACK_REFUSALS),
    metadata: (code) => String(entry(CONNACK_REFUSALS, code).returnCode),
  },
  { section: 'Simulator', name: 'SIM_ERRORS', codes: Object.keys(SIM_ERRORS), metadata: (code) => String(entry(SIM_ERRORS, code)) },
];

const ALL_CODES = new Set(CATALOGUES.flatMap((catalogue) => catalogue.codes));

const sorted = (codes: Iterable<string>): string[] => [...codes].sort();

const loaded = (async () => {
  const markdown = await readFile(CATALOGUE_PAGE, 'utf8');
  return { markdown, sections: catalogueSections(markdown) };
})();

for (const catalogue of CATALOGUES) {
  test(`"## ${catalogue.section}" lists exactly ${catalogue.name}${catalogue.metadata ? ', with its metadata' : ''}`, async (t) => {
    const rows = (await loaded).sections.get(catalogue.section);
    if (!rows) return t.fail(`docs/errors.md has no "## ${catalogue.section}" section`);
    t.true(catalogue.codes.length > 0, `${catalogue.name} is empty`);
    t.deepEqual(sorted(rows.map((row) => row.code)), sorted(catalogue.codes), `codes in docs/errors.md vs ${catalogue.name}`);
    for (const row of rows) {
      if (!catalogue.codes.includes(row.code)) continue; // reported by the comparison above
      if (catalogue.metadata) t.is(row.cells[1], catalogue.metadata(row.code), `docs/errors.md line ${row.line}: ${row.code}`);
      // Every table ends with prose: the meaning, or (enrollment) what the device should do.
      t.true(row.cells.length >= (catalogue.metadata ? 3 : 2) && (row.cells.at(-1) ?? '').length > 10, `docs/errors.md line ${row.line}: ${row.code} needs a meaning`);
    }
  });
}

test('every code is in one catalogue and listed once; every code the page mentions exists', async (t) => {
  const { markdown, sections } = await loaded;
  const catalogued = CATALOGUES.flatMap((catalogue) => catalogue.codes);
  t.deepEqual(catalogued.filter((code, index) => catalogued.indexOf(code) !== index), [], 'codes in two catalogues');
  const listed = [...sections.values()].flat().map((row) => row.code);
  t.deepEqual(listed.filter((code, index) => listed.indexOf(code) !== index), [], 'codes listed twice');
  // Anything shaped like a code of one of the catalogues' prefixes, except the objects' own names.
  const prefixes = new Set(catalogued.map((code) => code.split('_')[0]));
  const names = new Set([...CATALOGUES.map((catalogue) => catalogue.name), 'ENROLL_ERROR_CODES', 'ENROLL_HTTP_STATUS', 'ADMIN_CODE_OF_OPERATOR_REFUSAL']);
  const mentioned = [...markdown.matchAll(/\b([A-Z]+)_[A-Z0-9_]*[A-Z0-9]\b/g)].filter((match) => prefixes.has(match[1] ?? '')).map((match) => match[0]);
  t.deepEqual(sorted(new Set(mentioned.filter((code) => !ALL_CODES.has(code) && !names.has(code)))), [], 'codes in docs/errors.md that no catalogue has');
});

test('the wire contract names stay: ENROLL_ERROR_CODES and ENROLL_HTTP_STATUS are ENROLL_ERRORS', (t) => {
  t.deepEqual([...ENROLL_ERROR_CODES], Object.keys(ENROLL_ERRORS));
  t.true(Object.isFrozen(ENROLL_ERROR_CODES));
  t.is(ENROLL_HTTP_STATUS, ENROLL_ERRORS);
});

/** One instance of every error class of the packages, as its throwers make it. */
const SAMPLES: readonly FleetgateError[] = [
  new EnrollmentError('ENROLL_RATE_LIMITED', 'slow down', { retryAfterSeconds: 5 }),
  new PkiError('PKI_KEY_FILE', 'not a key'),
  new DerError('truncated'),
  new RegistryError('REGISTRY_LOCKED', 'locked'),
  new OperatorAuthorityError('OPERATOR_TRUST_CONFLICT', 'namespace acme. overlaps acme.b.'),
  new BrokerError('BROKER_KEEPALIVE', 'keepalive 0'),
  new AdminError('ADMIN_DEVICE_NOT_FOUND', 'no device x'),
  new DashboardError('DASHBOARD_TOKEN_INVALID', 'not this run\'s token'),
  new ConfigError('bad config'),
  new InitError('bad hostname'),
  new DataDirError('DATA_NOT_INITIALIZED', 'run init'),
  new BatchError('bad model'),
  new ServiceCredentialError('bad name'),
  new clusterModule.ClusterError('SERVE_CLUSTER_INVALID', 'cluster mode needs PostgreSQL'),
  new clusterModule.WorkerError('SERVE_CLUSTER_UNREACHABLE', 'Redis does not answer at redis://127.0.0.1:6379'),
  new CliError('CLI_TLS_FAILED', 'tls'),
  new UsageError('missing --count'),
  new SdkError('SDK_NETWORK', 'offline'),
  new ConnectError({ kind: 'refused', returnCode: 2, message: 'identifier rejected' }),
  new Refusal('CONNACK_5', 'not authorized'),
  new Retry('SDK_ENROLL_UNAVAILABLE', 'busy', 1000),
  new SimUsageError('bad --mix'),
];

test('every error class extends FleetgateError, with a catalogued code and its own name', (t) => {
  for (const error of SAMPLES) {
    const label = error.constructor.name;
    t.true(error instanceof FleetgateError, `${label} extends FleetgateError`);
    t.true(error instanceof Error, `${label} is an Error`);
    t.true(ALL_CODES.has(error.code), `${label}: ${error.code} is catalogued`);
    t.is(error.name, label, `${label}: name`);
    t.true(error.message.length > 0, `${label}: message`);
  }
  const cause = new Error('internal');
  t.is(new PkiError('PKI_KEY_FILE', 'not a key', { cause }).cause, cause, 'cause is kept');
  t.is(new ConfigError('bad', { cause }).cause, cause, 'cause is kept by the one-code classes');
});

test('the modules that declare error classes export none that does not extend FleetgateError, and each has a sample', (t) => {
  const modules = {
    sdkErrorsModule,
    sdkConnectorModule,
    sdkLifecycleModule,
    sdkIndexModule,
    adminModule,
    dashboardModule,
    authorityModule,
    brokerModule,
    adminClientModule,
    argsModule,
    cliModule,
    configModule,
    authoritiesModule,
    initModule,
    batchModule,
    serviceModule,
    clusterModule,
    derModule,
    pkiModule,
    registryModule,
    simModule,
  };
  const found = new Set<unknown>();
  for (const [moduleName, exported] of Object.entries(modules)) {
    for (const [name, value] of Object.entries(exported)) {
      if (value === FleetgateError || typeof value !== 'function' || !(value.prototype instanceof Error)) continue;
      found.add(value);
      t.true(value.prototype instanceof FleetgateError, `${moduleName}.${name} extends FleetgateError`);
    }
  }
  // Both ways: every sample comes from these modules, and every class found has a sample above.
  const sampled = new Set<unknown>(SAMPLES.map((error) => error.constructor));
  t.deepEqual(sorted([...found].map((value) => (value as { name: string }).name)), sorted([...sampled].map((value) => (value as { name: string }).name)));
});
