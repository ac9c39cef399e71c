import { FleetgateError } from '@fleetgate/device-sdk/errors';
import { exitStatus, OPERATOR_ERRORS } from './errors.ts';

/** What `fleetgate` prints (`fleetgate: CODE: message`) and exits with for an operator error. */
export interface OperatorError {
  readonly code: string;
  readonly message: string;
  readonly exit: number;
}

/**
 * Errors whose message is meant for the operator, with a stable code: every fleetgate error
 * (its exit status from the operator catalogue, else 1), and a listener that cannot bind.
 */
export function operatorError(error: unknown): OperatorError | undefined {
  if (error instanceof FleetgateError) return { code: error.code, message: error.message, exit: exitStatus(error.code) };
  const errno = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (errno.code === 'EADDRINUSE' || errno.code === 'EACCES' || errno.code === 'EADDRNOTAVAIL') {
    return {
      code: 'SERVE_LISTEN_FAILED',
      message: `cannot listen on ${errno.address ?? '?'}:${errno.port ?? '?'} (${errno.code}): another process holds the port, or the address is not local; choose other --*-port or --host values`,
      exit: OPERATOR_ERRORS.SERVE_LISTEN_FAILED,
    };
  }
  return undefined;
}
