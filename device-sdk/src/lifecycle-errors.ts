import { FleetgateError } from './fleetgate-error.ts';
import type { DeviceErrorCode } from './errors.ts';

/**
 * The two outcomes of a failed step of the device lifecycle (internal to FleetDevice). Both keep
 * the code of what failed, so the `refused` state and the warnings name it.
 */

/** The device was refused for good; the lifecycle stops in state `refused` with this code. */
export class Refusal extends FleetgateError<DeviceErrorCode> {
  override readonly name = 'Refusal';
}

/** A retryable failure, with the server's Retry-After when it gave one. */
export class Retry extends FleetgateError<DeviceErrorCode> {
  override readonly name = 'Retry';

  constructor(
    code: DeviceErrorCode,
    reason: string,
    readonly notBeforeMs = 0,
  ) {
    super(code, reason);
  }
}
