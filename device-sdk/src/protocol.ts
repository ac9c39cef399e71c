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
 * Error codes a device can receive from the enrollment endpoint, each with the HTTP status the
 * server answers it with (RFC 7030 §4.2.3 leaves the choice to the server): 400 malformed, 401
 * credential missing/untrusted/expired, 403 policy, 404 unknown path or CA label, 405 wrong
 * method, 408 body too slow, 409 identity conflict, 413 too large, 415 wrong media type, 429 rate
 * limited, 501 an EST operation fleetgate does not offer, 503 overloaded. Stable: a code is never reused for a
 * different meaning. Documented in docs/errors.md.
 */
export const ENROLL_ERRORS = {
  ENROLL_BAD_CONTENT_TYPE: 415,
  ENROLL_BAD_BASE64: 400,
  ENROLL_CSR_MALFORMED: 400,
  ENROLL_CSR_SIGNATURE: 400,
  ENROLL_CSR_ALGORITHM: 400,
  ENROLL_KEY_POLICY: 403,
  ENROLL_IDENTITY_MISMATCH: 403,
  ENROLL_EXTENSION_REFUSED: 403,
  ENROLL_TOO_LARGE: 413,
  ENROLL_BODY_TIMEOUT: 408,
  ENROLL_CLIENT_CERT_REQUIRED: 401,
  ENROLL_CLIENT_CERT_UNTRUSTED: 401,
  ENROLL_CLIENT_CERT_EXPIRED: 401,
  ENROLL_BOOTSTRAP_REQUIRED: 403,
  ENROLL_OPERATIONAL_REQUIRED: 403,
  ENROLL_CERT_UNKNOWN: 403,
  ENROLL_CERT_SUPERSEDED: 403,
  ENROLL_DEVICE_REVOKED: 403,
  ENROLL_DEVICE_DISABLED: 403,
  ENROLL_ALREADY_ENROLLED: 409,
  ENROLL_CONFLICT: 409,
  ENROLL_MODEL_UNKNOWN: 403,
  ENROLL_ID_OUTSIDE_TRUST: 403,
  ENROLL_ID_RESERVED: 403,
  ENROLL_TRUST_UNSCOPED: 403,
  ENROLL_RATE_LIMITED: 429,
  ENROLL_NOT_FOUND: 404,
  ENROLL_LABEL_UNKNOWN: 404,
  ENROLL_METHOD_NOT_ALLOWED: 405,
  ENROLL_NOT_IMPLEMENTED: 501,
  ENROLL_UNAVAILABLE: 503,
  ENROLL_INTERNAL: 500,
} as const;

/** A stable enrollment error code. */
export type EnrollErrorCode = keyof typeof ENROLL_ERRORS;

/** The codes of {@link ENROLL_ERRORS}, in catalogue order. */
export const ENROLL_ERROR_CODES: readonly EnrollErrorCode[] = Object.freeze(Object.keys(ENROLL_ERRORS) as EnrollErrorCode[]);

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

/** The URL scheme of each endpoint a device reaches: EST over HTTPS, MQTT over TLS (both mutual TLS). */
export const ENDPOINT_SCHEMES = { est: 'https:', mqtt: 'mqtts:' } as const;

/** Which of a device's endpoints: the enrollment endpoint (EST) or the broker (MQTT). */
export type EndpointKind = keyof typeof ENDPOINT_SCHEMES;

/**
 * What is wrong with a list of endpoint URLs of one kind (the nodes of a cluster), or undefined
 * when nothing is: the list is empty, an entry is not a URL, has another scheme than
 * {@link ENDPOINT_SCHEMES} or no host, or is listed twice.
 */
export function endpointUrlsProblem(kind: EndpointKind, urls: readonly string[]): string | undefined {
  const scheme = ENDPOINT_SCHEMES[kind];
  if (urls.length === 0) return `no ${scheme}// URL given`;
  for (const [index, url] of urls.entries()) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return `"${url}" is not a URL`;
    }
    if (parsed.protocol !== scheme) return `"${url}" is not an ${scheme}// URL`;
    if (parsed.hostname === '') return `"${url}" names no host`;
    if (urls.indexOf(url) !== index) return `"${url}" is listed twice`;
  }
  return undefined;
}
