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

/**
 * Stable codes of the operator authority's refusals (operator-authority.ts), free of HTTP: the
 * admin API turns each into its own code and status (`ADMIN_CODE_OF_OPERATOR_REFUSAL` in
 * admin/errors.ts). Listed in docs/errors.md, "Operator authority".
 */
export const OPERATOR_AUTHORITY_ERRORS = {
  /** A device action named a device the registry does not know. */
  OPERATOR_DEVICE_NOT_FOUND: {},
  /** The device's state refuses the action: disabling or enabling a revoked device. */
  OPERATOR_INVALID_STATE: {},
  /** A trust registration breaks a rule: name, model, CA chain, namespace or allow-list. */
  OPERATOR_TRUST_INVALID: {},
  /** A trust registration with neither a namespace nor an allow-list. */
  OPERATOR_TRUST_SCOPE_REQUIRED: {},
  /** The CA is trusted under another name, or the name is taken and replacing was not asked for. */
  OPERATOR_TRUST_EXISTS: {},
  /** The namespace overlaps another trust's. */
  OPERATOR_TRUST_CONFLICT: {},
  /** No trust by that name to remove. */
  OPERATOR_TRUST_NOT_FOUND: {},
  /** No operator or service credential with that serial or name. */
  OPERATOR_CREDENTIAL_NOT_FOUND: {},
  /** The revocation would leave no valid operator credential, and it was not forced. */
  OPERATOR_LAST_CREDENTIAL: {},
} as const;

/** A stable code of the operator authority. */
export type OperatorAuthorityErrorCode = keyof typeof OPERATOR_AUTHORITY_ERRORS;

/**
 * An operator action the rules refuse. Nothing was written or audited; the message is safe to
 * show to the operator.
 */
export class OperatorAuthorityError extends FleetgateError<OperatorAuthorityErrorCode> {
  override readonly name = 'OperatorAuthorityError';
}
