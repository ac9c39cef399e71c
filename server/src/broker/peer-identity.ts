import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { deviceIdentityUri } from '@fleetgate/device-sdk/protocol';
import { certificateClaims, deviceClaims, peerCertificateClaims, type CertificateClaims } from '../authority/identity.ts';
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

/** What the broker reads of a verified peer certificate, whichever way Node gave it. */
interface PeerFields {
  /** Whether the certificate names the issuing CA as its issuer. */
  readonly fromIssuing: boolean;
  /** The issuer, for the log of a refusal. */
  describeIssuer(): string;
  readonly serialNumber: string;
  readonly validFrom: string;
  readonly validTo: string;
  readonly claims: CertificateClaims;
}

/**
 * Who is on the other end of a TLS connection. The listener does not fail handshakes (a device
 * rejected there sees a reset and retries forever); it decides here, so the refusal becomes a
 * CONNACK 5 the SDK understands. Only certificates signed by the device-issuing CA count:
 * bootstrap (factory CA) certificates chain to the same root and are refused; so are operator
 * certificates, which the issuing CA signs but which carry no device or service identity.
 */
export function peerIdentity(socket: TLSSocket, issuing: IssuingCa): PeerIdentity {
  const peer = peerFields(socket, issuing);
  if (!peer) throw new BrokerError('BROKER_NO_CLIENT_CERT');
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? 'unknown');
    throw new BrokerError(reason === 'CERT_HAS_EXPIRED' ? 'BROKER_CERT_EXPIRED' : 'BROKER_CERT_UNTRUSTED', reason);
  }
  // The listener trusts fleetgate's root and issuing CA only (no manufacturer CAs), so a verified
  // chain whose leaf names the issuing CA as its issuer was signed by it: OpenSSL finds the issuer
  // by name and checks the signature. A factory bootstrap certificate names the factory CA.
  if (!peer.fromIssuing) throw new BrokerError('BROKER_NOT_OPERATIONAL', peer.describeIssuer());
  const serial = serialKey(peer.serialNumber);
  const notAfter = Date.parse(peer.validTo);
  const notBefore = Date.parse(peer.validFrom);
  const { claims } = peer;
  const device = deviceClaims(claims);
  // Operational certificates always carry the device URI.
  if (device && claims.uris.includes(deviceIdentityUri(device.deviceId))) return { kind: 'device', deviceId: device.deviceId, serial, notAfter, notBefore };
  const serviceUri = claims.uris.find((uri) => uri.startsWith(serviceIdentityUri('')));
  const service = serviceUri?.slice(serviceIdentityUri('').length);
  if (service && SERVICE_NAME.test(service)) return { kind: 'service', service, serial, notAfter, notBefore };
  throw new BrokerError('BROKER_NOT_OPERATIONAL', 'no device or service identity in the certificate');
}

/**
 * The peer certificate's fields, read the cheaper way for the handshake at hand (measured on
 * Node 20, docs/benchmarks.md "Per-connect work above the Node floor"): after a full handshake
 * `getPeerCertificate()` (about 120 µs; `getPeerX509Certificate()` copies the whole chain the
 * client sent and costs about 290 µs), after a resumed one `getPeerX509Certificate()` (about
 * 55 µs: the session holds the leaf alone, and only the fields read are rendered;
 * `getPeerCertificate()` renders every field, fingerprints included, about 165 µs). The same
 * certificate either way, rendered by the same OpenSSL calls; undefined without one.
 */
function peerFields(socket: TLSSocket, issuing: IssuingCa): PeerFields | undefined {
  if (socket.isSessionReused()) {
    const certificate = socket.getPeerX509Certificate();
    if (!certificate) return undefined;
    // Both names rendered by the same Node function: equal text is the same name.
    const issuer = certificate.issuer;
    return { fromIssuing: issuer === issuing.subject, describeIssuer: () => issuer.split('\n').join(', '), serialNumber: certificate.serialNumber, validFrom: certificate.validFrom, validTo: certificate.validTo, claims: certificateClaims(certificate) };
  }
  const peer = socket.getPeerCertificate();
  if (!peer || !peer.raw) return undefined;
  const issuer = peer.issuer as unknown as Record<string, unknown>;
  return {
    fromIssuing: sameName(issuer, issuing.name),
    describeIssuer: () => Object.entries(issuer).map(([key, value]) => `${key}=${String(value)}`).join(', '),
    serialNumber: peer.serialNumber,
    validFrom: peer.valid_from,
    validTo: peer.valid_to,
    claims: peerCertificateClaims(peer),
  };
}

/** The issuing CA as the broker compares it: its subject name, as each of Node's two readings of a certificate gives it. */
export interface IssuingCa {
  /** Attribute by attribute (fleetgate's CAs have single-valued attributes), as getPeerCertificate() gives a name. */
  readonly name: Readonly<Record<string, string>>;
  /** As X509Certificate renders a name. */
  readonly subject: string;
}

/** The issuing CA's name from its certificate. */
export function issuingCaOf(certificate: X509Certificate): IssuingCa {
  const name: Record<string, string> = {};
  for (const line of certificate.subject.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) name[line.slice(0, at)] = line.slice(at + 1);
  }
  return { name, subject: certificate.subject };
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
