import { FleetgateError } from '@fleetgate/device-sdk/errors';
import type { OperatorAuthorityErrorCode } from '../authority/errors.ts';

/** Admin API error codes and their HTTP statuses. Stable; listed in docs/errors.md. */
export const ADMIN_ERRORS = {
  ADMIN_CLIENT_CERT_REQUIRED: 401,
  ADMIN_CLIENT_CERT_UNTRUSTED: 401,
  ADMIN_NOT_OPERATOR: 403,
  /** The operator certificate was revoked (`fleetgate operator revoke`). */
  ADMIN_OPERATOR_REVOKED: 401,
  /** No operator or service certificate with that serial or name on record. */
  ADMIN_CREDENTIAL_NOT_FOUND: 404,
  /** The revocation would leave no valid operator certificate on record (`--force` to do it anyway). */
  ADMIN_LAST_OPERATOR: 409,
  ADMIN_BAD_REQUEST: 400,
  ADMIN_TOO_LARGE: 413,
  ADMIN_UNSUPPORTED_MEDIA_TYPE: 415,
  ADMIN_NOT_FOUND: 404,
  ADMIN_DEVICE_NOT_FOUND: 404,
  ADMIN_TRUST_NOT_FOUND: 404,
  ADMIN_TRUST_INVALID: 400,
  ADMIN_TRUST_SCOPE_REQUIRED: 400,
  ADMIN_TRUST_CONFLICT: 409,
  ADMIN_INVALID_STATE: 409,
  ADMIN_BULK_REFUSED: 409,
  ADMIN_TRUST_EXISTS: 409,
  ADMIN_METHOD_NOT_ALLOWED: 405,
  ADMIN_INTERNAL: 500,
  ADMIN_UNAVAILABLE: 503,
} as const;

export type AdminErrorCode = keyof typeof ADMIN_ERRORS;

/**
 * The admin code of each refusal of the operator authority (docs/errors.md, "Operator
 * authority"): the admin server answers an `OperatorAuthorityError` with it, a bulk action
 * reports each refused device with it. Total, so a new authority code does not compile until it
 * has one.
 */
export const ADMIN_CODE_OF_OPERATOR_REFUSAL: { readonly [Code in OperatorAuthorityErrorCode]: AdminErrorCode } = {
  OPERATOR_DEVICE_NOT_FOUND: 'ADMIN_DEVICE_NOT_FOUND',
  OPERATOR_INVALID_STATE: 'ADMIN_INVALID_STATE',
  OPERATOR_TRUST_INVALID: 'ADMIN_TRUST_INVALID',
  OPERATOR_TRUST_SCOPE_REQUIRED: 'ADMIN_TRUST_SCOPE_REQUIRED',
  OPERATOR_TRUST_EXISTS: 'ADMIN_TRUST_EXISTS',
  OPERATOR_TRUST_CONFLICT: 'ADMIN_TRUST_CONFLICT',
  OPERATOR_TRUST_NOT_FOUND: 'ADMIN_TRUST_NOT_FOUND',
  OPERATOR_CREDENTIAL_NOT_FOUND: 'ADMIN_CREDENTIAL_NOT_FOUND',
  OPERATOR_LAST_CREDENTIAL: 'ADMIN_LAST_OPERATOR',
};

/**
 * A refused admin request: JSON `{ "error": { "code", "message" } }` with the code's status. The
 * server throws it; the CLI's admin client makes one from the refusal it receives.
 */
export class AdminError extends FleetgateError<AdminErrorCode> {
  override readonly name = 'AdminError';
  constructor(code: AdminErrorCode, message: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(code, message, options);
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
  /** For ADMIN_UNAVAILABLE: when to try again, sent as `Retry-After` (RFC 9110 §10.2.3). */
  readonly retryAfterSeconds: number | undefined;

  get status(): number {
    return ADMIN_ERRORS[this.code];
  }
}
