import type { ParseArgsConfig } from 'node:util';
import { UsageError, type Command } from './args.ts';
import { AdminError } from '../admin/errors.ts';
import { AdminClient, DEFAULT_ADMIN_URL, resolveConnection } from './admin-client.ts';
import { CliError, exitStatus, writeFailure } from './errors.ts';

/** Parsed option values, as the router hands them to a command. */
export type OptionValues = Record<string, string | boolean | string[] | undefined>;

/** Options every admin command accepts: where the server is and who the operator is. */
export const CONNECTION_OPTIONS = {
  server: { type: 'string' },
  data: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  root: { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** Help for {@link CONNECTION_OPTIONS}, appended to every admin command's help. */
export const CONNECTION_HELP = `
Connection (every admin command talks to the running server over mutual TLS):
  --server URL        admin API (else $FLEETGATE_SERVER, <data>/run/admin-url, ${DEFAULT_ADMIN_URL})
  --data DIR          data directory with operator/operator.crt|key and ca/root.crt
                      (default ./data or $FLEETGATE_DATA)
  --cert FILE         an operator certificate (PEM, with its chain) instead of the data
                      directory's, e.g. one made by \`fleetgate operator issue\`
  --key FILE          its private key (with --cert)
  --root FILE         trust anchor for the server's certificate (default <data>/ca/root.crt, or
                      root.crt next to --cert when --data is not given)
  -h, --help          this help`;

/** What an admin command's body gets. */
export interface AdminCommandContext {
  readonly values: OptionValues;
  /** The positional arguments, as many as the command declares. */
  readonly args: readonly string[];
  /** Reads the credential and makes the client; commands validate their input first. */
  connect(): Promise<AdminClient>;
}

/** The parts of an admin command; {@link adminCommand} adds the connection options and error handling. */
export interface AdminCommandSpec {
  readonly path: readonly string[];
  /** What follows `fleetgate <path>` in the usage line, e.g. `ID [--json]`. */
  readonly usage: string;
  readonly description: string;
  readonly options: NonNullable<ParseArgsConfig['options']>;
  /** Help lines of `options`, two spaces in, descriptions from column 23. */
  readonly optionsHelp: string;
  /** Names of the required positional arguments, e.g. ['ID']. */
  readonly positionals: readonly string[];
  /** Name of a positional argument that may repeat after the required ones (`ID...`). */
  readonly rest?: string;
  /** Completion hints (option values). */
  readonly complete?: Command['complete'];
  run(context: AdminCommandContext): Promise<number>;
}

/** Prints a refusal the way every fleetgate command does: `fleetgate: CODE: message` (JSON under `--json`). */
export function printError(error: CliError | AdminError, json = false): void {
  const hints: Record<string, string> = {
    ADMIN_NOT_OPERATOR: 'only operator certificates may use the admin API: use the data directory\'s operator/operator.crt, or one made by `fleetgate operator issue`',
    ADMIN_CLIENT_CERT_UNTRUSTED: 'the certificate must come from this fleet\'s issuing CA (`fleetgate operator issue --data DIR`)',
  };
  writeFailure(error.code, error.message, { json, hint: hints[error.code] });
}

/** A string option, or undefined. */
export function stringOption(values: OptionValues, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * A CLI command that talks to the admin API: common connection options and help, the declared
 * positional arguments checked, and the API's refusals printed with their code (exit 1).
 */
export function adminCommand(spec: AdminCommandSpec): Command {
  const usage = `fleetgate ${spec.path.join(' ')}${spec.usage ? ` ${spec.usage}` : ''}`;
  return {
    path: spec.path,
    help: `Usage: ${usage} [--server URL] [--data DIR | --cert FILE --key FILE]\n\n${spec.description}\n${spec.optionsHelp ? `\nOptions:\n${spec.optionsHelp}\n` : ''}${CONNECTION_HELP}`,
    options: { ...spec.options, ...CONNECTION_OPTIONS },
    ...(spec.complete ? { complete: spec.complete } : {}),
    async run(values, positionals) {
      if (positionals.length < spec.positionals.length) {
        throw new UsageError(`${spec.path.join(' ')} needs ${spec.positionals.slice(positionals.length).join(' ')} (usage: ${usage})`);
      }
      if (spec.rest === undefined && positionals.length > spec.positionals.length) {
        throw new UsageError(`unexpected argument ${JSON.stringify(positionals[spec.positionals.length])} (usage: ${usage})`);
      }
      let client: AdminClient | undefined;
      try {
        return await spec.run({
          values,
          args: positionals,
          connect: async () => {
            client ??= new AdminClient(
              await resolveConnection({
                server: stringOption(values, 'server'),
                data: stringOption(values, 'data'),
                cert: stringOption(values, 'cert'),
                key: stringOption(values, 'key'),
                root: stringOption(values, 'root'),
              }),
            );
            return client;
          },
        });
      } catch (error) {
        if (error instanceof CliError || error instanceof AdminError) {
          printError(error, values.json === true);
          return exitStatus(error.code);
        }
        throw error;
      } finally {
        client?.close();
      }
    },
  };
}
