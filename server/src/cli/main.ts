import { parseCommandArgs, type Command } from './args.ts';
import { readFile } from 'node:fs/promises';
import { OPERATOR_ERRORS, wantsJson, writeFailure, type CliErrorCode } from './errors.ts';

/**
 * One command of the CLI: the words that select it, the line `fleetgate --help` shows, and its
 * module, loaded only when the command runs or shows its help. `fleetgate --help` loads nothing
 * else, and an admin command never loads the server (aedes, LevelDB, the CA): start-up time is
 * what an operator's scripts pay on every call.
 */
interface CommandEntry {
  readonly path: readonly string[];
  readonly summary: string;
  load(): Promise<Command>;
}

const COMMANDS: readonly CommandEntry[] = [
  { path: ['init'], summary: 'create the private CA, server TLS and operator certificates (idempotent)', load: async () => (await import('./commands/init.ts')).initCommand },
  { path: ['serve'], summary: 'run the fleetgate listeners: EST enrollment, MQTT broker, admin API, metrics', load: async () => (await import('./commands/serve.ts')).serveCommand },
  { path: ['bootstrap', 'issue'], summary: 'issue factory bootstrap certificates offline from the factory CA', load: async () => (await import('./commands/bootstrap-issue.ts')).bootstrapIssueCommand },
  {
    path: ['service', 'issue'],
    summary: 'issue an MQTT client certificate for a backend service (telemetry consumer, command sender)',
    load: async () => (await import('./commands/service-issue.ts')).serviceIssueCommand,
  },
  {
    path: ['bootstrap', 'trust'],
    summary: 'trust a manufacturer CA for bootstrap enrollment, within an id namespace and/or an allow-list (admin API)',
    load: async () => (await import('./commands/bootstrap-trust.ts')).bootstrapTrustCommand,
  },
  { path: ['bootstrap', 'list'], summary: 'list the trusted manufacturer CAs (admin API)', load: async () => (await import('./commands/bootstrap-trust.ts')).bootstrapListCommand },
  { path: ['bootstrap', 'untrust'], summary: 'stop trusting a manufacturer CA for bootstrap enrollment (admin API)', load: async () => (await import('./commands/bootstrap-trust.ts')).bootstrapUntrustCommand },
  { path: ['device', 'list'], summary: 'list devices, optionally by state and model (admin API)', load: async () => (await import('./commands/device.ts')).deviceListCommand },
  { path: ['device', 'show'], summary: 'one device: state, certificate, presence, certificates and history (admin API)', load: async () => (await import('./commands/device.ts')).deviceShowCommand },
  {
    path: ['device', 'revoke'],
    summary: 'revoke a device: final; its certificates go on the CRL, its MQTT session is closed (admin API)',
    load: async () => (await import('./commands/device.ts')).deviceRevokeCommand,
  },
  {
    path: ['device', 'disable'],
    summary: 'disable a device until enabled again: MQTT session closed, reconnects refused (admin API)',
    load: async () => (await import('./commands/device.ts')).deviceDisableCommand,
  },
  { path: ['device', 'enable'], summary: 'enable a disabled device again (admin API)', load: async () => (await import('./commands/device.ts')).deviceEnableCommand },
  { path: ['device', 'reset'], summary: 'allow one more bootstrap enrollment for a device (also after revocation) (admin API)', load: async () => (await import('./commands/device.ts')).deviceResetCommand },
  { path: ['audit'], summary: 'read the audit log: enrollments, renewals, refusals, operator actions (admin API)', load: async () => (await import('./commands/audit.ts')).auditCommand },
  { path: ['audit', 'verify'], summary: "check the audit log's hash chain, or an exported file offline; exit 1 if it is broken", load: async () => (await import('./commands/audit.ts')).auditVerifyCommand },
  { path: ['audit', 'export'], summary: 'save the audit log as JSON Lines with its hash chain, for `audit verify --file` (admin API)', load: async () => (await import('./commands/audit.ts')).auditExportCommand },
  { path: ['dashboard'], summary: 'run the operator web UI on 127.0.0.1 with a one-time token, over the admin API', load: async () => (await import('./commands/dashboard.ts')).dashboardCommand },
  { path: ['crl'], summary: 'save the current CRL of the device-issuing CA (admin API)', load: async () => (await import('./commands/crl.ts')).crlCommand },
  { path: ['operator', 'issue'], summary: 'issue an operator certificate for the admin API (offline, from the issuing CA)', load: async () => (await import('./commands/operator-issue.ts')).operatorIssueCommand },
  { path: ['operator', 'list'], summary: 'list the operator certificates on record: name, serial, issued, expires, state (admin API)', load: async () => (await import('./commands/credentials.ts')).operatorListCommand },
  { path: ['operator', 'revoke'], summary: 'revoke an operator certificate by serial or name: refused by the admin API at once (admin API)', load: async () => (await import('./commands/credentials.ts')).operatorRevokeCommand },
  { path: ['service', 'list'], summary: 'list the service certificates on record: name, serial, issued, expires, state (admin API)', load: async () => (await import('./commands/credentials.ts')).serviceListCommand },
  { path: ['service', 'revoke'], summary: 'revoke a service certificate by serial or name: its MQTT sessions are closed (admin API)', load: async () => (await import('./commands/credentials.ts')).serviceRevokeCommand },
  { path: ['bootstrap', 'import'], summary: 'import the batches and certificates issued offline into the running server now (admin API)', load: async () => (await import('./commands/credentials.ts')).bootstrapImportCommand },
  { path: ['registry', 'status'], summary: 'which registry (LevelDB or PostgreSQL), its schema version and what it holds', load: async () => (await import('./commands/registry.ts')).registryStatusCommand },
  { path: ['registry', 'export'], summary: 'write the whole registry to a file: a backup, and how a fleet moves to PostgreSQL', load: async () => (await import('./commands/registry.ts')).registryExportCommand },
  { path: ['registry', 'import'], summary: 'read a registry export into an empty registry (LevelDB or PostgreSQL), all or nothing', load: async () => (await import('./commands/registry.ts')).registryImportCommand },
  { path: ['completion'], summary: 'print a shell completion script: bash or zsh (source <(fleetgate completion bash))', load: async () => (await import('./commands/completion.ts')).completionCommand(COMMANDS) },
];

/** The version of the installed @fleetgate/server (its package.json, two levels above src/cli or dist/cli). */
async function version(): Promise<string> {
  const manifest = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof manifest.version === 'string' ? manifest.version : 'unknown';
}

function topHelp(): string {
  const width = Math.max(...COMMANDS.map((command) => command.path.join(' ').length));
  const lines = COMMANDS.map((command) => `  ${command.path.join(' ').padEnd(width)}  ${command.summary}`);
  return `Usage: fleetgate <command> [options]

fleetgate: private CA, EST enrollment and mTLS front door for IoT device fleets.

Commands:
${lines.join('\n')}

Run \`fleetgate <command> --help\` for the options of a command; \`fleetgate --version\` prints the version.
Environment: FLEETGATE_DATA (data directory), FLEETGATE_SERVER (admin API URL), FLEETGATE_REGISTRY_URL
(PostgreSQL registry), FLEETGATE_CA_PASSPHRASE, FLEETGATE_LOG_LEVEL.`;
}

/** Prints a usage error the way every command does (`fleetgate: CLI_USAGE: ...`), then `help`; exit status 2. */
function usageFailure(message: string, help: string, json: boolean): number {
  const code: CliErrorCode = 'CLI_USAGE';
  if (json) writeFailure(code, message, { json });
  else process.stderr.write(`fleetgate: ${code}: ${message}\n\n${help}`);
  return OPERATOR_ERRORS[code];
}

/** Runs the CLI; returns the exit code (0 ok, 1 failed, 2 usage). */
export async function main(argv: string[]): Promise<number> {
  const json = wantsJson(argv);
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
    process.stdout.write(`fleetgate ${await version()}\n`);
    return 0;
  }
  const words = argv.filter((arg) => !arg.startsWith('-'));
  const command = [...COMMANDS]
    .sort((a, b) => b.path.length - a.path.length)
    .find((candidate) => candidate.path.every((word, index) => words[index] === word) && argv.indexOf(candidate.path[0] as string) === 0);
  if (!command) {
    // A command group (`fleetgate bootstrap --help`): list its commands.
    const group = COMMANDS.filter((candidate) => candidate.path.length > 1 && candidate.path[0] === argv[0]);
    if (group.length > 0 && (argv.length === 1 || argv[1] === '--help' || argv[1] === '-h')) {
      const lines = group.map((candidate) => `  fleetgate ${candidate.path.join(' ')}  ${candidate.summary}`);
      const text = `Commands of fleetgate ${argv[0]}:\n${lines.join('\n')}\n\nRun \`fleetgate ${argv[0]} <command> --help\` for the options.\n`;
      // Asked for help: stdout, success. A group without a command is a usage error.
      if (argv.length > 1) {
        process.stdout.write(text);
        return 0;
      }
      return usageFailure(`${argv[0]} needs a command`, text, json);
    }
    if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      process.stdout.write(`${topHelp()}\n`);
      return 0;
    }
    // Bare `fleetgate` did nothing: a usage error like any other, so a script that lost its
    // arguments does not carry on as if something had run.
    return usageFailure(argv.length === 0 ? 'a command is required' : `unknown command: ${argv.join(' ')}`, `${topHelp()}\n`, json);
  }
  try {
    const loaded = await command.load();
    const { values, positionals } = parseCommandArgs(loaded, argv.slice(command.path.length));
    if (values.help) {
      process.stdout.write(`${loaded.help}\n`);
      return 0;
    }
    return await loaded.run(values, positionals);
  } catch (error) {
    // Loaded only on failure (it is small: the error base class and the operator catalogue).
    const { operatorError } = await import('./operator-error.ts');
    const known = operatorError(error);
    if (known) {
      writeFailure(known.code, known.message, { json });
      return known.exit;
    }
    process.stderr.write(`fleetgate: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}
