import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { MEDIA_TYPES } from '@fleetgate/device-sdk/protocol';
import type { ClientCredential, IssuanceResult } from '../../authority/enrollment-authority.ts';
import { EnrollmentError } from '../../authority/errors.ts';
import { deviceClaims } from '../../authority/identity.ts';
import { certsOnly } from '../../pki/pkcs7.ts';
import { clientCredential } from '../client-credential.ts';
import { decodeBase64Body, readBody, requireMediaType, sendBase64 } from '../http-io.ts';
import type { RouteContext } from './types.ts';

/**
 * The shared shape of simpleenroll and simplereenroll: authenticate, rate-limit, read and decode
 * the CSR, let the authority issue, answer with the certificate as certs-only PKCS#7.
 */
export async function handleIssuance(
  request: IncomingMessage,
  response: ServerResponse,
  context: RouteContext,
  operation: 'simpleenroll' | 'simplereenroll',
  issue: (client: ClientCredential, csr: Buffer) => Promise<IssuanceResult>,
): Promise<void> {
  let client: ClientCredential | undefined;
  let reachedAuthority = false;
  const stopTimer = context.metrics.enrollmentDuration.startTimer({ operation });
  try {
    client = clientCredential(request.socket as TLSSocket);
    const identity = deviceClaims(client.certificate)?.deviceId ?? client.certificate.fingerprint256;
    const wait = context.globalLimiter.take() || context.identityLimiter.take(identity);
    if (wait > 0) {
      // Not audited: a looping device would otherwise fill the audit log. Counted in the logs.
      throw new EnrollmentError('ENROLL_RATE_LIMITED', 'too many enrollment requests; retry later', { retryAfterSeconds: wait });
    }
    requireMediaType(request, MEDIA_TYPES.pkcs10);
    const csr = decodeBase64Body(await readBody(request, context.limits.maxBodyBytes));
    reachedAuthority = true; // from here on the authority audits its own refusals
    const result = await issue(client, csr);
    sendBase64(response, MEDIA_TYPES.certsOnly, certsOnly([result.certificate, ...result.chain]));
    stopTimer();
    context.metrics.enrollments.inc({ operation, result: 'issued', code: '' });
    context.logger.info({ operation, deviceId: result.deviceId, serial: result.serial, notAfter: result.notAfter }, 'certificate issued');
  } catch (error) {
    if (!(error instanceof EnrollmentError)) throw error;
    context.metrics.enrollments.inc({ operation, result: 'refused', code: error.code });
    if (!reachedAuthority && error.code !== 'ENROLL_RATE_LIMITED') {
      await context.authority.auditRefusal(client, operation, error).catch((auditError: unknown) => {
        context.logger.error({ err: auditError }, 'could not audit a refusal');
      });
    }
    context.logger.info({ operation, code: error.code, reason: error.message, peer: request.socket.remoteAddress }, 'enrollment refused');
    throw error;
  }
}
