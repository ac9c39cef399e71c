import type { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { deviceIdentityUri, isDeviceId, MODEL_PATTERN } from '@fleetgate/device-sdk/protocol';
import type { CertificateFields } from '../pki/certificate-fields.ts';

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

/** The same claims from the fields of a certificate read from its DER (pki/certificate-fields.ts). */
export function fieldClaims(fields: CertificateFields): CertificateClaims {
  return { commonName: fields.commonName, organizationalUnit: fields.organizationalUnit, uris: fields.sanUris };
}

/**
 * The same claims from `socket.getPeerCertificate()` (the EST listener's read): after a full
 * handshake, a third of the cost of `getPeerX509Certificate()`, which copies the whole chain. The
 * broker, which holds its connections, reads the session instead (tls/peer-certificate.ts).
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

/**
 * Syntax of an id namespace (a manufacturer trust's device-id prefix, or the `--id-prefix` of a
 * manufacturer's own factory batches): the start of a device id, 2 to 48 characters, ending with
 * a separator (`.`, `_` or `-`) so that `acme.` never covers `acmecorp.x`, and leaving at least
 * 16 of the 64 characters a device id has.
 */
export const NAMESPACE_PATTERN = /^[a-z0-9][a-z0-9._-]{0,46}[._-]$/;

/**
 * The form of the ids fleetgate's factory issues (`fleetgate bootstrap issue`, see
 * factory/device-ids.ts): `<model>-<12 hex>`, where model follows MODEL_PATTERN.
 */
export const FACTORY_DEVICE_ID_PATTERN = /^[a-z][a-z0-9-]{0,31}-[0-9a-f]{12}$/;

/**
 * Whether `deviceId` has the form of a fleetgate factory id. Such ids are reserved for the
 * fleetgate factory CA: no manufacturer trust may vouch for one, whatever its namespace or
 * allow-list says.
 *
 * Why reserve the form rather than record the issued ids in the registry: factory batches are
 * made offline (a factory line holds the factory CA, not the registry, and the LevelDB registry
 * is locked by the running server), batches issued before this rule have no record at all, and a
 * record would have to reach every registry engine before the first device of the batch is
 * switched on. The form is known without any state, covers every batch ever issued and every
 * batch to come, and cannot drift from the generator (newDeviceId checks its ids against it).
 * The price: a manufacturer's ids must not look like ours, e.g. `acme.atm-0001` (an id with `.`
 * or `_`, or one not ending in `-` and 12 hex digits, is never reserved).
 */
export function isFactoryDeviceId(deviceId: string): boolean {
  return FACTORY_DEVICE_ID_PATTERN.test(deviceId);
}
