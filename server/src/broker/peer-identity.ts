import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { deviceIdentityUri } from '@fleetgate/device-sdk/protocol';
import { deviceClaims, peerCertificateClaims } from '../authority/identity.ts';
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
  const peer = socket.getPeerCertificate();
  if (!peer || !peer.raw) throw new BrokerError('BROKER_NO_CLIENT_CERT');
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? 'unknown');
    throw new BrokerError(reason === 'CERT_HAS_EXPIRED' ? 'BROKER_CERT_EXPIRED' : 'BROKER_CERT_UNTRUSTED', reason);
  }
  // The listener trusts fleetgate's root and issuing CA only (no manufacturer CAs), so a verified
  // chain whose leaf names the issuing CA as its issuer was signed by it: OpenSSL finds the issuer
  // by name and checks the signature. A factory bootstrap certificate names the factory CA.
  if (!sameName(peer.issuer as unknown as Record<string, unknown>, issuing.name)) {
    throw new BrokerError('BROKER_NOT_OPERATIONAL', Object.entries(peer.issuer).map(([key, value]) => `${key}=${String(value)}`).join(', '));
  }
  const serial = serialKey(peer.serialNumber);
  const notAfter = Date.parse(peer.valid_to);
  const notBefore = Date.parse(peer.valid_from);
  const claims = peerCertificateClaims(peer);
  const device = deviceClaims(claims);
  // Operational certificates always carry the device URI.
  if (device && claims.uris.includes(deviceIdentityUri(device.deviceId))) return { kind: 'device', deviceId: device.deviceId, serial, notAfter, notBefore };
  const serviceUri = claims.uris.find((uri) => uri.startsWith(serviceIdentityUri('')));
  const service = serviceUri?.slice(serviceIdentityUri('').length);
  if (service && SERVICE_NAME.test(service)) return { kind: 'service', service, serial, notAfter, notBefore };
  throw new BrokerError('BROKER_NOT_OPERATIONAL', 'no device or service identity in the certificate');
}

/** The issuing CA as the broker compares it: its subject name, attribute by attribute. */
export interface IssuingCa {
  readonly name: Readonly<Record<string, string>>;
}

/** The issuing CA's name from its certificate (fleetgate's CAs have single-valued attributes). */
export function issuingCaOf(certificate: X509Certificate): IssuingCa {
  const name: Record<string, string> = {};
  for (const line of certificate.subject.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) name[line.slice(0, at)] = line.slice(at + 1);
  }
  return { name };
}

function sameName(peer: Record<string, unknown>, expected: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(expected);
  return Object.keys(peer).length === keys.length && keys.every((key) => peer[key] === expected[key]);
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
