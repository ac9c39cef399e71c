import { ENROLL_ERRORS, type EnrollErrorCode } from '@fleetgate/device-sdk/protocol';

/**
 * HTTP status of each enrollment error code. The catalogue is {@link ENROLL_ERRORS} in the SDK's
 * wire contract (a device sees the status too); this is the server's name for it.
 */
export const ENROLL_HTTP_STATUS: Readonly<Record<EnrollErrorCode, number>> = ENROLL_ERRORS;
