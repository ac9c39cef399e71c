/**
 * The wire contract between a fleetgate device and the fleetgate server.
 *
 * The server imports these constants from here, so a device built against this SDK and the server
 * it talks to can never disagree on a path, a media type or an error code.
 */

/** EST well-known prefix. RFC 7030 §3.2.2. */
export const EST_PREFIX = '/.well-known/est';

/** EST operation paths. RFC 7030 §3.2.2, table 1. */
export const EST_PATHS = {
  cacerts: `${EST_PREFIX}/cacerts`,
  simpleenroll: `${EST_PREFIX}/simpleenroll`,
  simplereenroll: `${EST_PREFIX}/simplereenroll`,
  csrattrs: `${EST_PREFIX}/csrattrs`,
} as const;

/** Media types used by EST. RFC 7030 §4.1.3, §4.2.3, §4.5.2; RFC 8951 §3.2 (base64 always). */
export const MEDIA_TYPES = {
  pkcs10: 'application/pkcs10',
  certsOnly: 'application/pkcs7-mime; smime-type=certs-only',
  pkcs7: 'application/pkcs7-mime',
  csrattrs: 'application/csrattrs',
  text: 'text/plain; charset=utf-8',
} as const;

/**
 * Response header carrying the stable error code of a refusal (the body carries the reason), in
 * the lower case that Node's http module (and HTTP/2) uses for received header names: read it
 * with this key. The server writes it as `Fleetgate-Error-Code` (canonical case, for clients that
 * compare header names byte for byte); header names are case-insensitive (RFC 9110 §5.1).
 */
export const ERROR_CODE_HEADER = 'fleetgate-error-code';

/** Default ports of the fleetgate listeners. */
export const DEFAULT_PORTS = {
  est: 8443,
  mqtt: 8883,
  admin: 9443,
  metrics: 9464,
} as const;

/**
 * Error codes a device can receive from the enrollment endpoint. Stable: a code is never reused
 * for a different meaning. Documented in docs/errors.md.
 */
export const ENROLL_ERROR_CODES = [
  'ENROLL_BAD_CONTENT_TYPE',
  'ENROLL_BAD_BASE64',
  'ENROLL_CSR_MALFORMED',
  'ENROLL_CSR_SIGNATURE',
  'ENROLL_CSR_ALGORITHM',
  'ENROLL_KEY_POLICY',
  'ENROLL_IDENTITY_MISMATCH',
  'ENROLL_EXTENSION_REFUSED',
  'ENROLL_TOO_LARGE',
  'ENROLL_BODY_TIMEOUT',
  'ENROLL_CLIENT_CERT_REQUIRED',
  'ENROLL_CLIENT_CERT_UNTRUSTED',
  'ENROLL_CLIENT_CERT_EXPIRED',
  'ENROLL_BOOTSTRAP_REQUIRED',
  'ENROLL_OPERATIONAL_REQUIRED',
  'ENROLL_CERT_UNKNOWN',
  'ENROLL_CERT_SUPERSEDED',
  'ENROLL_DEVICE_REVOKED',
  'ENROLL_DEVICE_DISABLED',
  'ENROLL_ALREADY_ENROLLED',
  'ENROLL_CONFLICT',
  'ENROLL_MODEL_UNKNOWN',
  'ENROLL_ID_OUTSIDE_TRUST',
  'ENROLL_ID_RESERVED',
  'ENROLL_TRUST_UNSCOPED',
  'ENROLL_RATE_LIMITED',
  'ENROLL_NOT_FOUND',
  'ENROLL_LABEL_UNKNOWN',
  'ENROLL_METHOD_NOT_ALLOWED',
  'ENROLL_NOT_IMPLEMENTED',
  'ENROLL_UNAVAILABLE',
  'ENROLL_INTERNAL',
] as const;

/** A stable enrollment error code. */
export type EnrollErrorCode = (typeof ENROLL_ERROR_CODES)[number];

/** Topic namespace of a device: everything it may publish and subscribe to by default. */
export function deviceTopicRoot(deviceId: string): string {
  return `devices/${deviceId}`;
}

/**
 * Syntax of a device identity: lower-case, safe in an MQTT topic level (no `/`, `+`, `#`), in a
 * file name and in an X.509 CommonName. At most 64 characters (RFC 5280 ub-common-name).
 */
export const DEVICE_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Syntax of a device model name (`thermostat`, `camera`, `car`, ...). */
export const MODEL_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

/** Whether a string is a valid device identity. */
export function isDeviceId(value: string): boolean {
  return DEVICE_ID_PATTERN.test(value);
}

/** URI form of a device identity, carried in the certificate's subjectAltName. */
export function deviceIdentityUri(deviceId: string): string {
  return `urn:fleetgate:device:${deviceId}`;
}
