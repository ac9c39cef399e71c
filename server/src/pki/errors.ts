import { FleetgateError } from '@fleetgate/device-sdk/errors';
import type { EnrollErrorCode } from '@fleetgate/device-sdk/protocol';

/**
 * Errors of the PKI core. Transport-neutral: `enroll` names the enrollment code a CSR error
 * becomes before it reaches a device (the authority applies it, csr-policy.ts); `null` means the
 * error is not a device's doing and reaches the operator as is (CLI, exit status 1).
 * Never reuse a code for another meaning.
 */
export const PKI_ERRORS = {
  PKI_CSR_MALFORMED: { enroll: 'ENROLL_CSR_MALFORMED' },
  PKI_CSR_SIGNATURE: { enroll: 'ENROLL_CSR_SIGNATURE' },
  PKI_CSR_ALGORITHM: { enroll: 'ENROLL_CSR_ALGORITHM' },
  PKI_KEY_POLICY: { enroll: 'ENROLL_KEY_POLICY' },
  PKI_KEY_FILE: { enroll: null },
  PKI_KEY_EXISTS: { enroll: null },
  PKI_PASSPHRASE: { enroll: null },
  PKI_PEM_MALFORMED: { enroll: null },
} as const satisfies Record<string, { readonly enroll: EnrollErrorCode | null }>;

/** Stable codes of PKI errors. */
export type PkiErrorCode = keyof typeof PKI_ERRORS;

/** A PKI failure with a stable code and a message safe to show to the requester. */
export class PkiError extends FleetgateError<PkiErrorCode> {
  override readonly name = 'PkiError';
}
