import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError } from './errors.ts';

/** A usage error: the command line is wrong (`CLI_USAGE`, exit status 2). */
export class UsageError extends CliError<'CLI_USAGE'> {
  override readonly name: string = 'UsageError';
  constructor(message: string, options?: ErrorOptions) {
    super('CLI_USAGE', message, options);
  }
}

/** One CLI command. */
export interface Command {
  /** Words that select it, e.g. ['bootstrap', 'issue']. */
  readonly path: readonly string[];
  /** Full help text shown by --help. */
  readonly help: string;
  readonly options: NonNullable<ParseArgsConfig['options']>;
  run(values: Record<string, string | boolean | string[] | undefined>, positionals: string[]): Promise<number>;
  /** What shell completion offers beyond the option names (`fleetgate completion`). */
  readonly complete?: CompletionHints;
}

/** Values shell completion offers: for positional arguments, and for options that take one (else file names). */
export interface CompletionHints {
  readonly positionals?: readonly string[];
  readonly values?: Readonly<Record<string, readonly string[]>>;
}

/** Options every command accepts. */
export const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
} as const;

/** Parses `argv` for a command; unknown flags are usage errors. */
export function parseCommandArgs(command: Command, argv: string[]) {
  try {
    return parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...command.options }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${command.help}`);
  }
}

/** A string option that must be present. */
export function requireString(values: Record<string, unknown>, name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value.length === 0) throw new UsageError(`--${name} is required`);
  return value;
}

/** A whole-number option within bounds. */
export function integerOption(values: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max} (got ${String(raw)})`);
  }
  return value;
}
