import { EST_PATHS, ERROR_CODE_HEADER, MEDIA_TYPES } from '@fleetgate/device-sdk';
import type { BenchDevice } from './devices.ts';
import { httpsCall, type Target } from './https-call.ts';

/** One enrollment as the load generator counts it. */
export interface EnrollOutcome {
  readonly ok: boolean;
  /**
   * Why it failed, as a counting key: `<status> <fleetgate-error-code>` for a refusal
   * (`429 ENROLL_RATE_LIMITED`), `0 <network error>` when no response came.
   */
  readonly failure: string | undefined;
  readonly latencyMs: number;
  readonly protocol: string | undefined;
  /** The response body (base64 certs-only PKCS#7 on success). */
  readonly body: Buffer;
}

/** A request stuck longer than this counts as failed; the server's own request timeout is 15 s. */
export const ENROLL_TIMEOUT_MS = 30_000;

/** POST /simpleenroll on a fresh mTLS connection authenticated by the device's bootstrap certificate. */
export async function enrollOnce(target: Target, device: BenchDevice): Promise<EnrollOutcome> {
  const outcome = await httpsCall(target, {
    method: 'POST',
    path: EST_PATHS.simpleenroll,
    headers: { 'content-type': MEDIA_TYPES.pkcs10 },
    body: device.body,
    tls: { secureContext: device.secureContext },
    timeoutMs: ENROLL_TIMEOUT_MS,
  });
  const base = { latencyMs: outcome.latencyMs, protocol: outcome.protocol, body: outcome.body };
  if (outcome.status === 0) return { ...base, ok: false, failure: `0 ${outcome.error ?? 'no response'}` };
  if (outcome.status !== 200) {
    const code = outcome.headers[ERROR_CODE_HEADER];
    return { ...base, ok: false, failure: `${outcome.status} ${typeof code === 'string' ? code : 'no error code'}` };
  }
  // RFC 7030 §4.2.3: a 200 must carry a certs-only PKCS#7; anything else is a failure too.
  if (outcome.headers['content-type'] !== MEDIA_TYPES.certsOnly) {
    return { ...base, ok: false, failure: `200 unexpected content-type ${outcome.headers['content-type'] ?? 'none'}` };
  }
  return { ...base, ok: true, failure: undefined };
}
