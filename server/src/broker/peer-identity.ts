import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { deviceIdentityUri } from '@fleetgate/device-sdk/protocol';
import { deviceClaims } from '../authority/identity.ts';
import { BrokerError } from './errors.ts';

/** The verified identity behind a TLS connection. */
export interface PeerIdentity {
  readonly deviceId: string;
  /** Serial of the certificate, lower-case hex without leading zeros (the registry's key). */
  readonly serial: string;
  readonly notAfter: number;
}

/** Normalises a certificate serial the way the registry stores it. */
export function normalizeSerial(serialNumber: string): string {
  return serialNumber.toLowerCase().replace(/^0+(?=.)/, '');
}

/**
 * Who is on the other end of a TLS connection. The listener does not fail handshakes (a device
 * rejected there sees a reset and retries forever); it decides here, so the refusal becomes a
 * CONNACK 5 the SDK understands. Only certificates signed by the device-issuing CA count:
 * bootstrap (factory CA) and operator certificates chain to the same root and are refused.
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
  const claims = deviceClaims(certificate);
  // Operational certificates always carry the device URI; an operator certificate from the same
  // CA does not, and is refused here.
  if (!claims || !(certificate.subjectAltName ?? '').includes(deviceIdentityUri(claims.deviceId))) {
    throw new BrokerError('BROKER_NOT_OPERATIONAL', 'no device identity in the certificate');
  }
  return { deviceId: claims.deviceId, serial: normalizeSerial(certificate.serialNumber), notAfter: Date.parse(certificate.validTo) };
}
