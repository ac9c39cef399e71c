import type { TLSSocket } from 'node:tls';
import type { ClientCredential } from '../authority/enrollment-authority.ts';
import { EnrollmentError } from '../authority/errors.ts';

/**
 * The TLS client certificate of a request. The listener asks for a certificate but does not fail
 * the handshake without one, so the device gets a 401 with a reason instead of a reset
 * connection. Chain errors other than expiry are refused here; an expired leaf goes on because
 * renewal tolerates it within a grace, and the authority re-checks the issuer signature itself.
 */
export function clientCredential(socket: TLSSocket): ClientCredential {
  const certificate = socket.getPeerX509Certificate();
  const peer = socket.remoteAddress;
  if (!certificate) {
    throw new EnrollmentError('ENROLL_CLIENT_CERT_REQUIRED', 'a client certificate is required (TLS mutual authentication)');
  }
  if (socket.authorized) return { certificate, expired: false, peer };
  const reason = String(socket.authorizationError ?? 'unknown');
  if (reason === 'CERT_HAS_EXPIRED') return { certificate, expired: true, peer };
  throw new EnrollmentError('ENROLL_CLIENT_CERT_UNTRUSTED', `the client certificate is not trusted (${reason})`);
}
