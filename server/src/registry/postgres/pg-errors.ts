import { RegistryError } from '../errors.ts';

/**
 * SQLSTATE classes and codes that mean "the database is not there right now", as opposed to a
 * query that failed: class 08 (connection exception), 57P01-57P03 (administrator or crash
 * shutdown, cannot connect now: a server starting or stopping), 53300 (too many connections).
 */
const UNAVAILABLE_STATES = new Set(['57P01', '57P02', '57P03', '53300']);

/** Socket errors of a server that is down or unreachable. */
const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/**
 * Messages of node-postgres for a connection that ended or could not be had in time; it throws
 * plain Errors for these, with no code.
 */
const UNAVAILABLE_MESSAGES = [/^Connection terminated/, /timeout exceeded when trying to connect/, /Client has encountered a connection error/, /Query read timeout/, /Cannot use a pool after calling end/];

/** Whether `error` says the database did not answer (as opposed to refusing a query). */
export function isUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (code.startsWith('08') || UNAVAILABLE_STATES.has(code) || UNAVAILABLE_ERRNOS.has(code))) return true;
  if (error instanceof AggregateError) return error.errors.some(isUnavailable);
  return UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(error.message));
}

/**
 * A RegistryError for anything a PostgreSQL call threw: a RegistryError as it is,
 * `REGISTRY_UNAVAILABLE` when the database did not answer, `REGISTRY_IO` otherwise.
 */
export function toRegistryError(error: unknown, doing: string): RegistryError {
  if (error instanceof RegistryError) return error;
  if (isUnavailable(error)) return new RegistryError('REGISTRY_UNAVAILABLE', `the registry database does not answer (${doing}): ${(error as Error).message}`, { cause: error });
  return new RegistryError('REGISTRY_IO', `the registry database failed (${doing}): ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}
