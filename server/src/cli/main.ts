import { PkiError } from '../pki/errors.ts';
import { RegistryError } from '../registry/errors.ts';
import { ConfigError } from '../config/config.ts';
import { DataDirError } from '../datadir/authorities.ts';
import { BatchError } from '../factory/bootstrap-batch.ts';
import { InitError } from '../datadir/init.ts';
import { ServiceCredentialError } from '../factory/service-credential.ts';
import { parseCommandArgs, UsageError, type Command } from './args.ts';
import { bootstrapIssueCommand } from './commands/bootstrap-issue.ts';
import { initCommand } from './commands/init.ts';
import { serveCommand } from './commands/serve.ts';
import { serviceIssueCommand } from './commands/service-issue.ts';
import { deviceDisableCommand, deviceEnableCommand, deviceListCommand, deviceResetCommand, deviceRevokeCommand, deviceShowCommand } from './commands/device.ts';
import { bootstrapListCommand, bootstrapTrustCommand, bootstrapUntrustCommand } from './commands/bootstrap-trust.ts';
import { auditCommand, auditVerifyCommand } from './commands/audit.ts';
import { crlCommand } from './commands/crl.ts';
import { operatorIssueCommand } from './commands/operator-issue.ts';

const COMMANDS: readonly Command[] = [
  initCommand,
  serveCommand,
  bootstrapIssueCommand,
  serviceIssueCommand,
  bootstrapTrustCommand,
  bootstrapListCommand,
  bootstrapUntrustCommand,
  deviceListCommand,
  deviceShowCommand,
  deviceRevokeCommand,
  deviceDisableCommand,
  deviceEnableCommand,
  deviceResetCommand,
  auditCommand,
  auditVerifyCommand,
  crlCommand,
  operatorIssueCommand,
];

function topHelp(): string {
  const width = Math.max(...COMMANDS.map((command) => command.path.join(' ').length));
  const lines = COMMANDS.map((command) => `  ${command.path.join(' ').padEnd(width)}  ${command.summary}`);
  return `Usage: fleetgate <command> [options]

fleetgate: private CA, EST enrollment and mTLS front door for IoT device fleets.

Commands:
${lines.join('\n')}

Run \`fleetgate <command> --help\` for the options of a command.
Environment: FLEETGATE_DATA (data directory), FLEETGATE_CA_PASSPHRASE, FLEETGATE_LOG_LEVEL.`;
}

/** Errors whose message is meant for the operator, with a stable code. */
function operatorError(error: unknown): { code: string; message: string } | undefined {
  if (error instanceof PkiError || error instanceof RegistryError || error instanceof DataDirError) {
    return { code: error.code, message: error.message };
  }
  if (error instanceof ConfigError || error instanceof BatchError || error instanceof InitError || error instanceof ServiceCredentialError) return { code: error.code, message: error.message };
  const errno = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (errno.code === 'EADDRINUSE' || errno.code === 'EACCES' || errno.code === 'EADDRNOTAVAIL') {
    return {
      code: 'SERVE_LISTEN_FAILED',
      message: `cannot listen on ${errno.address ?? '?'}:${errno.port ?? '?'} (${errno.code}): another process holds the port, or the address is not local; choose other --*-port or --host values`,
    };
  }
  return undefined;
}

/** Runs the CLI; returns the exit code (0 ok, 1 failed, 2 usage). */
export async function main(argv: string[]): Promise<number> {
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
      process.stderr.write(`fleetgate: CLI_USAGE: ${argv[0]} needs a command\n\n${text}`);
      return 2;
    }
    const wantsHelp = argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help';
    process[wantsHelp ? 'stdout' : 'stderr'].write(`${wantsHelp ? '' : `unknown command: ${argv.join(' ')}\n\n`}${topHelp()}\n`);
    return wantsHelp ? 0 : 2;
  }
  try {
    const { values, positionals } = parseCommandArgs(command, argv.slice(command.path.length));
    if (values.help) {
      process.stdout.write(`${command.help}\n`);
      return 0;
    }
    return await command.run(values, positionals);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`fleetgate: ${error.code}: ${error.message}\n`);
      return 2;
    }
    const known = operatorError(error);
    if (known) {
      process.stderr.write(`fleetgate: ${known.code}: ${known.message}\n`);
      return 1;
    }
    process.stderr.write(`fleetgate: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}
