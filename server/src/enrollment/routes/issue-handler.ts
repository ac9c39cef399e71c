import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { MEDIA_TYPES } from '@fleetgate/device-sdk/protocol';
import type { ClientCredential, IssuanceOptions, IssuanceResult } from '../../authority/enrollment-authority.ts';
import { EnrollmentError } from '../../authority/errors.ts';
import { deviceClaims } from '../../authority/identity.ts';
import { certsOnly } from '../../pki/pkcs7.ts';
import type { Release } from '../admission.ts';
import { clientCredential } from '../client-credential.ts';
import { decodeBase64Body, readBody, requireMediaType, sendBase64 } from '../http-io.ts';
import type { RouteContext } from './types.ts';

/**
 * Refusals made before the authority that are never audited, whoever asks: a looping device
 * would fill the log with rate limits, and an overloaded server should not write more.
 */
const NEVER_AUDITED: ReadonlySet<string> = new Set(['ENROLL_RATE_LIMITED', 'ENROLL_UNAVAILABLE']);

/**
 * The shared shape of simpleenroll and simplereenroll, cheapest refusal first:
 *
 * 1. authenticate: no certificate, or one that does not verify, is 401 and names nobody (not
 *    rate-limited per identity, not audited: metrics and a rate-limited log line instead);
 * 2. rate-limit the verified identity, then the global budget, so requests the identity's limit
 *    refuses do not spend the budget every other device shares;
 * 3. read the body within `est.bodyTimeoutMs` and `est.maxBodyBytes`, holding no slot;
 * 4. take a concurrency slot, let the authority issue, answer with certs-only PKCS#7.
 *
 * Refusals of a verified identity are audited, at most `est.auditRefusalsPerSourcePerMinute` per
 * remote address; beyond that they are counted and logged.
 */
export async function handleIssuance(
  request: IncomingMessage,
  response: ServerResponse,
  context: RouteContext,
  operation: 'simpleenroll' | 'simplereenroll',
  issue: (client: ClientCredential, csr: Buffer, options: IssuanceOptions) => Promise<IssuanceResult>,
): Promise<void> {
  // Read now: a refused body can end the connection, and the socket with it.
  const peer = request.socket.remoteAddress;
  let client: ClientCredential | undefined;
  let identity: string | undefined;
  let reachedAuthority = false;
  let release: Release | undefined;
  const mayAuditRefusal = (): boolean => {
    if (context.auditLimiter.take(peer ?? 'unknown') === 0) return true;
    context.metrics.enrollmentRefusalsUnaudited.inc({ reason: 'audit-rate' });
    return false;
  };
  try {
    client = clientCredential(request.socket as TLSSocket, context.authority);
    identity = deviceClaims(client.certificate.claims)?.deviceId ?? client.certificate.fingerprint256;
    const wait = (await context.identityLimiter.take(identity)) || context.globalLimiter.take();
    if (wait > 0) {
      throw new EnrollmentError('ENROLL_RATE_LIMITED', 'too many enrollment requests; retry later', { retryAfterSeconds: wait });
    }
    requireMediaType(request, MEDIA_TYPES.pkcs10);
    const body = await readBody(request, { maxBytes: context.limits.maxBodyBytes, timeoutMs: context.limits.bodyTimeoutMs });
    const csr = decodeBase64Body(body);
    release = context.concurrency.tryAcquire();
    if (!release) {
      throw new EnrollmentError('ENROLL_UNAVAILABLE', 'the enrollment service is at capacity; retry later', { retryAfterSeconds: 1 });
    }
    const stopTimer = context.metrics.enrollmentDuration.startTimer({ operation });
    reachedAuthority = true; // from here on the authority audits its own refusals
    const result = await issue(client, csr, { mayAuditRefusal });
    sendBase64(response, MEDIA_TYPES.certsOnly, certsOnly([result.certificate, ...result.chain]));
    stopTimer();
    context.metrics.enrollments.inc({ operation, result: 'issued', code: '' });
    context.logger.info({ operation, deviceId: result.deviceId, serial: result.serial, notAfter: result.notAfter }, 'certificate issued');
  } catch (error) {
    if (!(error instanceof EnrollmentError)) throw error;
    context.metrics.enrollments.inc({ operation, result: 'refused', code: error.code });
    if (!client) {
      context.metrics.enrollmentRefusalsUnaudited.inc({ reason: error.code === 'ENROLL_CLIENT_CERT_REQUIRED' ? 'anonymous' : 'unverified' });
    } else if (!reachedAuthority && !NEVER_AUDITED.has(error.code) && mayAuditRefusal()) {
      await context.authority.auditRefusal(client, operation, error).catch((auditError: unknown) => {
        context.logger.error({ err: auditError }, 'could not audit a refusal');
      });
    }
    context.refusalLog.refused({ operation, code: error.code, reason: error.message, peer, ...(client ? { identity } : {}) });
    throw error;
  } finally {
    release?.();
  }
}
