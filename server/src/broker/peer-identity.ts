import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { deviceIdentityUri } from '@fleetgate/device-sdk/protocol';
import { certificateClaims, deviceClaims } from '../authority/identity.ts';
import { SERVICE_NAME } from '../config/schema.ts';
import { serviceIdentityUri } from '../pki/profiles.ts';
import { BrokerError } from './errors.ts';
import { serialKey } from '../pki/serial.ts';

/** The verified identity behind a TLS connection: a device, or a backend service. */
export type PeerIdentity = (
  | { readonly kind: 'device'; readonly deviceId: string }
  | { readonly kind: 'service'; readonly service: string }
) & {
  /** Serial of the certificate, lower-case hex without leading zeros (the registry's key). */
  readonly serial: string;
  readonly notAfter: number;
  /** notBefore, epoch ms (a service recorded at first use keeps its issue time). */
  readonly notBefore: number;
};

/**
 * Who is on the other end of a TLS connection. The listener does not fail handshakes (a device
 * rejected there sees a reset and retries forever); it decides here, so the refusal becomes a
 * CONNACK 5 the SDK understands. Only certificates signed by the device-issuing CA count:
 * bootstrap (factory CA) certificates chain to the same root and are refused; so are operator
 * certificates, which the issuing CA signs but which carry no device or service identity.
 */
export function peerIdentity(socket: TLSSocket, issuing: IssuingCa): PeerIdentity {
  // The certificate from `getPeerX509Certificate()`, whose fields are rendered only when read.
  // Not `getPeerCertificate()`, though after a full handshake it is the cheaper read when the
  // client sends its chain (100-160 µs against 245-370 µs: X509Certificate copies every certificate
  // of the chain; 50-60 µs when the client sends its leaf alone, and after a resumed handshake,
  // whose session holds the leaf alone). It renders the public key, and on OpenSSL 3 that leaves a
  // decoded copy of the key (a legacy EC_KEY) cached in the certificate the TLS session keeps for
  // as long as the connection lasts: 1.9 KiB of native memory per held connection, measured with
  // 2,000 connections to the Node floor server of `npm run bench:memory` (malloc's arena,
  // `malloc_trim` does not give it back). A broker holds connections for days and makes a full
  // handshake rarely; the memory is the cost that counts.
  const certificate = socket.getPeerX509Certificate();
  if (!certificate) throw new BrokerError('BROKER_NO_CLIENT_CERT');
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? 'unknown');
    throw new BrokerError(reason === 'CERT_HAS_EXPIRED' ? 'BROKER_CERT_EXPIRED' : 'BROKER_CERT_UNTRUSTED', reason);
  }
  // The listener trusts fleetgate's root and issuing CA only (no manufacturer CAs), so a verified
  // chain whose leaf names the issuing CA as its issuer was signed by it: OpenSSL finds the issuer
  // by name and checks the signature. A factory bootstrap certificate names the factory CA.
  // Both names are rendered by the same Node function: equal text is the same name.
  const issuer = certificate.issuer;
  if (issuer !== issuing.subject) throw new BrokerError('BROKER_NOT_OPERATIONAL', issuer.split('\n').join(', '));
  const serial = serialKey(certificate.serialNumber);
  const notAfter = Date.parse(certificate.validTo);
  const notBefore = Date.parse(certificate.validFrom);
  const claims = certificateClaims(certificate);
  const device = deviceClaims(claims);
  // Operational certificates always carry the device URI.
  if (device && claims.uris.includes(deviceIdentityUri(device.deviceId))) return { kind: 'device', deviceId: device.deviceId, serial, notAfter, notBefore };
  const serviceUri = claims.uris.find((uri) => uri.startsWith(serviceIdentityUri('')));
  const service = serviceUri?.slice(serviceIdentityUri('').length);
  if (service && SERVICE_NAME.test(service)) return { kind: 'service', service, serial, notAfter, notBefore };
  throw new BrokerError('BROKER_NOT_OPERATIONAL', 'no device or service identity in the certificate');
}

/** The issuing CA as the broker compares it: its subject name as X509Certificate renders a name. */
export interface IssuingCa {
  readonly subject: string;
}

/** The issuing CA's name from its certificate. */
export function issuingCaOf(certificate: X509Certificate): IssuingCa {
  return { subject: certificate.subject };
}

/** The key a session is filed under: the device id, or `service:<client id>`. */
export function sessionKey(identity: PeerIdentity, clientId: string): string {
  return identity.kind === 'device' ? identity.deviceId : `service:${clientId}`;
}

/**
 * Who is charged for what a client keeps in the broker (retained messages): the device, or the
 * service with all its instances together.
 */
export function quotaOwner(identity: PeerIdentity): string {
  return identity.kind === 'device' ? identity.deviceId : `service:${identity.service}`;
}
