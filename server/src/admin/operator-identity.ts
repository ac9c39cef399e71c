import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { certificateClaims } from '../authority/identity.ts';
import { isIssuedBy } from '../pki/ca.ts';
import { operatorIdentityUri } from '../pki/profiles.ts';
import { AdminError } from './errors.ts';

/**
 * The operator behind an admin request: a client certificate from the issuing CA carrying
 * `urn:fleetgate:operator:<name>`. Device and service certificates chain to the same CA and are
 * refused with 403; anything else gets 401.
 */
export function operatorOf(socket: TLSSocket, issuing: X509Certificate): string {
  const certificate = socket.getPeerX509Certificate();
  if (!certificate) throw new AdminError('ADMIN_CLIENT_CERT_REQUIRED', 'an operator client certificate is required');
  if (!socket.authorized || !isIssuedBy(certificate, issuing)) {
    throw new AdminError('ADMIN_CLIENT_CERT_UNTRUSTED', `the client certificate is not trusted (${String(socket.authorizationError ?? 'not issued by this fleet')})`);
  }
  const prefix = operatorIdentityUri('');
  const uri = certificateClaims(certificate).uris.find((candidate) => candidate.startsWith(prefix));
  if (!uri) throw new AdminError('ADMIN_NOT_OPERATOR', 'this certificate is not an operator certificate');
  return uri.slice(prefix.length);
}
