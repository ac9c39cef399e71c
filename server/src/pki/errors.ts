/**
 * Errors of the PKI core. Transport-neutral: the enrollment layer maps them to HTTP statuses.
 */

/** Stable codes of PKI errors. Never reuse a code for another meaning. */
export type PkiErrorCode =
  | 'PKI_CSR_MALFORMED'
  | 'PKI_CSR_SIGNATURE'
  | 'PKI_CSR_ALGORITHM'
  | 'PKI_KEY_POLICY'
  | 'PKI_KEY_FILE'
  | 'PKI_KEY_EXISTS'
  | 'PKI_PASSPHRASE'
  | 'PKI_PEM_MALFORMED';

/** A PKI failure with a stable code and a message safe to show to the requester. */
export class PkiError extends Error {
  override readonly name = 'PkiError';
  constructor(
    readonly code: PkiErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
