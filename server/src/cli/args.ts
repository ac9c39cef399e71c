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

/** Edit distance of two short strings (Levenshtein), to suggest the option a typo meant. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * One line for what node:util's parseArgs refused (its own message is several sentences about
 * `--`), naming the option, a close known option when there is one, and where the options are.
 */
export function usageLine(command: Pick<Command, 'path' | 'options'>, error: unknown): string {
  const where = `see \`fleetgate ${command.path.join(' ')} --help\``;
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  const option = /'(-{1,2}[^' ,]+)/.exec(message)?.[1] ?? '';
  const known = Object.keys({ ...COMMON_OPTIONS, ...command.options });
  const spec = { ...COMMON_OPTIONS, ...command.options }[option.replace(/^-+/, '')];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const name = option.replace(/^-+/, '');
    const close = known.filter((candidate) => distance(candidate, name) <= (candidate.length <= 3 ? 1 : 2)).sort((a, b) => distance(a, name) - distance(b, name))[0];
    return `unknown option ${option}${close ? ` (did you mean --${close}?)` : ''}; ${where}`;
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const long = /--[\w-]+/.exec(message)?.[0] ?? option;
    if (/does not take an argument/.test(message) || spec?.type === 'boolean') return `${long} takes no value; ${where}`;
    return `${long} needs a value; ${where}`;
  }
  return `${message.split('\n')[0]?.replace(/\.\s.*$/, '') ?? 'invalid arguments'}; ${where}`;
}

/** Parses `argv` for a command; unknown flags are usage errors of one line (`CLI_USAGE`, exit 2). */
export function parseCommandArgs(command: Command, argv: string[]) {
  try {
    return parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...command.options }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(usageLine(command, error), { cause: error });
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
