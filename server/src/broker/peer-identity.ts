import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { deviceIdentityUri } from '@fleetgate/device-sdk/protocol';
import { certificateClaims, deviceClaims } from '../authority/identity.ts';
import { SERVICE_NAME } from '../config/config.ts';
import { serviceIdentityUri } from '../pki/profiles.ts';
import { BrokerError } from './errors.ts';

/** The verified identity behind a TLS connection: a device, or a backend service. */
export type PeerIdentity = (
  | { readonly kind: 'device'; readonly deviceId: string }
  | { readonly kind: 'service'; readonly service: string }
) & {
  /** Serial of the certificate, lower-case hex without leading zeros (the registry's key). */
  readonly serial: string;
  readonly notAfter: number;
};

/** Normalises a certificate serial the way the registry stores it. */
export function normalizeSerial(serialNumber: string): string {
  return serialNumber.toLowerCase().replace(/^0+(?=.)/, '');
}

/**
 * Who is on the other end of a TLS connection. The listener does not fail handshakes (a device
 * rejected there sees a reset and retries forever); it decides here, so the refusal becomes a
 * CONNACK 5 the SDK understands. Only certificates signed by the device-issuing CA count:
 * bootstrap (factory CA) certificates chain to the same root and are refused; so are operator
 * certificates, which the issuing CA signs but which carry no device or service identity.
 */
export function peerIdentity(socket: TLSSocket, issuing: X509Certificate): PeerIdentity {
  const certificate = socket.getPeerX509Certificate();
  if (!certificate) throw new BrokerError('BROKER_NO_CLIENT_CERT');
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? 'unknown');
    throw new BrokerError(reason === 'CERT_HAS_EXPIRED' ? 'BROKER_CERT_EXPIRED' : 'BROKER_CERT_UNTRUSTED', reason);
  }
  if (!certificate.checkIssued(issuing) || !certificate.verify(issuing.publicKey)) {
    throw new BrokerError('BROKER_NOT_OPERATIONAL', certificate.issuer.replace(/\n/g, ', '));
  }
  const serial = normalizeSerial(certificate.serialNumber);
  const notAfter = Date.parse(certificate.validTo);
  const uris = certificateClaims(certificate).uris;
  const device = deviceClaims(certificate);
  // Operational certificates always carry the device URI.
  if (device && uris.includes(deviceIdentityUri(device.deviceId))) return { kind: 'device', deviceId: device.deviceId, serial, notAfter };
  const serviceUri = uris.find((uri) => uri.startsWith(serviceIdentityUri('')));
  const service = serviceUri?.slice(serviceIdentityUri('').length);
  if (service && SERVICE_NAME.test(service)) return { kind: 'service', service, serial, notAfter };
  throw new BrokerError('BROKER_NOT_OPERATIONAL', 'no device or service identity in the certificate');
}

/** The key a session is filed under: the device id, or `service:<client id>`. */
export function sessionKey(identity: PeerIdentity, clientId: string): string {
  return identity.kind === 'device' ? identity.deviceId : `service:${clientId}`;
}
