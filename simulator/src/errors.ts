import { FleetgateError } from '@fleetgate/device-sdk/errors';

/** The simulator's codes and the exit status of `fleetgate-sim` for each (docs/errors.md, "Simulator"). */
export const SIM_ERRORS = {
  /** The command line is wrong. */
  SIM_USAGE: 2,
} as const;

/** A stable simulator code. */
export type SimErrorCode = keyof typeof SIM_ERRORS;

/** The command line is wrong (`SIM_USAGE`, exit status 2). */
export class SimUsageError extends FleetgateError<Extract<SimErrorCode, 'SIM_USAGE'>> {
  override readonly name = 'SimUsageError';
  constructor(message: string, options?: ErrorOptions) {
    super('SIM_USAGE', message, options);
  }
}
