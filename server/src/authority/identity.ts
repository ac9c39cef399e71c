import type { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { deviceIdentityUri, isDeviceId, MODEL_PATTERN } from '@fleetgate/device-sdk/protocol';

/** The identity claims a client certificate makes (not yet trusted: the caller checks the issuer). */
export interface CertificateClaims {
  readonly commonName: string | undefined;
  readonly organizationalUnit: string | undefined;
  readonly uris: readonly string[];
}

/**
 * Reads CN, OU and SAN URIs from Node's X509Certificate. Node renders the subject one attribute
 * per line; fleetgate identities are restricted to characters that need no escaping, and anything
 * else fails the identity syntax check afterwards.
 */
export function certificateClaims(certificate: X509Certificate): CertificateClaims {
  let commonName: string | undefined;
  let organizationalUnit: string | undefined;
  for (const line of certificate.subject.split('\n')) {
    if (line.startsWith('CN=')) commonName = line.slice(3);
    else if (line.startsWith('OU=')) organizationalUnit = line.slice(3);
  }
  return { commonName, organizationalUnit, uris: sanUris(certificate.subjectAltName) };
}

/** SAN URIs of Node's rendering of subjectAltName (`URI:a, DNS:b`). */
function sanUris(subjectAltName: string | undefined): string[] {
  return (subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
}

/**
 * The same claims from `socket.getPeerCertificate()`: a third of the cost of
 * `getPeerX509Certificate()` per connection, which the broker pays on every CONNECT.
 */
export function peerCertificateClaims(peer: PeerCertificate): CertificateClaims {
  const single = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value.at(-1) : value);
  const subject = peer.subject as unknown as Record<string, string | string[] | undefined>;
  return { commonName: single(subject.CN), organizationalUnit: single(subject.OU), uris: sanUris(peer.subjectaltname) };
}

/** A device identity read from a certificate fleetgate (or a trusted manufacturer) issued. */
export interface DeviceClaims {
  readonly deviceId: string;
  readonly model: string | undefined;
}

/**
 * The device identity a certificate carries: CN must be a valid device id, and a fleetgate
 * identity URI in the SAN, if present, must name the same device.
 */
export function deviceClaims(certificate: X509Certificate | CertificateClaims): DeviceClaims | undefined {
  const claims = 'uris' in certificate ? certificate : certificateClaims(certificate);
  const deviceId = claims.commonName;
  if (!deviceId || !isDeviceId(deviceId)) return undefined;
  const fleetUris = claims.uris.filter((uri) => uri.startsWith('urn:fleetgate:'));
  if (fleetUris.some((uri) => uri !== deviceIdentityUri(deviceId))) return undefined;
  const model = claims.organizationalUnit && MODEL_PATTERN.test(claims.organizationalUnit) ? claims.organizationalUnit : undefined;
  return { deviceId, model };
}
