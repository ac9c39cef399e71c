/**
 * Errors of the operator CLI itself (not of the server it talks to): stable codes, listed in
 * docs/errors.md under "Operator". An error the admin API sends is an {@link AdminApiError} in
 * admin-client.ts and keeps the API's own code.
 */

/** Stable codes of CLI failures (exit status 1). `CLI_USAGE` (exit 2) lives in args.ts. */
export type CliErrorCode =
  /** No connection to the admin API: refused, unknown host, timed out, reset. */
  | 'CLI_SERVER_UNREACHABLE'
  /** The TLS connection failed: the server certificate does not chain to the root, or does not name the host, or the other end does not speak TLS. */
  | 'CLI_TLS_FAILED'
  /** The server answered something that is not the admin API's JSON (or CRL). */
  | 'CLI_BAD_RESPONSE'
  /** A file named on the command line cannot be read or does not hold what it should. */
  | 'CLI_INPUT_INVALID'
  /** `fleetgate audit verify` found the audit hash chain broken. */
  | 'CLI_AUDIT_BROKEN';

/** A CLI failure with a stable code and a message for the operator. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: CliErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
