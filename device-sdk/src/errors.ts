import type { EnrollErrorCode } from './protocol.ts';

/** Stable codes of SDK errors. */
export type SdkErrorCode =
  | 'SDK_ENROLL_REJECTED'
  | 'SDK_ENROLL_UNAVAILABLE'
  | 'SDK_NETWORK'
  | 'SDK_BAD_RESPONSE'
  | 'SDK_CERT_KEY_MISMATCH'
  | 'SDK_CERT_UNTRUSTED'
  | 'SDK_CSR_INVALID'
  | 'SDK_STORE_CORRUPT'
  | 'SDK_NOT_PROVISIONED'
  | 'SDK_REFUSED'
  | 'SDK_NOT_CONNECTED'
  | 'SDK_TOPIC_OUTSIDE_NAMESPACE'
  | 'SDK_STOPPED';

/** An SDK failure with a stable code; `serverCode` carries the server's reason when there is one. */
export class SdkError extends Error {
  override readonly name = 'SdkError';
  readonly code: SdkErrorCode;
  readonly status: number | undefined;
  readonly serverCode: EnrollErrorCode | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: SdkErrorCode,
    message: string,
    details: { status?: number; serverCode?: EnrollErrorCode; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: details.cause });
    this.code = code;
    this.status = details.status;
    this.serverCode = details.serverCode;
    this.retryAfterSeconds = details.retryAfterSeconds;
  }
}
