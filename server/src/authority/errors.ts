import { FleetgateError } from '@fleetgate/device-sdk/errors';
import type { EnrollErrorCode } from '@fleetgate/device-sdk/protocol';

/**
 * A refused or failed enrollment. The code is part of the wire contract (device-sdk protocol);
 * the message is safe to send to the device; `cause` holds internals and is only logged.
 */
export class EnrollmentError extends FleetgateError<EnrollErrorCode> {
  override readonly name = 'EnrollmentError';
  constructor(code: EnrollErrorCode, message: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(code, message, options);
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
  /** For ENROLL_RATE_LIMITED and ENROLL_UNAVAILABLE: when to try again. */
  readonly retryAfterSeconds: number | undefined;
}
