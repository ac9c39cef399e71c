import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { deviceIdentityUri } from '@fleetgate/device-sdk/protocol';
import { deviceClaims, fieldClaims } from '../authority/identity.ts';
import { SERVICE_NAME } from '../config/schema.ts';
import { extractSubject } from '../pki/ca.ts';
import { readCertificateFields, type CertificateFields } from '../pki/certificate-fields.ts';
import { decodeSingle } from '../pki/der.ts';
import { decodeName, formatName } from '../pki/names.ts';
import { serviceIdentityUri } from '../pki/profiles.ts';
import { serialKey } from '../pki/serial.ts';
import { peerCertificateDer } from '../tls/peer-certificate.ts';
import { BrokerError } from './errors.ts';

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
  // The leaf's DER from the TLS session, read with an offset walk (pki/certificate-fields.ts):
  // 36-41 µs in all, where Node's X509Certificate cost 277-292 µs after a full handshake (the
  // chain copied) and 96-99 µs after a resumed one; `getPeerCertificate()` would leave a decoded
  // key cached for the connection's life (tls/peer-certificate.ts).
  const der = peerCertificateDer(socket);
  if (!der) throw new BrokerError('BROKER_NO_CLIENT_CERT');
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? 'unknown');
    throw new BrokerError(reason === 'CERT_HAS_EXPIRED' ? 'BROKER_CERT_EXPIRED' : 'BROKER_CERT_UNTRUSTED', reason);
  }
  let certificate: CertificateFields;
  try {
    certificate = readCertificateFields(der);
  } catch (error) {
    // OpenSSL verified it, so it chains to a trusted CA, but fleetgate issues nothing of this
    // shape (a negative serial, a name in a string type fleetgate does not read, ...).
    throw new BrokerError('BROKER_NOT_OPERATIONAL', `the certificate cannot be read: ${(error as Error).message}`);
  }
  // The listener trusts fleetgate's root and issuing CA only (no manufacturer CAs), so a verified
  // chain whose leaf names the issuing CA as its issuer was signed by it: OpenSSL finds the issuer
  // by name and checks the signature. A factory bootstrap certificate names the factory CA. The
  // issuing CA writes its own subject's bytes as every certificate's issuer (RFC 5280 §4.1.2.4).
  if (!certificate.issuer.equals(issuing.subject)) throw new BrokerError('BROKER_NOT_OPERATIONAL', issuerDescription(certificate.issuer));
  const serial = serialKey(certificate.serialNumber);
  const { notAfter, notBefore } = certificate;
  const claims = fieldClaims(certificate);
  const device = deviceClaims(claims);
  // Operational certificates always carry the device URI.
  if (device && claims.uris.includes(deviceIdentityUri(device.deviceId))) return { kind: 'device', deviceId: device.deviceId, serial, notAfter, notBefore };
  const serviceUri = claims.uris.find((uri) => uri.startsWith(serviceIdentityUri('')));
  const service = serviceUri?.slice(serviceIdentityUri('').length);
  if (service && SERVICE_NAME.test(service)) return { kind: 'service', service, serial, notAfter, notBefore };
  throw new BrokerError('BROKER_NOT_OPERATIONAL', 'no device or service identity in the certificate');
}

/** An issuer name for the refusal's log line. */
function issuerDescription(issuer: Buffer): string {
  try {
    return `issued by ${formatName(decodeName(decodeSingle(issuer)))}`;
  } catch {
    return 'issued by another CA';
  }
}

/** The issuing CA as the broker compares it: its subject name's DER. */
export interface IssuingCa {
  readonly subject: Buffer;
}

/** The issuing CA's name from its certificate. */
export function issuingCaOf(certificate: X509Certificate): IssuingCa {
  return { subject: extractSubject(certificate.raw) };
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
