import { FleetgateError } from './fleetgate-error.ts';
import type { EnrollErrorCode } from './protocol.ts';

/** Stable codes of SDK errors (docs/errors.md, "Device SDK"). No per-code metadata yet. */
export const SDK_ERRORS = {
  SDK_ENROLL_REJECTED: {},
  SDK_ENROLL_UNAVAILABLE: {},
  SDK_NETWORK: {},
  SDK_BAD_RESPONSE: {},
  SDK_CERT_KEY_MISMATCH: {},
  SDK_CERT_UNTRUSTED: {},
  SDK_CSR_INVALID: {},
  SDK_ENDPOINT_INVALID: {},
  SDK_STORE_CORRUPT: {},
  SDK_NOT_PROVISIONED: {},
  SDK_REFUSED: {},
  SDK_NOT_CONNECTED: {},
  SDK_TOPIC_OUTSIDE_NAMESPACE: {},
  SDK_STOPPED: {},
} as const;

/** A stable SDK error code. */
export type SdkErrorCode = keyof typeof SDK_ERRORS;

/**
 * The broker's connection refusals, by CONNACK return code (MQTT 3.1.1 §3.2.2.3, table 3.1). A
 * device refused with one of them for good ends in state `refused` with this code; CONNACK 3 is
 * retried, CONNACK 5 is first investigated over EST (docs/sdk.md).
 */
export const CONNACK_REFUSALS = {
  /** Connection Refused, unacceptable protocol version. */
  CONNACK_1: { returnCode: 1 },
  /** Connection Refused, identifier rejected (fleetgate: keepalive out of bounds). */
  CONNACK_2: { returnCode: 2 },
  /** Connection Refused, server unavailable. */
  CONNACK_3: { returnCode: 3 },
  /** Connection Refused, bad user name or password. */
  CONNACK_4: { returnCode: 4 },
  /** Connection Refused, not authorized. */
  CONNACK_5: { returnCode: 5 },
} as const;

/** A CONNACK refusal code, `CONNACK_<return code>`. */
export type ConnackRefusalCode = keyof typeof CONNACK_REFUSALS;

/** The catalogued code of a CONNACK return code; undefined for 0 (accepted) and the reserved 6-255. */
export function connackRefusalCode(returnCode: number): ConnackRefusalCode | undefined {
  const code = `CONNACK_${returnCode}`;
  return Object.hasOwn(CONNACK_REFUSALS, code) ? (code as ConnackRefusalCode) : undefined;
}

/**
 * Why a device stopped for good or is retrying: the server's enrollment code, an SDK code, or the
 * broker's CONNACK refusal. The `code` of the `refused` state and event.
 */
export type DeviceErrorCode = EnrollErrorCode | SdkErrorCode | ConnackRefusalCode;

/** An SDK failure with a stable code; `serverCode` carries the server's reason when there is one. */
export class SdkError extends FleetgateError<SdkErrorCode> {
  override readonly name = 'SdkError';
  readonly status: number | undefined;
  readonly serverCode: EnrollErrorCode | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: SdkErrorCode,
    message: string,
    details: { status?: number; serverCode?: EnrollErrorCode; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(code, message, { cause: details.cause });
    this.status = details.status;
    this.serverCode = details.serverCode;
    this.retryAfterSeconds = details.retryAfterSeconds;
  }
}
