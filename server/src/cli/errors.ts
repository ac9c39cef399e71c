import { FleetgateError } from '@fleetgate/device-sdk/errors';

/**
 * The operator's codes and the exit status of `fleetgate` for each: the CLI's own failures and
 * those of the modules it drives (configuration, data directory, factory, `serve`). Listed in
 * docs/errors.md under "Operator". Codes of other catalogues (PKI_, REGISTRY_, ADMIN_, ...) that
 * reach the operator exit with status 1; an error the admin API sends keeps the API's own code
 * (an AdminError, admin/errors.ts).
 */
export const OPERATOR_ERRORS = {
  /** `<data>/config.json` is invalid (config/config.ts). */
  CONFIG_INVALID: 1,
  /** `fleetgate service issue`: invalid service name or lifetime (factory/service-credential.ts). */
  SERVICE_INVALID: 1,
  /** `fleetgate bootstrap issue`: invalid model, count or lifetime (factory/bootstrap-batch.ts). */
  BOOTSTRAP_INVALID: 1,
  /** A record file in `<data>/batches/` cannot be read or is invalid; skipped at import (factory/batch-files.ts). */
  BATCH_FILE_INVALID: 1,
  /** A certificate file of the data directory is missing (datadir/authorities.ts). */
  DATA_NOT_INITIALIZED: 1,
  /** A file of the data directory is not a PEM certificate, or a CA key does not match. */
  DATA_FILE_INVALID: 1,
  /** The command line is wrong (args.ts). */
  CLI_USAGE: 2,
  /** `fleetgate init --hostname`: neither a DNS name nor an IP address (datadir/init.ts). */
  INIT_INVALID_HOSTNAME: 1,
  /** `fleetgate serve` cannot bind a listener (operator-error.ts). */
  SERVE_LISTEN_FAILED: 1,
  /** `fleetgate serve`: cluster settings that cannot work (Redis without a PostgreSQL registry, workers without both) (server.ts, cluster/). */
  SERVE_CLUSTER_INVALID: 2,
  /** `fleetgate serve --cluster-redis`: Redis does not answer at start. */
  SERVE_CLUSTER_UNREACHABLE: 1,
  /** `fleetgate serve --workers N`: a worker died at start without a code of its own, or kept dying (restarts per minute exhausted) (cluster/worker-pool.ts). */
  SERVE_WORKER_FAILED: 1,
  /** No connection to the admin API: refused, unknown host, timed out, reset. */
  CLI_SERVER_UNREACHABLE: 1,
  /** The TLS connection failed: the server certificate does not chain to the root, or does not name the host, or the other end does not speak TLS. */
  CLI_TLS_FAILED: 1,
  /** The server answered something that is not the admin API's JSON (or CRL). */
  CLI_BAD_RESPONSE: 1,
  /** `fleetgate dashboard`: the page's bundle is missing (a checkout where `npm run build` has not run) (dashboard/assets.ts). */
  CLI_DASHBOARD_NOT_BUILT: 1,
  /** `fleetgate dashboard --port P`: the port cannot be bound on 127.0.0.1 (taken, or not allowed). */
  CLI_DASHBOARD_LISTEN_FAILED: 1,
  /** A file named on the command line cannot be read or does not hold what it should. */
  CLI_INPUT_INVALID: 1,
  /** `fleetgate audit verify` found the audit hash chain broken (on the server, or in an exported file). */
  CLI_AUDIT_BROKEN: 1,
  /** A file named by `--out` cannot be written (`fleetgate audit export`). */
  CLI_OUTPUT_FAILED: 1,
  /** The operator answered no (or nothing) to a confirmation on the terminal; nothing was done. */
  CLI_ABORTED: 1,
  /** A bulk device action (`--continue-on-error`) changed some devices and was refused for others. */
  CLI_PARTIAL: 1,
} as const;

/** A stable operator code. */
export type OperatorErrorCode = keyof typeof OPERATOR_ERRORS;

/** Names operator codes, checked: `OperatorCode<'CONFIG_INVALID'>` does not compile unless the code is catalogued. */
export type OperatorCode<Code extends OperatorErrorCode> = Code;

/** The codes of the CLI's own failures. */
export type CliErrorCode = Extract<OperatorErrorCode, `CLI_${string}`>;

/** Exit status of `fleetgate` for an error code: the operator catalogue's, else 1. */
export function exitStatus(code: string): number {
  return Object.hasOwn(OPERATOR_ERRORS, code) ? OPERATOR_ERRORS[code as OperatorErrorCode] : 1;
}

/** A CLI failure (not of the server it talks to) with a stable code and a message for the operator. */
export class CliError<Code extends CliErrorCode = CliErrorCode> extends FleetgateError<Code> {
  override readonly name: string = 'CliError';
}

/**
 * Writes a failure to stderr the way every command does: `fleetgate: CODE: message` (and an
 * optional hint line), or, under `--json`, one JSON object `{ "error": { "code", "message", ... } }`
 * so a script reads errors the way it reads results.
 */
export function writeFailure(code: string, message: string, options: { json?: boolean; hint?: string; extra?: Record<string, unknown> } = {}): void {
  if (options.json) {
    process.stderr.write(`${JSON.stringify({ error: { code, message, ...(options.hint ? { hint: options.hint } : {}), ...options.extra } })}\n`);
    return;
  }
  process.stderr.write(`fleetgate: ${code}: ${message}\n${options.hint ? `hint: ${options.hint}\n` : ''}`);
}

/** Whether a command line asks for JSON output (`--json`, before the `--` that ends options). */
export function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}
