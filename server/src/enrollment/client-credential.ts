import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { ClientCertificate, ClientCredential } from '../authority/enrollment-authority.ts';
import { EnrollmentError } from '../authority/errors.ts';
import { peerCertificateClaims } from '../authority/identity.ts';

/** Who can vouch for an expired certificate's issuer (the enrollment authority). */
export interface IssuerTrust {
  isIssuedByTrustedCa(certificate: ClientCertificate): boolean;
}

/**
 * The client certificate from what the TLS stack already decoded. `getPeerCertificate(false)`
 * rather than `getPeerX509Certificate()`: the latter copies (re-decodes) every certificate of the
 * chain the client sent, ~0.3 ms per request for a device that sends its factory CA, as fleetgate's
 * bootstrap credentials do; the former reads the leaf only (~0.13 ms).
 */
function clientCertificate(peer: PeerCertificate): ClientCertificate {
  return { raw: peer.raw, serialNumber: peer.serialNumber, validTo: peer.valid_to, fingerprint256: peer.fingerprint256, claims: peerCertificateClaims(peer) };
}

/**
 * The verified TLS client certificate of a request. The listener asks for a certificate but does
 * not fail the handshake without one, so the device gets a 401 with a reason instead of a reset
 * connection.
 *
 * An expired certificate is the one case where TLS verification fails and the request may still
 * go on (renewal within the grace). `CERT_HAS_EXPIRED` is only OpenSSL's last verification error:
 * a self-made, self-signed, expired certificate ends there too. So an expired certificate is
 * accepted only once its signature verifies against a CA the authority trusts; until then its
 * name is not an identity, and a refusal names no device (it is neither rate-limited per identity
 * nor audited).
 */
export function clientCredential(socket: TLSSocket, trust: IssuerTrust): ClientCredential {
  // An empty object without a client certificate (null once the socket is gone).
  const presented = socket.getPeerCertificate(false) as PeerCertificate | null;
  const peer = socket.remoteAddress;
  if (!presented?.raw) {
    throw new EnrollmentError('ENROLL_CLIENT_CERT_REQUIRED', 'a client certificate is required (TLS mutual authentication)');
  }
  const certificate = clientCertificate(presented);
  // A resumed TLS session carries the verification of its first handshake, validity dates
  // included: a certificate that expired since (its ticket lives up to a day) is "authorized".
  if (socket.authorized) return { certificate, expired: Date.parse(presented.valid_to) <= Date.now(), peer };
  const reason = String(socket.authorizationError ?? 'unknown');
  if (reason === 'CERT_HAS_EXPIRED') {
    if (trust.isIssuedByTrustedCa(certificate)) return { certificate, expired: true, peer };
    throw new EnrollmentError('ENROLL_CLIENT_CERT_UNTRUSTED', 'the client certificate has expired and was not issued by a CA this server trusts');
  }
  throw new EnrollmentError('ENROLL_CLIENT_CERT_UNTRUSTED', `the client certificate is not trusted (${reason})`);
}
